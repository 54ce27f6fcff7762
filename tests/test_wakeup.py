"""Idle workers: a task starts at its ETA, not a poll later, and on PostgreSQL a new
task wakes a worker at once (LISTEN/NOTIFY), while polling alone stays correct."""

import time

import pytest
from django.db import connection, transaction
from django.test import override_settings

from taskq.backends import engine_for, get_strategy
from taskq.models import Worker as WorkerRow
from test_matrix.testapp.tasks import record

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def idle_worker(workers, poll_interval):
    """Start a worker that polls only every ``poll_interval`` seconds, and let it idle."""
    process = workers.start(TASKQ_TEST_POLL_INTERVAL=str(poll_interval))
    workers.wait_until_registered(process)
    time.sleep(0.5)  # past its first, empty claim: it is waiting now
    return process


def seconds_until_recorded(workers, line, start, timeout):
    deadline = start + timeout
    while line not in workers.records():
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} did not run within {timeout}s")
        time.sleep(0.005)
    return time.monotonic() - start


def test_an_idle_worker_starts_a_task_at_its_eta_not_a_poll_later(workers):
    # Polling every 2 s (x0.5 to x1.5) alone would start it up to 3 s late.
    idle_worker(workers, poll_interval=2)
    start = time.monotonic()
    record.apply_async(("at eta",), countdown=4)
    late = seconds_until_recorded(workers, "at eta", start, timeout=15) - 4
    assert -0.05 < late < 0.5, late  # never early (by more than clock noise), barely late


def test_a_new_task_wakes_an_idle_postgresql_worker_at_once(workers):
    if not engine_for(connection).can_listen:
        pytest.skip(f"{connection.display_name} cannot wake a worker")
    idle_worker(workers, poll_interval=60)  # a poll would come 30 to 90 s later
    start = time.monotonic()
    with transaction.atomic():
        record.delay("woken")
        record.delay("woken too")  # one NOTIFY per transaction and queue
    assert seconds_until_recorded(workers, "woken too", start, timeout=10) < 5
    assert workers.records() == ["woken", "woken too"]


def test_a_rolled_back_task_wakes_nobody_and_the_next_one_does(workers):
    if not engine_for(connection).can_listen:
        pytest.skip(f"{connection.display_name} cannot wake a worker")
    idle_worker(workers, poll_interval=60)
    with pytest.raises(RuntimeError), transaction.atomic():
        record.delay("never")
        raise RuntimeError("rolled back")
    start = time.monotonic()
    with transaction.atomic():  # a new transaction must notify again
        record.delay("after the rollback")
    assert seconds_until_recorded(workers, "after the rollback", start, timeout=10) < 5
    assert "never" not in workers.records()


@pytest.mark.parametrize("prepared", [True, False])
def test_postgresql_claims_are_prepared_statements_unless_turned_off(prepared):
    if not type(get_strategy()).prepares_claims:
        pytest.skip(f"{type(get_strategy()).__name__} prepares no statements")
    connection.close()  # prepared statements live as long as their connection
    worker = WorkerRow.objects.create(
        ident="w",
        host="h",
        pid=1,
        queues="default",
        started_at="2026-01-01T00:00Z",
        heartbeat="2026-01-01T00:00Z",
    )
    record.delay("claimed")
    with override_settings(TASKQ_PREPARED_STATEMENTS=prepared):
        claim = get_strategy().claim(["default"], worker.pk)
    assert claim is not None and claim.name == "test_matrix.testapp.tasks.record"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%taskq_claim(%"],
        )
        assert cursor.fetchone()[0] == (1 if prepared else 0)
