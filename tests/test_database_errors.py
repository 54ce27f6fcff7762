"""Database errors are told apart: an outage is waited out, contention retried soon, and a
refusal (no table, a read-only database, too many parameters) is permanent, with a
message that says what to do. Each case is provoked on the real database under test."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from taskq.backends.errors import ErrorKind, classify, describe, diagnose
from taskq.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(statement, *, on=None):
    """Run ``statement(cursor)`` and return the DatabaseError it raised."""
    target = on or connection
    with pytest.raises(DatabaseError) as info:
        with target.cursor() as cursor:
            statement(cursor)
    return info.value


@contextlib.contextmanager
def second_connection(**options):
    """Another connection to the test database, with ``options`` added to its OPTIONS."""
    other = connection.copy()
    other.settings_dict = {
        **other.settings_dict,
        "OPTIONS": {**other.settings_dict.get("OPTIONS", {}), **options},
    }
    try:
        yield other
    finally:
        with contextlib.suppress(DatabaseError):  # a killed connection cannot close cleanly
            other.close()


def a_task():
    return Task.objects.create(name="x", eta=timezone.now())


def test_a_missing_table_is_permanent_and_says_migrate():
    error = error_of(lambda cursor: cursor.execute("SELECT id FROM taskq_no_such_table"))
    assert classify(connection, error) is ErrorKind.PERMANENT
    message = describe(connection, error)
    assert "run `manage.py migrate`" in message and "taskq_no_such_table" in message
    assert message.startswith("database 'default' refused the statement: ")
    assert "\n" not in message


def test_a_read_only_database_is_permanent():
    task = a_task()

    def write(cursor):
        cursor.execute("UPDATE taskq_task SET retries = 1 WHERE id = %s", [task.pk])

    if connection.vendor == "sqlite":  # a second connection that may only read the file
        name = connection.settings_dict["NAME"]
        other = connection.copy()
        other.settings_dict = {**other.settings_dict, "NAME": f"file:{name}?mode=ro"}
        try:
            error = error_of(write, on=other)
            assert classify(other, error) is ErrorKind.PERMANENT
            message = describe(other, error)
            assert str(name) in message and "cannot be written" in message
        finally:
            other.close()
        return
    read_only = {
        "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "mysql": "SET SESSION TRANSACTION READ ONLY",
    }[connection.vendor]
    with second_connection() as other:
        with other.cursor() as cursor:
            cursor.execute(read_only)
        error = error_of(write, on=other)
        assert classify(other, error) is ErrorKind.PERMANENT
        assert "read-only" in describe(other, error)


def test_too_many_parameters_is_permanent():
    if connection.features.max_query_params is None:
        pytest.skip(f"{connection.display_name} has no limit on a query's parameters")
    queues = [f"q{i}" for i in range(260_000)]  # a worker started with that many in -Q
    with pytest.raises(DatabaseError) as info:
        Task.objects.filter(queue__in=queues).exists()
    assert classify(connection, info.value) is ErrorKind.PERMANENT
    assert "more parameters than" in describe(connection, info.value)


def test_a_row_locked_by_another_connection_is_busy_not_an_outage():
    task = a_task()
    holder_ready, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with second_connection() as holder:
            with holder.cursor() as cursor:
                if connection.vendor == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                else:
                    cursor.execute("BEGIN")
                    cursor.execute("SELECT id FROM taskq_task WHERE id = %s FOR UPDATE", [task.pk])
                holder_ready.set()
                release.wait(30)
                cursor.execute("ROLLBACK")

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    try:
        assert holder_ready.wait(30)
        short_wait = {
            "sqlite": None,
            "postgresql": "SET lock_timeout = '100ms'",
            "mysql": "SET SESSION innodb_lock_wait_timeout = 1",
        }[connection.vendor]
        with second_connection(**({"timeout": 0.1} if short_wait is None else {})) as waiter:
            if short_wait:
                with waiter.cursor() as cursor:
                    cursor.execute(short_wait)
            error = error_of(
                lambda cursor: cursor.execute(
                    "UPDATE taskq_task SET retries = 1 WHERE id = %s", [task.pk]
                ),
                on=waiter,
            )
            diagnosis = diagnose(waiter, error)
    finally:
        release.set()
        thread.join()
    assert diagnosis.kind is ErrorKind.BUSY, diagnosis
    assert diagnosis.message.startswith("database 'default' is busy: ")


def test_a_connection_closed_under_the_client_is_an_outage():
    with second_connection() as other:
        other.ensure_connection()
        other.connection.close()
        error = error_of(lambda cursor: cursor.execute("SELECT 1"), on=other)
        assert classify(other, error) is ErrorKind.OUTAGE, describe(other, error)
        assert describe(other, error).startswith("database 'default' is unavailable: ")


def test_a_connection_killed_by_the_server_is_an_outage():
    kill = {
        "postgresql": ("SELECT pg_backend_pid()", "SELECT pg_terminate_backend(%s)"),
        "mysql": ("SELECT CONNECTION_ID()", "KILL %s"),
    }.get(connection.vendor)
    if kill is None:
        pytest.skip(f"{connection.display_name} has no server to end a session")
    with second_connection() as victim:
        with victim.cursor() as cursor:
            cursor.execute(kill[0])
            (pid,) = cursor.fetchone()
        with connection.cursor() as cursor:
            cursor.execute(kill[1], [pid])
        error = error_of(lambda cursor: cursor.execute("SELECT 1"), on=victim)
        assert classify(victim, error) is ErrorKind.OUTAGE, describe(victim, error)
