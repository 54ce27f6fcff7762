"""Metrics export: ``taskq_stats`` (table, --json, --prometheus, --watch) and the view."""

import datetime as dt
import io
import json
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from taskq import metrics
from taskq.conf import settings
from taskq.enqueue import Call, enqueue
from taskq.models import Task, Worker
from test_matrix.testapp.tasks import fail, noop, record

pytestmark = pytest.mark.django_db(transaction=True)

ODD = 'we"ird\\na\nme'  # a quote, a backslash and a newline: all escaped in label values
TOKEN = "s3cret-token-for-prometheus"


def stats(*args):
    out = io.StringIO()
    call_command("taskq_stats", *args, stdout=out)
    return out.getvalue()


def parse(text):
    """Return {metric family: (type, {(sample name, sorted labels): value})}."""
    return {
        family.name: (
            family.type,
            {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
    }


def make_worker(ident, heartbeat_age=0, succeeded=0, failed=0):
    now = timezone.now()
    return Worker.objects.create(
        ident=ident,
        host="host-1",
        pid=42,
        queues="default,mail",
        started_at=now - dt.timedelta(minutes=5),
        heartbeat=now - dt.timedelta(seconds=heartbeat_age),
        succeeded=succeeded,
        failed=failed,
    )


@pytest.fixture
def some_tasks():
    """Two pending, one future, one failed, one active; one live and one dead worker."""
    alive = make_worker("host-1:42:aaaa", succeeded=7, failed=2)
    make_worker("host-1:43:dead", heartbeat_age=settings.DIRTY_AFTER + 5, succeeded=99)
    noop.apply_async(eta=timezone.now() - dt.timedelta(seconds=30))
    record.apply_async((1,), queue="mail")
    record.apply_async((2,), countdown=600)
    failed = fail.delay()
    Task.objects.filter(pk=failed.id).update(state=Task.State.FAILED)
    active = noop.delay()
    Task.objects.filter(pk=active.id).update(state=Task.State.STARTED, worker=alive)


def test_the_table_shows_totals_queues_task_names_and_live_workers(some_tasks):
    text = stats()
    lines = text.splitlines()
    assert "1 live worker(s), oldest pending task waiting 3" in lines[0]
    assert lines[2].split() == ["state", "failed", "dirty", "active", "pending", "future"]
    assert lines[3].split() == ["all", "tasks", "1", "0", "1", "2", "1"]
    assert ["mail", "0", "0", "0", "1", "0"] in [line.split() for line in lines]
    assert any(line.split()[:1] == ["test_matrix.testapp.tasks.noop"] for line in lines)
    (worker,) = [line for line in lines if line.startswith("host-1:")]
    assert worker.split()[:4] == ["host-1:42:aaaa", "default,mail", "7", "2"]


def test_json_is_the_snapshot_with_each_live_workers_outcomes(some_tasks):
    snap = json.loads(stats("--json"))
    assert {group: snap[group] for group in metrics.GROUPS} == {
        "failed": 1,
        "dirty": 0,
        "active": 1,
        "pending": 2,
        "future": 1,
    }
    assert snap["queues"]["mail"]["pending"] == 1
    assert snap["workers"] == 1
    (worker,) = snap["live_workers"]
    assert worker["ident"] == "host-1:42:aaaa"
    assert (worker["succeeded"], worker["failed"], worker["pid"]) == (7, 2, 42)
    assert worker["queues"] == ["default", "mail"]
    assert dt.datetime.fromisoformat(worker["started_at"]) < timezone.now()


def test_prometheus_text_parses_with_prometheus_client(some_tasks):
    families = parse(stats("--prometheus"))
    kind, tasks = families["taskq_tasks"]
    assert kind == "gauge"
    assert tasks == {
        ("taskq_tasks", (("state", state),)): count
        for state, count in [
            ("failed", 1),
            ("dirty", 0),
            ("active", 1),
            ("pending", 2),
            ("future", 1),
        ]
    }
    by_queue = families["taskq_tasks_by_queue"][1]
    assert by_queue[("taskq_tasks_by_queue", (("queue", "mail"), ("state", "pending")))] == 1
    assert by_queue[("taskq_tasks_by_queue", (("queue", "default"), ("state", "failed")))] == 1
    by_name = families["taskq_tasks_by_name"][1]
    noop_name = "test_matrix.testapp.tasks.noop"
    assert by_name[("taskq_tasks_by_name", (("state", "active"), ("task", noop_name)))] == 1
    age = families["taskq_oldest_pending_age_seconds"][1][("taskq_oldest_pending_age_seconds", ())]
    assert 30 <= age < 60
    assert families["taskq_workers"][1] == {("taskq_workers", ()): 1}
    labels = (("host", "host-1"), ("worker", "host-1:42:aaaa"))
    assert families["taskq_worker_tasks_succeeded"] == (
        "counter",
        {("taskq_worker_tasks_succeeded_total", labels): 7},
    )
    assert families["taskq_worker_tasks_failed"] == (
        "counter",
        {("taskq_worker_tasks_failed_total", labels): 2},
    )
    start = families["taskq_worker_start_time_seconds"][1][
        ("taskq_worker_start_time_seconds", labels)
    ]
    assert abs(start - (time.time() - 300)) < 60


def test_label_values_are_escaped():
    enqueue(Call(ODD, queue=ODD))
    text = stats("--prometheus")
    assert 'queue="we\\"ird\\\\na\\nme"' in text
    by_name = parse(text)["taskq_tasks_by_name"][1]
    assert by_name[("taskq_tasks_by_name", (("state", "pending"), ("task", ODD)))] == 1
    by_queue = parse(text)["taskq_tasks_by_queue"][1]
    assert by_queue[("taskq_tasks_by_queue", (("queue", ODD), ("state", "pending")))] == 1


def test_an_empty_table_still_reports_every_state_and_no_backlog():
    text = stats("--prometheus")
    families = parse(text)
    assert set(families["taskq_tasks"][1].values()) == {0}
    assert len(families["taskq_tasks"][1]) == 5
    assert families["taskq_oldest_pending_age_seconds"][1] == {
        ("taskq_oldest_pending_age_seconds", ()): 0
    }
    assert "nothing pending" in stats()
    for line in text.splitlines():  # HELP and TYPE before every family
        assert line.startswith(("# HELP taskq_", "# TYPE taskq_", "taskq_")), line


def test_json_and_prometheus_exclude_each_other():
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("taskq_stats", "--json", "--prometheus")


@pytest.mark.processes
def test_watch_redraws_until_ctrl_c_and_exits_zero(workers, tmp_path):
    noop.delay()
    out = tmp_path / "watch.out"
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "taskq_stats", "--watch", "--interval", "0.2"],
            env=workers.env(),
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while out.read_text().count("taskq at ") < 3:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    rows = [line.split() for line in out.read_text().splitlines()]
    assert rows.count(["all", "tasks", "0", "0", "0", "1", "0"]) >= 3


# The view ------------------------------------------------------------------------------


def test_the_view_serves_prometheus_text_to_staff(client, django_user_model, some_tasks):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("taskq:metrics")).status_code == 403  # needs view_task
    staff.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(staff)
    response = client.get(reverse("taskq:metrics"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    families = parse(response.content.decode())
    assert families["taskq_workers"][1] == {("taskq_workers", ()): 1}
    assert reverse("taskq:metrics") == "/taskq/metrics"


def test_the_view_refuses_anonymous_and_non_staff_users(client, django_user_model):
    url = reverse("taskq:metrics")
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Bearer realm="taskq"'
    assert b"taskq_" not in anonymous.content
    user = django_user_model.objects.create_user("user", password="pw")
    client.force_login(user)
    assert client.get(url).status_code == 403
    inactive = django_user_model.objects.create_user("old", is_staff=True, is_active=False)
    client.force_login(inactive)
    assert client.get(url).status_code in (401, 403)


def test_the_view_accepts_the_bearer_token_from_settings(client):
    url = reverse("taskq:metrics")
    assert client.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    with override_settings(TASKQ_METRICS_TOKEN=TOKEN):
        ok = client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "taskq_tasks" in parse(ok.content.decode())
        assert client.get(url, headers={"Authorization": "bearer " + TOKEN}).status_code == 200
        assert client.get(url, headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
        assert client.get(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get(url).status_code == 401
        assert client.post(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.parametrize("value", ["", " s3cret ", 12345, ["a"]])
def test_a_malformed_token_setting_is_refused_without_showing_it(value):
    with override_settings(TASKQ_METRICS_TOKEN=value):
        with pytest.raises(ImproperlyConfigured, match="TASKQ_METRICS_TOKEN must be None") as info:
            _ = settings.METRICS_TOKEN
    assert "s3cret" not in str(info.value) and "12345" not in str(info.value)
