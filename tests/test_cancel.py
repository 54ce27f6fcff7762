"""Stopping a running task, with real worker processes.

What is promised: ``revoke(terminate=True)`` and the admin's "Cancel" on the Active list
interrupt a running task, sleeping or busy in pure Python, the same way as its hard time
limit; its row is deleted, the worker's log says who asked, and the worker goes on with
the next task. A task not yet started is deleted by ``revoke()`` as before.
"""

import re
import signal
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from taskq.celery import AsyncResult
from taskq.models import Task
from test_matrix.testapp.tasks import busy, record, slow

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def cancel_by_revoke(task_id):
    assert AsyncResult(task_id).revoke(terminate=True)
    return "revoke(terminate=True)"


def cancel_by_admin(task_id):
    alice = User.objects.create_user("alice", password="pw", is_staff=True)
    alice.user_permissions.add(Permission.objects.get(codename="change_task"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(reverse("admin:taskq_activetask_changelist"))
    cancel_url = reverse("admin:taskq_activetask_cancel", args=[task_id])
    assert cancel_url in page.text  # the row's "Cancel" button
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    assert client.post(cancel_url).status_code == 403  # no CSRF token
    response = client.post(cancel_url, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    alice.delete()
    return "admin user alice"


@pytest.mark.parametrize("cancel", [cancel_by_revoke, cancel_by_admin], ids=["revoke", "admin"])
def test_a_running_task_is_interrupted_and_deleted(workers, wait_until, cancel):
    worker = workers.start()
    for key, result in [("sleeping", slow.delay("sleeping", 600)), ("busy", busy.delay("busy"))]:
        workers.wait_for_record(f"start {key}", timeout=60)
        who = cancel(result.id)
        asked = time.monotonic()
        row = Task.objects.filter(pk=result.id)
        wait_until(lambda row=row: not row.exists(), 30)
        print(f"{key}: row gone {time.monotonic() - asked:.3f}s after the request")
        line = f"[{result.id}] cancelled by {who}"
        wait_until(lambda line=line: line in worker.log.read_text(), 10)
    record.delay("next")
    workers.wait_for_record("next")
    assert workers.records() == ["start sleeping", "start busy", "next"]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_revoke_deletes_a_task_not_started_and_leaves_a_finished_one(db):
    queued = record.delay("never")
    assert AsyncResult(queued.id).revoke(terminate=True)
    assert not Task.objects.exists()
    assert not AsyncResult(queued.id).revoke(terminate=True)
