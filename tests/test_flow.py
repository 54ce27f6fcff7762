"""Flow control in one process: the TASKQ_QUEUES setting, pause and resume from Python,
the command line and the admin, every strategy's claim honouring a pause, the limited
claim's checks, and the metrics. Real workers: ``tests/test_flow_workers.py``."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from taskq import metrics, prometheus, queues
from taskq.backends import get_strategy
from taskq.backends.flow import Flow
from taskq.checks import check_settings
from taskq.conf import QueueLimits, settings
from taskq.models import Queue, Task, Worker
from test_matrix.testapp.tasks import noop

pytestmark = pytest.mark.django_db(transaction=True)


def worker_row(name: str = "w") -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        ident=f"{name}:{now.timestamp()}", host="h", pid=1, queues="", started_at=now, heartbeat=now
    )


# The setting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"p": {"concurrency": 2, "rate": "10/s"}}, QueueLimits(2, 10.0)),
        ({"p": {"rate": "30/m"}}, QueueLimits(None, 0.5)),
        ({"p": {"rate": "36/h"}}, QueueLimits(None, 0.01)),
        ({"p": {"rate": 4}}, QueueLimits(None, 4.0)),
        ({"p": {}}, QueueLimits()),
    ],
)
def test_the_setting_reads_celery_rates(value, expected):
    with override_settings(TASKQ_QUEUES=value):
        assert settings.QUEUES == {"p": expected}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"p": {"concurency": 2}}, "TASKQ_QUEUES['p'] has unknown key(s) concurency"),
        ({"p": {"concurrency": 0}}, "TASKQ_QUEUES['p']['concurrency'] must be a positive integer"),
        ({"p": {"concurrency": True}}, "must be a positive integer, not True"),
        ({"p": {"rate": "10/d"}}, "TASKQ_QUEUES['p']['rate'] must be a rate such as"),
        ({"p": {"rate": "-1/s"}}, "not '-1/s'"),
        ({"p": 2}, "TASKQ_QUEUES['p'] must be a dict"),
        ({"": {}}, "TASKQ_QUEUES key must be a queue name"),
        (["p"], "TASKQ_QUEUES must be a dict"),
    ],
)
def test_a_bad_setting_is_refused_and_reported_by_the_check(value, message):
    with override_settings(TASKQ_QUEUES=value):
        with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
            _ = settings.QUEUES
        assert any(message in error.msg for error in check_settings())


# Pause and resume ----------------------------------------------------------------------


def test_pause_resume_and_paused():
    queues.pause("mail", "sms")
    queues.pause("mail")  # again: no error
    assert queues.paused() == ["mail", "sms"]
    queues.resume("sms", "never-paused")
    assert queues.paused() == ["mail"]
    with pytest.raises(ValueError, match="queue must be a name"):
        queues.pause("")


def test_every_strategy_claims_nothing_from_a_paused_queue(strategy_cls):
    strategy = strategy_cls("default")
    worker = worker_row()
    noop.apply_async(queue="a")
    noop.apply_async(queue="b")
    queues.pause("a")
    # The test covers all the claim's queues: nothing, not even b's task.
    assert strategy.claim(["a"], worker.pk) is None
    assert strategy.claim(["a", "b"], worker.pk) is None
    claim = strategy.claim(["b"], worker.pk)
    assert claim is not None and claim.queue == "b"
    queues.resume("a")
    claim = strategy.claim(["a", "b"], worker.pk)
    assert claim is not None and claim.queue == "a"


def test_a_workers_claims_leave_out_its_paused_queues_and_notice_a_resume():
    worker = worker_row()
    flow = Flow(get_strategy(), ["a", "b"])
    flow.prepare()
    assert set(Queue.objects.values_list("name", flat=True)) == {"a", "b"}
    noop.apply_async(queue="a")
    noop.apply_async(queue="b")
    queues.pause("a")
    claim = flow.claim(worker.pk)  # the first claim meets the pause, the second not
    assert claim is not None and claim.queue == "b"
    assert flow.claim(worker.pk) is None
    assert flow.claimable() == ["b"]
    queues.resume("a")
    flow.next_refresh = 0  # a poll interval later
    claim = flow.claim(worker.pk)
    assert claim is not None and claim.queue == "a"


# Limits --------------------------------------------------------------------------------


@override_settings(TASKQ_QUEUES={"lim": {"concurrency": 1}})
def test_a_concurrency_slot_is_held_until_the_task_ends_or_its_worker_is_dirty():
    first, second = worker_row("first"), worker_row("second")
    flows = [Flow(get_strategy(), ["lim"]) for _ in range(2)]
    for flow in flows:
        flow.prepare()
    for _ in range(3):
        noop.apply_async(queue="lim")
    held = flows[0].claim(first.pk)
    assert held is not None
    assert flows[1].claim(second.pk) is None
    assert flows[1].limited_ready() == []  # not asked again before a poll interval
    flows[1].not_before.clear()
    Worker.objects.filter(pk=first.pk).update(
        heartbeat=timezone.now() - timezone.timedelta(seconds=settings.DIRTY_AFTER + 1)
    )
    assert flows[1].claim(second.pk) is not None  # the dirty task holds no slot
    flows[0].not_before.clear()
    assert flows[0].claim(first.pk) is None


@override_settings(TASKQ_QUEUES={"slow": {"rate": "1/h"}})
def test_a_rate_limited_queue_says_when_its_next_start_is_and_the_idle_wait_uses_it():
    worker = worker_row()
    flow = Flow(get_strategy(), ["slow"])
    flow.prepare()
    noop.apply_async(queue="slow")
    noop.apply_async(queue="slow")
    assert flow.claim(worker.pk) is not None
    row = Queue.objects.get(name="slow")
    assert row.next_start_at > Task.objects.get(state=Task.State.STARTED).started_at
    assert flow.claim(worker.pk) is None
    assert 3500 < flow.idle_timeout(0.1) <= 3600  # sleeps until the next start
    flow.not_before.clear()
    assert flow.claim(worker.pk) is None  # under the lock, the row says the same
    assert Task.objects.queued().count() == 1


@override_settings(TASKQ_QUEUES={"lim": {"concurrency": 1}})
def test_a_worker_with_limited_and_unlimited_queues_serves_the_others_meanwhile():
    worker, other = worker_row("one"), worker_row("other")
    Flow(get_strategy(), ["lim"]).prepare()
    busy = Flow(get_strategy(), ["lim"])
    noop.apply_async(queue="lim")
    noop.apply_async(queue="lim")
    noop.apply_async(queue="default")
    assert busy.claim(other.pk).queue == "lim"
    flow = Flow(get_strategy(), ["lim", "default"])
    claims = [flow.claim(worker.pk), flow.claim(worker.pk)]
    assert [claim.queue if claim else None for claim in claims] == ["default", None]
    assert flow.idle_timeout(0.1) == 0.1  # an unlimited queue: the usual poll


# Command line, admin, metrics ----------------------------------------------------------


@override_settings(TASKQ_QUEUES={"payments": {"concurrency": 2, "rate": "10/m"}})
def test_the_command_pauses_resumes_and_lists():
    noop.apply_async(queue="payments")
    noop.apply_async(queue="mail", countdown=60)
    out = StringIO()
    call_command("taskq_queue", "pause", "mail", stdout=out)
    assert "Paused: mail" in out.getvalue()
    out = StringIO()
    call_command("taskq_queue", "list", stdout=out)
    lines = [line.split() for line in out.getvalue().splitlines()]
    assert lines[0] == [
        "queue",
        "state",
        "concurrency",
        "rate",
        "pending",
        "future",
        "active",
        "failed",
    ]
    assert ["mail", "paused", "-", "-", "0", "1", "0", "0"] in lines
    assert ["payments", "running", "2", "10/m", "1", "0", "0", "0"] in lines
    call_command("taskq_queue", "resume", "mail", stdout=StringIO())
    assert queues.paused() == []


def test_the_summary_page_pauses_and_resumes_with_the_change_permission(client):
    noop.apply_async(queue="mail")
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(user)
    summary = reverse("admin:taskq_summary_changelist")
    action = reverse("admin:taskq_summary_queue")
    page = client.get(summary).text
    assert "<caption>Queues</caption>" in page and 'value="pause"' not in page
    assert client.post(action, {"queue": "mail", "action": "pause"}).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    page = client.get(summary).text
    assert 'name="action" value="pause"' in page
    response = client.post(action, {"queue": "mail", "action": "pause"}, follow=True)
    assert queues.paused() == ["mail"]
    assert 'name="action" value="resume"' in response.text
    assert client.get(action).status_code == 405
    assert client.post(action, {"queue": "mail", "action": "drop"}).status_code == 400
    strict = type(client)(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(action, {"queue": "mail", "action": "resume"}).status_code == 403
    assert queues.paused() == ["mail"]


def test_metrics_and_prometheus_say_which_queues_are_paused():
    noop.apply_async(queue="mail")
    noop.apply_async(queue="default")
    queues.pause("mail")
    snap = metrics.snapshot()
    assert snap["paused_queues"] == ["mail"]
    text = prometheus.render(snap)
    assert 'taskq_queue_paused{queue="mail"} 1' in text
    assert 'taskq_queue_paused{queue="default"} 0' in text
