"""Management commands end a database refusal or a bad ``-Q`` with a one-line
``CommandError`` that says what to do, never with a traceback."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from taskq.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def without_the_task_table():
    """As if ``migrate`` had not run yet: the task table is renamed away meanwhile."""
    table = connection.ops.quote_name(Task._meta.db_table)
    away = connection.ops.quote_name(f"{Task._meta.db_table}_away")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {away}")
    try:
        yield
    finally:
        connection.close()  # a PostgreSQL connection may hold a failed transaction
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {away} RENAME TO {table}")


def one_line_error(command, *args):
    with pytest.raises(CommandError) as info:
        call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_taskq_stats_without_the_table_says_run_migrate():
    with without_the_task_table():
        message = one_line_error("taskq_stats")
    assert message.startswith("database 'default' refused the statement: ")
    assert message.endswith("run `manage.py migrate`")


def test_taskq_enqueue_without_the_table_says_run_migrate():
    with without_the_task_table():
        message = one_line_error("taskq_enqueue", "test_matrix.testapp.tasks.noop")
    assert message.startswith("cannot enqueue test_matrix.testapp.tasks.noop: database 'default'")
    assert message.endswith("run `manage.py migrate`")


@pytest.mark.processes
def test_taskq_stats_as_a_process_prints_no_traceback(workers):
    with without_the_task_table():
        result = subprocess.run(
            [sys.executable, "-m", "django", "taskq_stats"],
            env=workers.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("CommandError: database 'default' refused the statement")


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ("*", "-Q/--queues: queue '*' is not a wildcard"),
        ("mail,,default", "-Q/--queues: queue must be a name of 1 to 100 characters, not ''"),
        ("", "-Q/--queues: queue must be a name of 1 to 100 characters, not ''"),
        ("x" * 101, "-Q/--queues: queue must be a name of 1 to 100 characters"),
    ],
    ids=["wildcard", "empty name", "nothing", "too long"],
)
def test_a_bad_queue_list_stops_the_worker_before_it_starts(queues, message):
    assert one_line_error("taskq_worker", "-Q", queues, "--burst").startswith(message)
    assert not Task.objects.exists()


def test_many_queues_are_checked_quickly_and_duplicates_dropped():
    from taskq.names import check_queues

    queues = [f"q{i}" for i in range(260_000)]
    assert check_queues([*queues, *queues]) == queues
