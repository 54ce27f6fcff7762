"""The worker loop, in-process: outcomes, bad rows, expiry, logging and memory."""

import datetime as dt
import logging

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from taskq.backends import get_strategy
from taskq.enqueue import Call, enqueue
from taskq.models import Task
from taskq.models import Worker as WorkerRow
from taskq.worker import Worker
from test_matrix.testapp.tasks import exit_worker, fail, interrupt_worker, noop, record

pytestmark = pytest.mark.django_db(transaction=True)


def drain(**options):
    return Worker(["default"], burst=True, **options).run(handle_signals=False)


def test_success_deletes_and_failure_keeps_the_task():
    noop.delay()
    fail.delay("bad input")
    assert drain() == 0
    (failed,) = Task.objects.all()
    assert failed.state == Task.State.FAILED
    assert "ValueError: bad input" in failed.error
    assert failed.error.startswith("Traceback (most recent call last):")


def test_the_worker_row_exists_while_it_runs_and_is_removed_after(monkeypatch):
    seen = []
    noop.delay()
    original = Worker.record

    def spy(self, outcome):
        seen.append(list(WorkerRow.objects.values_list("ident", "queues")))
        original(self, outcome)

    monkeypatch.setattr(Worker, "record", spy)
    drain()
    ((ident, queues),) = seen[0]
    assert queues == "default"
    host, pid, random_part = ident.split(":")
    assert int(pid) > 0 and len(random_part) == 8
    assert WorkerRow.objects.count() == 0


def test_an_unregistered_name_fails_with_a_clear_error_and_nothing_is_imported():
    enqueue(Call("os.system", args=["echo pwned"]))
    noop.delay()
    drain()
    (task,) = Task.objects.all()
    assert (task.state, task.error) == (Task.State.FAILED, "unregistered task 'os.system'")


def test_corrupt_arguments_fail_the_task_and_the_worker_goes_on():
    bad = noop.delay()
    Task.objects.filter(pk=bad.id).update(args="[not json")
    noop.delay()
    drain()
    (task,) = Task.objects.all()
    assert task.state == Task.State.FAILED
    assert task.error.startswith(
        f"cannot decode the arguments of test_matrix.testapp.tasks.noop[{bad.id}]: DecodeError"
    )
    assert "not JSON" in task.error


@pytest.mark.parametrize(
    ("send", "error"),
    [
        (lambda: exit_worker.delay(), "SystemExit: 3"),
        (lambda: interrupt_worker.delay(), "KeyboardInterrupt: raised by the task"),
    ],
    ids=["SystemExit", "KeyboardInterrupt"],
)
def test_a_task_raising_system_exit_fails_and_the_worker_goes_on(send, error):
    send()
    noop.delay()
    assert drain() == 0
    (task,) = Task.objects.all()
    assert task.state == Task.State.FAILED
    assert error in task.error


def test_an_expired_task_is_dropped_with_a_log_line(caplog):
    expired = noop.apply_async(expires=timezone.now() - dt.timedelta(seconds=1))
    with caplog.at_level(logging.INFO, logger="taskq.worker"):
        drain()
    assert Task.objects.count() == 0
    assert f"Task test_matrix.testapp.tasks.noop[{expired.id}] expired; dropped" in caplog.messages


def test_start_and_end_are_logged_with_duration_and_fields(caplog):
    result = noop.delay()
    with caplog.at_level(logging.INFO, logger="taskq.worker"):
        drain()
    name = f"test_matrix.testapp.tasks.noop[{result.id}]"
    assert f"Task {name} started" in caplog.messages
    (end,) = [r for r in caplog.records if r.getMessage().startswith(f"Task {name} succeeded in ")]
    assert end.task_id == result.id and end.queue == "default" and end.attempt == 1
    assert end.duration >= 0


def test_max_tasks_stops_after_that_many():
    for _ in range(5):
        noop.delay()
    drain(max_tasks=3)
    assert Task.objects.count() == 2


def test_queues_limit_what_the_worker_takes():
    noop.apply_async(queue="mail")
    noop.delay()
    Worker(["mail"], burst=True).run(handle_signals=False)
    assert list(Task.objects.values_list("queue", flat=True)) == ["default"]


def test_future_tasks_wait():
    noop.apply_async(countdown=60)
    drain()
    assert Task.objects.future().count() == 1


@override_settings(DEBUG=True)
def test_debug_true_does_not_keep_a_query_log():
    for _ in range(300):
        noop.delay()
    drain()
    assert Task.objects.count() == 0
    assert len(connection.queries_log) < 30  # the last round only, not 300 tasks × 3 queries


def test_execute_wrappers_see_every_claim():
    # Claims go straight to the driver, except where something watches the connection:
    # an execute wrapper (instrumentation, the benchmark's profile) sees each of them.
    seen = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    for _ in range(50):
        noop.delay()
    with connection.execute_wrapper(watch):
        drain()
    assert Task.objects.count() == 0
    claims = [sql for sql in seen if "DELETE" in sql.upper() and "taskq_task" in sql]
    assert len(claims) >= 49  # the delete that goes with every claim after the first task


def test_rows_of_long_dead_workers_are_forgotten_unless_a_dirty_task_names_them():
    long_ago = timezone.now() - dt.timedelta(days=2)
    fields = {"host": "h", "pid": 1, "queues": "default", "started_at": long_ago}
    WorkerRow.objects.create(ident="dead", heartbeat=long_ago, **fields)
    crashed = WorkerRow.objects.create(ident="crashed", heartbeat=long_ago, **fields)
    WorkerRow.objects.create(ident="recent", heartbeat=timezone.now(), **fields)
    dirty = noop.apply_async(countdown=600)
    Task.objects.filter(pk=dirty.id).update(state=Task.State.STARTED, worker=crashed)
    drain()
    assert sorted(WorkerRow.objects.values_list("ident", flat=True)) == ["crashed", "recent"]
    assert Task.objects.dirty().get().worker_id == crashed.pk


def test_the_heartbeat_writes_the_outcome_counts(monkeypatch):
    written = []
    original = Worker.unregister

    def before_unregister(self):
        self_row = WorkerRow.objects.get(pk=self.row.pk)
        written.append((self.outcomes.succeeded, self.outcomes.failed))
        written.append((self_row.succeeded, self_row.failed))
        original(self)

    monkeypatch.setattr(Worker, "unregister", before_unregister)
    with override_settings(TASKQ_HEARTBEAT_INTERVAL=0.05, TASKQ_DIRTY_AFTER=1):
        noop.delay()
        noop.delay()
        fail.delay()
        slow_enough = Call("test_matrix.testapp.tasks.slow", args=["x", 0.3])
        enqueue(slow_enough)
        drain()
    assert written == [(3, 1), (3, 1)]


def test_a_claim_whose_answer_was_lost_is_queued_again(monkeypatch, tmp_path, caplog):
    """The claim commits, then the connection dies before the reply: the row is started
    in this worker's name but never ran. The worker puts it back and runs it once."""
    monkeypatch.setenv("TASKQ_TEST_RECORD", str(tmp_path / "record.txt"))
    record.delay("once")
    strategy = type(get_strategy())
    real_claim = strategy.claim
    lost = []

    def claim_then_lose_the_answer(self, *args):
        claim = real_claim(self, *args)
        if claim is not None and not lost:
            lost.append(claim.id)
            raise OperationalError("server closed the connection unexpectedly")
        return claim

    monkeypatch.setattr(strategy, "claim", claim_then_lose_the_answer)
    with caplog.at_level(logging.WARNING, logger="taskq.worker"):
        drain()
    assert lost and Task.objects.count() == 0
    assert (tmp_path / "record.txt").read_text() == "once\n"
    assert "Queued again 1 task(s) claimed before the connection died" in caplog.messages


@pytest.mark.parametrize(
    "args",
    ['[{"__taskq__": ["decimal", "x"]}]', '[{"__taskq__": ["nope", 1]}]', "[" * 100_000],
    ids=["bad decimal", "unknown type", "too deep"],
)
def test_any_undecodable_arguments_fail_only_that_task(args):
    bad = noop.delay()
    Task.objects.filter(pk=bad.id).update(args=args)
    noop.delay()
    assert drain() == 0
    (task,) = Task.objects.all()
    assert task.state == Task.State.FAILED
    assert task.error.startswith(
        f"cannot decode the arguments of test_matrix.testapp.tasks.noop[{bad.id}]"
    )
