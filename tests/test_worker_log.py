"""What an operator reads in a worker's log: every line explains itself.

In-process tests read the records (caplog); process tests read what ``taskq_worker``
writes to stderr, as a supervisor or a log shipper would.
"""

import json
import logging
import os
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

import taskq
from taskq import registry
from taskq.models import Task
from taskq.worker import Worker
from test_matrix.testapp.tasks import flaky, noop, retries_forever_then_fails, says

pytestmark = pytest.mark.django_db(transaction=True)


def drain(**options):
    return Worker(["default"], burst=True, **options).run(handle_signals=False)


def messages(caplog, level=logging.DEBUG):
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_retry_and_failure_lines_say_which_attempt_and_the_failure_has_its_traceback(caplog):
    result = flaky.delay("broken")
    with caplog.at_level(logging.INFO, logger="taskq"):
        drain()
    label = f"test_matrix.testapp.tasks.flaky[{result.id}]"
    (retry,) = [r for r in caplog.records if "will retry" in r.getMessage()]
    assert re.fullmatch(
        rf"Task {re.escape(label)} will retry in 0s after attempt 1 of 2 \(ran [0-9.]+s\): "
        r"ValueError\('broken'\)",
        retry.getMessage(),
    )
    assert (retry.attempt, retry.max_attempts) == (1, 2)
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert re.fullmatch(
        rf"Task {re.escape(label)} failed in [0-9.]+s: ValueError\('broken'\) \(attempt 2 of 2\)",
        failure.getMessage(),
    )
    assert (failure.attempt, failure.max_attempts, failure.task_id) == (2, 2, result.id)
    # The traceback goes with the line, as logger.exception() would send it.
    assert failure.exc_info[1].args == ("broken",)
    text = logging.Formatter().format(failure)
    assert "Traceback (most recent call last):" in text and "ValueError: broken" in text


def test_a_task_without_a_retry_limit_says_so(caplog):
    retries_forever_then_fails.delay()
    with caplog.at_level(logging.INFO, logger="taskq"):
        drain()
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage().endswith("(attempt 1 of ∞)")
    assert failure.max_attempts is None


def test_the_start_and_stop_lines_say_what_runs_where_and_how_it_ended(caplog):
    noop.delay()
    says.delay("hi")
    flaky.delay()
    with caplog.at_level(logging.INFO, logger="taskq"):
        drain()
    start = next(m for m in messages(caplog) if " started: database " in m)
    assert start.startswith(f"taskq {taskq.__version__} worker ")
    assert f"database 'default' ({connection.display_name})" in start
    assert f"queues default, {len(registry.names())} registered tasks" in start
    assert re.search(r"claim strategy (skip_locked|optimistic) \(\w+Strategy\)", start)
    stop = messages(caplog)[-1]
    assert stop.endswith(
        "stopped after 4 tasks: 2 succeeded, 1 failed, 1 retried, 0 expired, 0 cancelled"
    )
    (record,) = [r for r in caplog.records if r.getMessage() == stop]
    assert (record.tasks_succeeded, record.tasks_failed, record.tasks_retried) == (2, 1, 1)


def test_debug_adds_the_claims_the_writes_and_the_waits(caplog):
    noop.delay()
    flaky.delay()
    with caplog.at_level(logging.INFO, logger="taskq"):
        drain()
    info = messages(caplog)
    Task.objects.all().delete()
    caplog.clear()
    noop.delay()
    flaky.delay()
    late = noop.apply_async(countdown=0.3)
    # A poll interval longer than the countdown: the first wait is until the ETA.
    with caplog.at_level(logging.DEBUG, logger="taskq"), override_settings(TASKQ_POLL_INTERVAL=2):
        Worker(["default"], max_tasks=4).run(handle_signals=False)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert not [m for m in info if m.startswith(("Claimed ", "Recorded ", "Nothing due"))]
    claims = [m for m in debug if m.startswith("Claimed ")]
    assert len(claims) == 4  # noop, flaky twice, the late noop
    assert "attempt 2" in [m for m in claims if ".flaky[" in m][1]
    assert [m for m in debug if m.startswith("Recorded ")] == [
        f"Recorded test_matrix.testapp.tasks.flaky[{late.id - 1}]: queued again",
        f"Recorded test_matrix.testapp.tasks.flaky[{late.id - 1}]: kept as failed",
        f"Recorded test_matrix.testapp.tasks.noop[{late.id}]: deleted",
    ]
    assert any(m.startswith("Deleted test_matrix.testapp.tasks.noop[") for m in debug)
    assert any(
        m.startswith("Nothing due in default; waiting up to ") and m.endswith("(the next ETA)")
        for m in debug
    )
    assert Task.objects.count() == 1  # the failed flaky


# What taskq_worker writes -------------------------------------------------------------


def run_three_tasks(workers, *args, **env):
    noop.delay()
    says.delay("hello from the task")
    failing = flaky.delay("kaput")
    done = workers.run("--burst", *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stderr, failing.id


def test_the_worker_writes_its_lines_the_tasks_lines_and_the_traceback(workers):
    log, failing = run_three_tasks(workers)
    assert re.search(r"INFO taskq\.worker\[\d+\] taskq [\d.]+ worker \S+ started: database", log)
    assert re.search(r"INFO test_matrix\.testapp\.tasks\[\d+\] the task says hello from the", log)
    assert f"flaky[{failing}] will retry in 0s after attempt 1 of 2" in log
    assert re.search(rf"ERROR .*flaky\[{failing}\] failed in .* \(attempt 2 of 2\)\n", log)
    assert "Traceback (most recent call last):" in log and "\nValueError: kaput\n" in log
    assert "2 succeeded, 1 failed, 1 retried, 0 expired, 0 cancelled" in log


def test_no_task_logs_leaves_out_the_tasks_own_lines(workers):
    log, _ = run_three_tasks(workers, "--no-task-logs")
    assert "the task says" not in log
    assert "2 succeeded, 1 failed, 1 retried" in log


def test_json_logs_are_one_object_a_line_with_the_task_fields(workers):
    log, failing = run_three_tasks(workers, "--log-format", "json")
    lines = [json.loads(line) for line in log.splitlines()]
    assert {"timestamp", "levelname", "name", "process", "message"} <= set(lines[0])
    (own,) = [line for line in lines if line["name"] == "test_matrix.testapp.tasks"][:1]
    assert own["message"] == "the task says hello from the task"
    (failure,) = [line for line in lines if line["levelname"] == "ERROR"]
    assert (failure["task_id"], failure["attempt"], failure["max_attempts"]) == (failing, 2, 2)
    assert failure["task_name"] == "test_matrix.testapp.tasks.flaky"
    assert failure["queue"] == "default" and failure["duration"] >= 0
    assert failure["exc_info"].endswith("ValueError: kaput")
    (stop,) = [line for line in lines if " stopped after " in line["message"]]
    assert (stop["tasks_succeeded"], stop["tasks_failed"], stop["tasks_retried"]) == (2, 1, 1)


def test_json_logs_without_python_json_logger_is_a_clear_error(workers, tmp_path):
    stub = tmp_path / "stub" / "pythonjsonlogger"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('not installed here')\n")
    path = os.pathsep.join([str(tmp_path / "stub"), workers.env()["PYTHONPATH"]])
    done = workers.run("--burst", "--log-format", "json", PYTHONPATH=path)
    assert done.returncode == 1
    assert "CommandError: --log-format json needs python-json-logger" in done.stderr
    assert "[json-logs]" in done.stderr


def test_a_project_that_configures_logging_gets_no_handler_from_the_worker(workers, tmp_path):
    routed = tmp_path / "routed.log"
    logging_setting = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(routed)}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    (tmp_path / "with_logging.py").write_text(
        f"from {settings.SETTINGS_MODULE} import *  # noqa\nLOGGING = {logging_setting!r}\n"
    )
    path = os.pathsep.join([str(tmp_path), workers.env()["PYTHONPATH"]])
    log, failing = run_three_tasks(
        workers, "--log-format", "json", DJANGO_SETTINGS_MODULE="with_logging", PYTHONPATH=path
    )
    assert "--log-format json ignored: the project's LOGGING routes the log lines" in (
        routed.read_text()
    )
    assert "the task says hello" in routed.read_text()
    assert f"flaky[{failing}] failed in" in routed.read_text()
    assert "flaky" not in log  # nothing of taskq's own on stderr
