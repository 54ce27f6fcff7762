"""Faults injected into real worker processes and real database servers.

What is promised: a task in flight when its worker dies is dirty, every other task runs
exactly once, a worker that lost its claim cannot finish the task, and workers outlive
a database restart.
"""

import os
import random
import signal
import subprocess
import time

import pytest
from django.db import connection
from django.test import override_settings

from taskq.conf import settings
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task, dirty_cutoff
from taskq.models import Worker as WorkerRow
from test_matrix.testapp.tasks import record, slow, slow_idempotent

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def enqueue_keys(count):
    enqueue_many(Call("test_matrix.testapp.tasks.record", args=[key]) for key in range(count))


def wait_for(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def assert_exactly_once_except_in_flight(records, count, max_in_flight):
    """Every key ran once, except those of tasks left dirty, which ran at most once."""
    keys = [int(line) for line in records]
    assert len(keys) == len(set(keys)), "a task ran twice"
    left = list(Task.objects.values_list("state", "args"))
    assert all(state == Task.State.STARTED for state, _ in left), left
    dirty = {int(args.strip("[]")) for _, args in left}
    assert len(dirty) <= max_in_flight
    assert set(keys) | dirty == set(range(count)), "a task was lost"
    return dirty


def test_kill_storm_loses_nothing_and_runs_nothing_twice(workers):
    count, kills = 5000, 20
    enqueue_keys(count)
    running = [workers.start("-l", "WARNING") for _ in range(2)]
    for _ in range(kills):
        time.sleep(random.uniform(0.1, 0.4))
        victim = running.pop(random.randrange(len(running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        running.append(workers.start("-l", "WARNING"))
    wait_for(lambda: not Task.objects.queued().exists(), 120, "the restarted workers did not drain")
    for process in running:
        workers.wait_until_registered(process)  # the last one may be fresh and idle
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    dirty = assert_exactly_once_except_in_flight(workers.records(), count, kills)
    # Each dirty row belongs to a killed worker, whose heartbeat stopped.
    wait_for(
        lambda: Task.objects.dirty().count() == len(dirty),
        settings.DIRTY_AFTER + 5,
        "a task in flight at a kill did not turn dirty",
    )


def test_a_paused_worker_cannot_finish_a_task_that_was_retried_meanwhile(workers):
    slow.delay("k", 2)
    paused = workers.start()
    workers.wait_for_record("start k")
    paused.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: Task.objects.dirty().count() == 1,
            settings.DIRTY_AFTER + 5,
            "the paused worker's task did not turn dirty",
        )
        assert Task.objects.dirty().retry() == 1  # what "Retry now" in the admin does
        other = workers.start()
        wait_for(
            lambda: workers.records().count("start k") == 2, 30, "the retried task did not run"
        )
    finally:
        paused.send_signal(signal.SIGCONT)
    wait_for(lambda: workers.records().count("end k") == 2, 30, "both runs did not end")
    wait_for(lambda: not Task.objects.exists(), 30, "the second run was not recorded")
    wait_for(
        lambda: "lost its claim" in paused.log.read_text(), 10, "the paused worker did not say"
    )
    for process in (paused, other):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


# Database restarts ----------------------------------------------------------------


def server_control(action):
    """Stop or start the database server under test (root, local servers only)."""
    if connection.vendor == "postgresql":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    elif action == "stop":
        subprocess.run(["mariadb-admin", "-uroot", "shutdown"], check=True, timeout=60)
        # The client returns before the server is gone, and starting it again while the
        # old process lingers would do nothing.
        wait_for(lambda: not mariadbd_running(), 60, "MariaDB did not stop")
    else:
        binary = subprocess.run(
            ["sh", "-c", "command -v mariadbd"], capture_output=True, text=True, check=True
        ).stdout.strip()
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", binary],
            check=True,
            timeout=60,
        )
    if action == "start":
        wait_for(server_answers, 60, f"{connection.vendor} did not come back")


def mariadbd_running():
    return subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode == 0


def server_answers():
    connection.close()
    try:
        connection.ensure_connection()
        return True
    except Exception:
        return False


@pytest.fixture
def restartable_server():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server to restart")
    if os.geteuid() != 0:
        pytest.skip("restarting the database server needs root")
    yield
    if not server_answers():
        server_control("start")


def test_workers_outlive_a_database_restart(workers, restartable_server):
    count = 5000
    enqueue_keys(count)
    running = [workers.start("-l", "INFO") for _ in range(2)]
    wait_for(lambda: len(workers.records()) > 500, 60, "the workers did not start draining")
    server_control("stop")
    time.sleep(1)
    server_control("start")
    try:
        wait_for(lambda: not Task.objects.queued().exists(), 120, "")
    except AssertionError:
        logs = "".join(process.log.read_text()[-3000:] for process in running)
        raise AssertionError(f"the workers did not carry on draining:\n{logs}") from None
    for process in running:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert_exactly_once_except_in_flight(workers.records(), count, max_in_flight=2)
    logs = "".join(process.log.read_text() for process in running)
    assert "Database 'default' unavailable" in logs


def test_a_worker_started_while_the_database_is_down_waits_for_it(workers, restartable_server):
    record.delay("after the outage")
    server_control("stop")
    try:
        process = workers.start()
        wait_for(
            lambda: (
                "unavailable" in process.log.read_text()
                and "retrying in" in process.log.read_text()
            ),
            60,
            "no log line about the wait",
        )
        assert process.poll() is None
    finally:
        server_control("start")
    workers.wait_for_record("after the outage", timeout=60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_a_worker_whose_heartbeat_keeps_failing_stops_claiming_and_exits_non_zero(workers):
    process = workers.start()
    wait_for(lambda: WorkerRow.objects.exists(), 30, "the worker did not register")
    WorkerRow.objects.all().delete()  # every later heartbeat write now fails
    wait_for(lambda: "Heartbeat failed" in process.log.read_text(), 10, "no heartbeat failure")
    record.delay("unseen")
    assert process.wait(timeout=settings.DIRTY_AFTER + 10) == 1
    log = process.log.read_text()
    assert "Heartbeat failed: worker row" in log
    assert "No heartbeat written for" in log and "while the database answers" in log
    assert "unseen" not in workers.records()
    assert Task.objects.queued().count() == 1


def test_a_dirty_acks_late_task_is_queued_again_exactly_once(workers):
    slow_idempotent.delay("k", 3)
    slow.delay("manual", 30)
    first = workers.start()
    second = workers.start()
    wait_for(lambda: "start manual" in workers.records(), 30, "the plain task did not start")
    wait_for(lambda: "start k" in workers.records(), 30, "the acks_late task did not start")
    # Kill whichever worker runs what; both tasks are now dirty.
    for process in (first, second):
        process.send_signal(signal.SIGKILL)
        process.wait()
    watchers = [workers.start() for _ in range(3)]  # all of them notice the dirty tasks
    wait_for(lambda: "end k" in workers.records(), settings.DIRTY_AFTER + 20, "not re-run")
    wait_for(lambda: Task.objects.count() == 1, 10, "the re-run was not recorded")
    assert workers.records().count("start k") == 2  # the killed run and one re-run
    (left,) = Task.objects.all()
    assert left.name.endswith(".slow") and left.state == Task.State.STARTED  # waits for a human
    logs = "".join(p.log.read_text() for p in watchers)
    assert logs.count("queued again: its worker died while it ran (acks_late)") == 1
    for process in watchers:
        workers.wait_until_registered(process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def skewed_clock(offset):
    """Environment that moves a process's wall clock by ``offset`` (libfaketime)."""
    return {"LD_PRELOAD": FAKETIME, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


#: The clock test's dirty-after: its workers are 10 minutes off, so any margin far below
#: that tells a worker judging by its own clock; a wider one than the suite's keeps a
#: beat delayed by a busy machine from reading as a death.
CLOCK_TEST_DIRTY_AFTER = 8


def test_workers_with_wrong_clocks_judge_time_by_the_database(workers):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's clock is the clock of the process that asks")
    if not os.path.exists(FAKETIME):
        if os.environ.get("CI"):
            pytest.fail("CI must run the clock test: install Debian's faketime")
        pytest.skip("libfaketime is not installed")
    dirty_after = {"TASKQ_TEST_DIRTY_AFTER": str(CLOCK_TEST_DIRTY_AFTER)}
    workers.start(**skewed_clock("+10m"), **dirty_after)
    workers.start(**skewed_clock("-10m"), **dirty_after)
    wait_for(lambda: WorkerRow.objects.count() == 2, 30, "the workers did not register")

    record.apply_async(("due in 3s",), countdown=3)
    time.sleep(2)
    assert "due in 3s" not in workers.records(), "a worker ran a task early"
    workers.wait_for_record("due in 3s", timeout=10)

    # A long acks_late task: if either worker judged heartbeats by its own clock, the
    # other would look dirty and the task would be queued again and run twice.
    with override_settings(TASKQ_DIRTY_AFTER=CLOCK_TEST_DIRTY_AFTER):
        slow_idempotent.delay("long", CLOCK_TEST_DIRTY_AFTER + 3)
        workers.wait_for_record("start long")
        deadline = time.monotonic() + CLOCK_TEST_DIRTY_AFTER + 2
        while time.monotonic() < deadline:
            assert Task.objects.active().count() == 1
            assert Task.objects.dirty().count() == 0
            assert WorkerRow.objects.filter(heartbeat__gte=dirty_cutoff()).count() == 2
            time.sleep(0.5)
    workers.wait_for_record("end long", timeout=30)
    assert workers.records().count("start long") == 1


def test_a_long_task_on_a_busy_machine_is_never_shown_dirty(workers):
    """A 20 s task (several times the dirty-after) while two other workers drain a
    queue flat out: its worker keeps beating, so it stays active the whole time."""
    slow.apply_async(("long", 20), queue="long")
    long_runner = workers.start("-Q", "long", "-l", "WARNING")
    workers.wait_for_record("start long")
    enqueue_keys(20_000)
    busy = [workers.start("-l", "WARNING") for _ in range(2)]
    while "end long" not in workers.records():
        assert Task.objects.filter(queue="long").dirty().count() == 0, "shown dirty"
        assert long_runner.poll() is None
        time.sleep(0.5)
    for process in (long_runner, *busy):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
