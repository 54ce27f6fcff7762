"""Time limits, as in Celery, with real worker processes.

What is promised: at the soft limit ``SoftTimeLimitExceeded`` is raised in the task,
which may catch it; at the hard limit the task is interrupted and failed with
``TimeLimitExceeded`` within 2 s of the limit (measured by the worker from the task's
own start), and the worker goes on with the next task; a task that Python cannot
interrupt is failed by the heartbeat thread, and the worker exits with
``EXIT_STUCK_TASK`` for its supervisor to start a fresh one.
"""

import re

import pytest

from taskq.models import Task
from taskq.timelimits import EXIT_STUCK_TASK
from test_matrix.testapp.tasks import (
    limited_busy,
    limited_sleep,
    record,
    slow,
    soft_autoretry,
    soft_cleanup,
    uninterruptible,
)

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def failed_after(log, task_id):
    """The seconds the worker says the task ran before it was failed."""
    found = re.search(rf"\[{task_id}\] failed in ([0-9.]+)s: (\w+)", log)
    assert found, log
    return float(found.group(1)), found.group(2)


def assert_failed_at_the_limit(result, task_id, limit):
    assert result.returncode == 0, result.stderr
    ran, exception = failed_after(result.stderr, task_id)
    assert exception == "TimeLimitExceeded"
    assert limit <= ran < limit + 2, ran
    row = Task.objects.get(pk=task_id)
    assert row.state == Task.State.FAILED
    assert "taskq.context.TimeLimitExceeded: Task exceeded its time limit" in row.error


@pytest.mark.parametrize("task", [limited_sleep, limited_busy], ids=["sleeping", "busy"])
def test_the_hard_limit_fails_the_task_and_the_worker_goes_on(workers, task):
    limited = task.delay("k")
    record.delay("next")
    result = workers.run("--burst")
    assert_failed_at_the_limit(result, limited.id, 1)
    assert workers.records() == ["start k", "next"]
    assert not Task.objects.exclude(pk=limited.id).exists()


def test_the_time_limit_setting_applies_to_tasks_without_their_own(workers):
    limited = slow.delay("k", 60)
    record.delay("next")
    result = workers.run("--burst", TASKQ_TEST_TIME_LIMIT="1")
    assert_failed_at_the_limit(result, limited.id, 1)
    assert workers.records() == ["start k", "next"]


def test_a_task_may_catch_the_soft_limit_to_clean_up(workers):
    soft_cleanup.delay("k")
    result = workers.run("--burst")
    assert result.returncode == 0, result.stderr
    assert workers.records() == ["start k", "cleanup k"]
    assert "succeeded" in result.stderr
    assert not Task.objects.exists()


def test_an_uncaught_soft_limit_retries_per_autoretry_for_then_fails(workers):
    task = soft_autoretry.delay("k")
    result = workers.run("--burst")
    assert result.returncode == 0, result.stderr
    assert workers.records() == ["start k", "start k"]
    ran, exception = failed_after(result.stderr, task.id)
    assert exception == "SoftTimeLimitExceeded"
    row = Task.objects.get(pk=task.id)
    assert row.state == Task.State.FAILED and row.retries == 1
    assert "SoftTimeLimitExceeded: soft time limit (0.5s) exceeded" in row.error


def test_an_uninterruptible_task_is_failed_by_the_heartbeat_and_the_worker_exits(workers):
    stuck = uninterruptible.delay("k")
    record.delay("next")
    result = workers.run("--burst")
    assert result.returncode == EXIT_STUCK_TASK, result.stderr
    assert "it could not be interrupted" in result.stderr
    assert workers.records() == ["start k"]
    row = Task.objects.get(pk=stuck.id)
    assert row.state == Task.State.FAILED
    assert row.error.startswith("TimeLimitExceeded: Task exceeded its time limit of 0.5s")
    # The supervisor starts a fresh worker, which goes on with the next task.
    assert workers.run("--burst").returncode == 0
    assert workers.records() == ["start k", "next"]
