"""taskq as a backend of Django's Tasks framework (Django >= 6.0)."""

import datetime as dt
import json
import socket

import pytest

pytest.importorskip("django.tasks", reason="Django's Tasks framework needs Django >= 6.0")

from asgiref.sync import async_to_sync  # noqa: E402
from django.db import transaction  # noqa: E402
from django.tasks import TaskResultStatus, default_task_backend, task_backends  # noqa: E402
from django.tasks.exceptions import InvalidTask  # noqa: E402
from django.tasks.signals import task_enqueued, task_finished, task_started  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from taskq import registry  # noqa: E402
from taskq.django_tasks import DjangoTask, TaskqBackend  # noqa: E402
from taskq.models import Task  # noqa: E402
from taskq.worker import Worker  # noqa: E402
from test_matrix.testapp import django_tasks  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def record_file(tmp_path, monkeypatch):
    path = tmp_path / "record.txt"
    monkeypatch.setenv("TASKQ_TEST_RECORD", str(path))
    return lambda: path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def received():
    """Collect Django's task signals: (signal name, status, task result)."""
    seen = []
    receivers = {}
    for name, signal in [
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ]:

        def receiver(sender, task_result, _name=name, **kwargs):
            seen.append((_name, task_result.status, task_result))

        receivers[name] = receiver
        signal.connect(receiver)
    yield seen
    task_enqueued.disconnect(receivers["enqueued"])
    task_started.disconnect(receivers["started"])
    task_finished.disconnect(receivers["finished"])


def drain():
    return Worker(["default", "mail"], burst=True).run(handle_signals=False)


def row_of(result):
    return Task.objects.get(pk=int(result.id))


def test_the_backend_says_what_it_supports():
    assert isinstance(task_backends["default"], TaskqBackend)
    assert default_task_backend.supports_defer
    assert default_task_backend.supports_priority
    assert default_task_backend.supports_async_task
    assert not default_task_backend.supports_get_result


def test_decorated_tasks_are_registered_under_their_module_path():
    registered = registry.get("test_matrix.testapp.django_tasks.record")
    assert isinstance(registered, DjangoTask)
    assert registered.task.func is django_tasks.record.func
    # A .using() copy does not replace the decorated task in the registry.
    django_tasks.record.using(priority=5)
    assert registry.get("test_matrix.testapp.django_tasks.record").task.priority == 0


def test_enqueue_writes_a_row_in_the_callers_transaction():
    with transaction.atomic():
        kept = django_tasks.record.enqueue("a", 1)
    with pytest.raises(RuntimeError), transaction.atomic():
        django_tasks.record.enqueue("dropped")
        raise RuntimeError("roll back")
    (row,) = Task.objects.all()
    assert str(row.pk) == kept.id
    assert row.name == "test_matrix.testapp.django_tasks.record"
    assert (row.queue, row.priority, row.state) == ("default", 0, Task.State.QUEUED)
    assert json.loads(row.args) == ["a", 1]
    assert kept.status == TaskResultStatus.READY
    assert kept.enqueued_at == row.created_at
    assert kept.backend == "default"


def test_using_sets_priority_queue_and_run_after():
    later = timezone.now() + dt.timedelta(hours=1)
    result = django_tasks.record.using(priority=-100, queue_name="mail", run_after=later).enqueue(1)
    row = row_of(result)
    assert (row.priority, row.queue) == (-100, "mail")
    assert abs(row.eta - later) < dt.timedelta(seconds=1)
    assert Task.objects.future().count() == 1
    decorated = row_of(django_tasks.mail.enqueue("x@example.com"))
    assert (decorated.priority, decorated.queue) == (7, "mail")


def test_higher_priority_runs_first(record_file):
    django_tasks.record.using(priority=-5).enqueue("low")
    django_tasks.record.using(priority=50).enqueue("high")
    django_tasks.record.enqueue("normal")
    drain()
    assert record_file() == ["django high", "django normal", "django low"]


def test_queues_outside_queues_and_bad_priorities_are_refused():
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend"):
        django_tasks.record.using(queue_name="nope")
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100"):
        django_tasks.record.using(priority=101)
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        django_tasks.record.using(run_after=dt.datetime(2030, 1, 1))
    assert Task.objects.count() == 0


@override_settings(TASKS={"default": {"BACKEND": "taskq.django_tasks.TaskqBackend", "QUEUES": []}})
def test_empty_queues_allow_any_queue_name_taskq_can_store():
    row = row_of(django_tasks.record.using(queue_name="anything").enqueue(1))
    assert row.queue == "anything"
    with pytest.raises(InvalidTask, match="queue must be a name of 1 to 100 characters"):
        django_tasks.record.using(queue_name="q" * 101)


def test_arguments_must_be_json_values_and_nothing_is_written():
    with pytest.raises(TypeError, match="Unsupported type"):
        django_tasks.record.enqueue(dt.date(2030, 1, 1))
    assert Task.objects.count() == 0


def test_get_result_says_taskq_keeps_no_results():
    result = django_tasks.record.enqueue(1)
    with pytest.raises(NotImplementedError, match="taskq keeps no task results"):
        django_tasks.record.get_result(result.id)
    with pytest.raises(NotImplementedError, match="taskq keeps no task results"):
        result.refresh()
    with pytest.raises(NotImplementedError, match="taskq keeps no task results"):
        async_to_sync(django_tasks.record.aget_result)(result.id)


def test_aenqueue_writes_a_row(received):
    result = async_to_sync(django_tasks.record.aenqueue)("b")
    assert json.loads(row_of(result).args) == ["b"]
    assert [(name, status) for name, status, _ in received] == [("enqueued", "READY")]
    assert received[0][2].id == result.id


def test_the_worker_runs_plain_async_and_context_tasks(record_file, received):
    plain = django_tasks.record.enqueue("p")
    django_tasks.async_record.enqueue("a")
    context = django_tasks.with_context.enqueue("c")
    django_tasks.mail.enqueue("m")
    received.clear()
    assert drain() == 0
    assert Task.objects.count() == 0
    lines = record_file()
    assert lines[:2] == ["mail m", "django p"]  # priority 7 first, then by ETA
    assert lines[2] == "async a"
    seen = json.loads(lines[3])
    assert seen["key"] == "c" and seen["id"] == context.id
    assert seen["attempt"] == 1 and seen["status"] == "RUNNING"
    assert seen["backend"] == "default" and seen["name"] == "with_context"
    (worker_id,) = seen["worker_ids"]
    assert worker_id.startswith(f"{socket.gethostname()}:")
    started = [status for name, status, _ in received if name == "started"]
    finished = [(r.id, status) for name, status, r in received if name == "finished"]
    assert started == ["RUNNING"] * 4
    assert (plain.id, "SUCCESSFUL") in finished and len(finished) == 4


def test_attempt_counts_the_rows_retries(record_file):
    result = django_tasks.with_context.enqueue("r")
    Task.objects.filter(pk=int(result.id)).update(retries=2)
    drain()
    seen = json.loads(record_file()[0])
    assert seen["attempt"] == 3
    assert seen["worker_ids"][:2] == ["", ""] and seen["worker_ids"][2]


def test_a_failure_lands_in_the_failed_view_and_task_finished_says_so(received):
    result = django_tasks.explode.enqueue("bad")
    drain()
    failed = Task.objects.failed().get()
    assert str(failed.pk) == result.id
    assert "RuntimeError: bad" in failed.error
    assert [(name, status) for name, status, _ in received] == [
        ("enqueued", "READY"),
        ("started", "RUNNING"),
        ("finished", "FAILED"),
    ]
    finished = [r for name, _, r in received if name == "finished"]
    (error,) = finished[0].errors
    assert error.exception_class is RuntimeError
    assert "RuntimeError: bad" in error.traceback


def test_a_receiver_that_raises_does_not_change_the_outcome(record_file, caplog):
    def broken(sender, **kwargs):
        raise LookupError("receiver bug")

    task_started.connect(broken)
    task_finished.connect(broken)
    try:
        django_tasks.record.enqueue("still runs")
        drain()
    finally:
        task_started.disconnect(broken)
        task_finished.disconnect(broken)
    assert record_file() == ["django still runs"]
    assert Task.objects.count() == 0
    assert any("receiver bug" in r.getMessage() for r in caplog.records)


def test_check_reports_options_taskq_does_not_take():
    settings = {"default": {"BACKEND": "taskq.django_tasks.TaskqBackend", "OPTIONS": {"x": 1}}}
    with override_settings(TASKS=settings):
        (error,) = task_backends["default"].check()
    assert error.id == "taskq.E011"
    assert default_task_backend.check() == []


@pytest.mark.processes
def test_a_worker_process_runs_django_tasks(workers):
    django_tasks.record.enqueue("from a process")
    django_tasks.async_record.enqueue("async in a process")
    django_tasks.mail.enqueue("m")
    django_tasks.explode.enqueue()
    done = workers.run("--burst", "-Q", "default,mail")
    assert done.returncode == 0, done.stderr
    assert sorted(workers.records()) == [
        "async async in a process",
        "django from a process",
        "mail m",
    ]
    assert "RuntimeError: boom" in Task.objects.failed().get().error


# Issue 11: the worker's TaskResult is the one enqueue() returned ---------------------


@pytest.mark.parametrize("deferred", [False, True])
def test_the_worker_sees_the_task_result_enqueue_returned(record_file, deferred):
    run_after = timezone.now() - dt.timedelta(seconds=1) if deferred else None
    task = django_tasks.describe.using(priority=20, queue_name="mail", run_after=run_after)
    enqueued = task.enqueue()
    drain()
    seen = json.loads(record_file()[0])
    assert seen["id"] == enqueued.id
    assert seen["enqueued_at"] == enqueued.enqueued_at.isoformat()
    assert (seen["priority"], seen["queue_name"]) == (20, "mail")
    assert seen["run_after"] == (run_after.isoformat() if deferred else None)


def test_signals_carry_the_enqueued_task_and_the_return_value(received):
    enqueued = django_tasks.answer.using(priority=20).enqueue()
    django_tasks.pair.enqueue()
    drain()
    finished = {r.task.name: r for name, _, r in received if name == "finished"}
    started = [r for name, _, r in received if name == "started"]
    assert started[0].task.priority == 20 and started[0].enqueued_at == enqueued.enqueued_at
    answer = finished["answer"]
    assert answer.status == TaskResultStatus.SUCCESSFUL and answer.return_value == 42
    assert answer.task.priority == 20 and answer.id == enqueued.id
    # Normalised to JSON, as ImmediateBackend does (django.utils.json.normalize_json).
    assert finished["pair"].return_value == [1, 2]


def test_a_return_value_that_is_not_json_fails_the_task_as_in_django(received):
    django_tasks.not_json.enqueue()
    drain()
    (finished,) = [r for name, _, r in received if name == "finished"]
    assert finished.status == TaskResultStatus.FAILED
    assert finished.errors[0].exception_class is TypeError
    assert "TypeError" in Task.objects.failed().get().error


def test_get_result_uses_djangos_wording():
    # django/tasks/backends/base.py, BaseTaskBackend.get_result.
    result = django_tasks.record.enqueue(1)
    with pytest.raises(
        NotImplementedError,
        match=r"^This backend does not support retrieving or refreshing results\.",
    ):
        django_tasks.record.get_result(result.id)
