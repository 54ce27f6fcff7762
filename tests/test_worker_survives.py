"""Issue 10: the worker survives tasks that misbehave towards it, with Django's defaults.

Every test runs real worker processes against the database under test; the matrix's
settings leave ``CONN_MAX_AGE`` at Django's default, 0.
"""

from __future__ import annotations

import logging
import os
import signal

import pytest
from django.conf import settings
from django.db import OperationalError

from taskq.backends import get_strategy
from taskq.models import Task
from taskq.worker import EXIT_DATABASE_REFUSED, Worker
from test_matrix.testapp.tasks import (
    fork_and_return,
    leave_atomic_open,
    leave_autocommit_off_and_raise,
    noop,
    record,
    record_connection,
    record_pid,
    replace_stop_handlers,
    slow,
)

pytestmark = pytest.mark.processes


def test_with_conn_max_age_0_a_worker_keeps_one_connection_across_tasks(workers):
    assert settings.DATABASES["default"].get("CONN_MAX_AGE", 0) == 0
    for key in range(5):
        record_connection.delay(key)
    done = workers.run("--burst")
    assert done.returncode == 0, done.stderr
    # "<key> <distinct connections seen so far>": the first one, for every task.
    assert workers.records() == [f"{key} 1" for key in range(5)]


def test_keep_connections_off_lets_conn_max_age_close_them(workers):
    for key in range(3):
        record_connection.delay(key)
    done = workers.run("--burst", TASKQ_TEST_KEEP_CONNECTIONS="0")
    assert done.returncode == 0, done.stderr
    assert workers.records() == ["0 1", "1 2", "2 3"]


def test_autocommit_turned_off_cannot_hide_the_failure(workers):
    """The fail write used to be rolled back with the task's transaction: the row
    showed active for as long as the worker lived."""
    failing = leave_autocommit_off_and_raise.delay("a")
    noop.delay()
    done = workers.run("--burst")
    assert done.returncode == 0, done.stderr
    row = Task.objects.get()
    assert (row.pk, row.state) == (failing.id, Task.State.FAILED)
    assert "ValueError: after turning autocommit off" in row.error
    assert "TransactionLeftOpen: the task returned with a transaction" in row.error
    # The task's own uncommitted write went with its transaction.
    assert "inner a" not in workers.records()


def test_an_atomic_block_left_open_fails_the_task_and_rolls_its_work_back(workers):
    left = leave_atomic_open.delay("b")
    record.delay("after")
    done = workers.run("--burst")
    assert done.returncode == 0, done.stderr
    row = Task.objects.get()
    assert (row.pk, row.state) == (left.id, Task.State.FAILED)
    assert "TransactionLeftOpen: the task returned with an atomic() block" in row.error
    assert "its uncommitted work was rolled back" in row.error
    # The worker went on: the next task ran, the enqueue inside the open block did not.
    assert workers.records() == ["after"]


def test_a_task_that_forks_leaves_the_loop_to_the_parent(workers):
    fork_and_return.delay("f")
    for key in range(3):
        record_pid.delay(key)
    worker = workers.start("--burst")
    worker.wait(timeout=60)
    assert worker.returncode == 0
    lines = workers.records()
    parent = [line for line in lines if line.startswith("f parent")]
    child = [line for line in lines if line.startswith("f child")]
    assert len(parent) == len(child) == 1
    # Every later task ran in the worker itself, none in the child; nothing is dirty.
    assert sorted(lines[-3:]) == [f"{key} {worker.pid}" for key in range(3)]
    assert Task.objects.count() == 0
    assert "lost its claim" not in (workers.logs / "worker-0.log").read_text()


def test_a_task_that_replaces_the_stop_handlers_does_not_keep_the_worker_running(workers):
    replace_stop_handlers.delay()
    slow.delay("s", 2)
    worker = workers.start()
    workers.wait_until_registered(worker)
    workers.wait_for_record("start s")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert workers.records() == ["start s", "end s"]
    assert "replaced the handler of signal" in (workers.logs / "worker-0.log").read_text()


@pytest.mark.django_db(transaction=True)
def test_a_success_whose_delete_committed_before_the_connection_died_is_not_lost(
    monkeypatch, caplog
):
    """The delete of a succeeded task commits with the next claim, then the reply is
    lost: the worker must not take the missing row for a claim it lost."""
    noop.delay()
    noop.delay()
    strategy = type(get_strategy())
    real = strategy.complete_and_claim
    lost = []

    def complete_then_lose_the_answer(self, *args):
        answer = real(self, *args)
        if not lost:
            lost.append(args[0].id)
            raise OperationalError("server closed the connection unexpectedly")
        return answer

    monkeypatch.setattr(strategy, "complete_and_claim", complete_then_lose_the_answer)
    with caplog.at_level(logging.INFO, logger="taskq.worker"):
        assert Worker(["default"], burst=True).run(handle_signals=False) == 0
    assert lost and Task.objects.count() == 0
    assert not [m for m in caplog.messages if "lost its claim" in m]


def test_the_stop_pipe_is_closed_on_every_path(monkeypatch):
    """A worker that never got its database (a stop before it answered) closes its
    self-pipe too: a process running many workers in turn must not leak descriptors."""
    worker = Worker(["default"])
    worker.stopping = True  # run() returns at once, before connecting
    read_end = worker.wake.read_end
    assert worker.run(handle_signals=False) == 0
    with pytest.raises(OSError):
        os.fstat(read_end)


def test_a_worker_without_its_table_says_run_migrate_and_exits(workers):
    """A refusal from a database that answers is not an outage: no "retrying" forever,
    with --burst or without."""
    from tests.test_command_errors import without_the_task_table

    with without_the_task_table():
        for args in (["--burst"], []):
            done = workers.run(*args, timeout=60)
            assert done.returncode == EXIT_DATABASE_REFUSED, done.stderr
            assert "run `manage.py migrate`" in done.stderr
            assert "unavailable" not in done.stderr
