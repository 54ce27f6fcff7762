"""Real worker processes against the real database: concurrency, signals, crashes."""

import signal
import time

import pytest
from django.db import connection

from taskq.conf import settings
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task
from test_matrix.testapp.tasks import noop, record, slow

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

TASKS = 2000
WORKERS = 4


def test_four_workers_run_every_task_exactly_once(workers, strategy_cls):
    enqueue_many(
        Call("test_matrix.testapp.tasks.record", args=[key], priority=key % 3)
        for key in range(TASKS)
    )
    processes = [
        workers.start("--burst", "-l", "WARNING", strategy=strategy_cls) for _ in range(WORKERS)
    ]
    for process in processes:
        process.wait(timeout=300)
    logs = "\n".join(p.log.read_text() for p in processes)
    assert [p.returncode for p in processes] == [0] * WORKERS, logs
    keys = [int(line) for line in workers.records()]
    assert len(keys) == TASKS, (
        f"{TASKS - len(set(keys))} missing, {len(keys) - len(set(keys))} duplicated"
    )
    assert sorted(keys) == list(range(TASKS))
    assert Task.objects.count() == 0


def test_sigkill_during_a_task_leaves_it_dirty(workers, wait_until):
    slow.delay("k", 60)
    process = workers.start()
    workers.wait_for_record("start k")
    assert Task.objects.active().count() == 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = time.monotonic()
    wait_until(
        lambda: Task.objects.dirty().count() == 1,
        timeout=settings.DIRTY_AFTER + 2 * settings.HEARTBEAT_INTERVAL + 2,
        message="the killed worker's task did not turn dirty within the threshold",
    )
    assert time.monotonic() - killed_at >= settings.DIRTY_AFTER - 2 * settings.HEARTBEAT_INTERVAL
    assert Task.objects.active().count() == 0
    assert "end k" not in workers.records()


def test_sigterm_finishes_the_current_task_then_exits_zero(workers):
    slow.delay("k", 2)
    record.delay("after")  # must not be started once the worker is stopping
    process = workers.start()
    workers.wait_for_record("start k")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert workers.records() == ["start k", "end k"]
    assert list(Task.objects.values_list("name", flat=True)) == ["test_matrix.testapp.tasks.record"]
    assert "Signal 15: finishing the current task, then exiting" in process.log.read_text()


def test_a_second_signal_exits_at_once_and_the_task_turns_dirty(workers, wait_until):
    slow.delay("k", 60)
    process = workers.start()
    workers.wait_for_record("start k")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) != 0
    assert "end k" not in workers.records()
    wait_until(lambda: Task.objects.dirty().count() == 1, timeout=settings.DIRTY_AFTER + 3)


def test_an_idle_worker_picks_up_new_tasks(workers):
    workers.start()
    time.sleep(1)
    record.delay("late")
    workers.wait_for_record("late", timeout=10)


def test_a_bad_strategy_setting_stops_the_worker_with_the_message(workers):
    noop.delay()
    result = workers.run(TASKQ_CLAIM_STRATEGY="fastest")
    assert result.returncode == 1
    assert "TASKQ_CLAIM_STRATEGY='fastest' is not one of None, 'skip_locked'" in result.stderr
    assert Task.objects.queued().count() == 1


def test_forcing_skip_locked_without_it_is_refused_at_start(workers):
    if connection.features.has_select_for_update_skip_locked:
        pytest.skip(f"{connection.display_name} has SKIP LOCKED")
    noop.delay()
    result = workers.run(TASKQ_CLAIM_STRATEGY="skip_locked")
    assert result.returncode == 1
    assert "TASKQ_CLAIM_STRATEGY='skip_locked' is refused" in result.stderr
    assert "has no SELECT ... FOR UPDATE SKIP LOCKED" in result.stderr
    assert Task.objects.queued().count() == 1


def kill_other_connections():
    """Drop every other session on the test database, as a server restart would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.rowcount
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for session in ids:
            cursor.execute("KILL %s", [session])
        return len(ids)


def test_a_lost_connection_is_logged_and_the_worker_reconnects(workers):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server connection to lose")
    process = workers.start()
    record.delay("before")
    workers.wait_for_record("before")
    assert kill_other_connections() >= 1
    record.delay("after")
    workers.wait_for_record("after", timeout=30)
    assert process.poll() is None
    log = process.log.read_text()
    assert "Database 'default' unavailable" in log or "Heartbeat failed" in log, log


def test_worker_help_lists_its_options(workers):
    result = workers.run("--help")
    assert result.returncode == 0


def test_an_idle_worker_stops_at_once_on_sigterm_however_often_it_polls(workers):
    # The stop signal rings a self-pipe: threading.Event.set() in a signal handler can
    # deadlock against the Event.wait() it interrupts, and the worker would never exit.
    processes = [workers.start(TASKQ_TEST_POLL_INTERVAL="0.001") for _ in range(6)]
    for process in processes:
        workers.wait_until_registered(process)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=15) == 0, process.log.read_text()
        assert "Signal 15: finishing the current task, then exiting" in process.log.read_text()
