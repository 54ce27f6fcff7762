"""PostgreSQL: the whole claim in one ``UPDATE … RETURNING`` round trip, and the delete
of the task that just succeeded together with the next claim in one statement.

Both statements are prepared once per connection (server-side binding): planning the
claim costs about as much as running it. Django turns psycopg's automatic preparation
off for the sake of transaction-pooling PgBouncers older than 1.21; set
``TASKQ_PREPARED_STATEMENTS = False`` behind one of those. An idle worker ``LISTEN``s
while it waits, and a trigger on the task table (migration ``0004_notify_trigger``)
notifies the queues of every insert when it commits, so a new task wakes it at once.
The notification is a hint: polling alone finds every task.

The row is chosen by a scalar sub-select (``WHERE id = (SELECT … LIMIT 1 FOR UPDATE
SKIP LOCKED)``): an ``IN (…)`` could let the planner turn it into a join that locks and
updates more rows than the limit. ``state`` is compared with a literal so the planner
can use the partial claim index, which holds queued rows only and is read in the claim's
order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.alarm import Alarm
from taskq.backends.base import CLAIM_FIELDS, Claim
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.conf import settings
from taskq.models import Task

psycopg: Any
try:  # imported by name: the driver is an optional extra, and mypy may not have it
    psycopg = importlib.import_module("psycopg")
except ImportError:  # psycopg2, or no PostgreSQL driver at all
    psycopg = None

#: The channel the task table's trigger notifies; the payload is a queue name.
CHANNEL = "taskq"
#: A ``prepare_threshold`` no statement reaches by repetition.
ONLY_WHEN_ASKED = 2**62
PreparingCursor: Any = None
if psycopg is not None:

    class PreparingCursor(psycopg.Cursor):  # type: ignore[no-redef]
        """A server-binding cursor that prepares every statement it runs."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", True)
            return super().execute(query, params, **kwargs)


@lru_cache
def _claim_sql(quote: Callable[[str], str], queue_count: int) -> str:
    """Return the claim for ``queue_count`` queues; only placeholders carry values."""
    table = quote(Task._meta.db_table)
    queue_test = "= %s" if queue_count == 1 else f"IN ({', '.join(['%s'] * queue_count)})"
    returning = ", ".join(quote(name) for name in CLAIM_FIELDS)
    # statement_timestamp(): the database's clock, the same as taskq.clock.DatabaseNow.
    return (
        f"UPDATE {table} SET state = {Task.State.STARTED:d}, version = version + 1, "
        f"worker_id = %s, started_at = statement_timestamp() "
        f"WHERE id = (SELECT id FROM {table} "
        f"WHERE state = {Task.State.QUEUED:d} AND queue {queue_test} "
        f"AND eta <= statement_timestamp() "
        f"ORDER BY priority DESC, eta, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        f"RETURNING {returning}, COALESCE(expires <= statement_timestamp(), false)"
    )


@lru_cache
def _complete_and_claim_sql(quote: Callable[[str], str], queue_count: int) -> str:
    """Return the delete of a succeeded task and the next claim as one statement.

    Both run on one snapshot: the deleted row is started, so it is never the claimed
    one. The outer select returns exactly one row, whether or not a task was claimed:
    the count of deleted rows (0 if the claim on it was lost), then the claim or NULLs.
    """
    table = quote(Task._meta.db_table)
    return (
        f"WITH done AS (DELETE FROM {table} WHERE id = %s AND version = %s "
        f"AND state = {Task.State.STARTED:d} RETURNING 1), "
        f"claimed AS ({_claim_sql(quote, queue_count)}) "
        f"SELECT (SELECT count(*) FROM done), claimed.* FROM (VALUES (1)) AS one "
        f"LEFT JOIN claimed ON true"
    )


class PostgreSQLStrategy(SkipLockedStrategy):
    can_return_rows_from_update = True

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "postgresql" and super().is_supported(connection)

    def __init__(self, using: str) -> None:
        super().__init__(using)
        #: The driver connection this worker LISTENs on (a new one after a reconnect).
        self.listening_on: Any = None
        #: The queues this worker waits for, and whether one was named since it last
        #: waited.
        self.queues: set[str] = set()
        self.hinted = False
        #: Read once: no settings lookup per task.
        self.prepare = PreparingCursor is not None and settings.PREPARED_STATEMENTS

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        sql = _claim_sql(self.connection.ops.quote_name, len(queues))
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, [worker_id, *queues])
            row = cursor.fetchone()
        return None if row is None else Claim.from_row(row)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        sql = _complete_and_claim_sql(self.connection.ops.quote_name, len(queues))
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, [done.id, done.version, worker_id, *queues])
            deleted, *row = cursor.fetchone()
        return deleted == 1, None if row[0] is None else Claim.from_row(row)

    @contextmanager
    def prepared_cursor(self) -> Iterator[Any]:
        """Django's cursor wrapper (errors, debug log, execute wrappers) around a psycopg
        cursor that binds on the server and prepares every statement it runs."""
        connection = self.connection
        if not self.prepare:
            with connection.cursor() as cursor:
                yield cursor
            return
        connection.ensure_connection()
        driver = connection.connection
        if driver.prepare_threshold is None:
            # Django's default turns preparation off, explicit requests too. Allow only
            # explicit ones: other statements on this connection stay unprepared.
            driver.prepare_threshold = ONLY_WHEN_ASKED
        with connection.wrap_database_errors:
            raw = PreparingCursor(driver)
        wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
        with wrap(raw) as cursor:
            yield cursor

    def wait_for_work(self, queues: Sequence[str], timeout: float, interrupt: Alarm) -> None:
        """Wait at most ``timeout`` seconds for a ``NOTIFY`` naming one of ``queues``.

        Notifications reach a handler that only raises a flag, whenever the driver
        reads them (during a claim, too): psycopg's own backlog would keep every one
        of them for as long as the worker is busy. Idle, the worker waits for its
        socket to become readable; the next claim reads what arrived. A stop signal is
        heard at once.
        """
        if PreparingCursor is None or interrupt.is_set():  # psycopg2: poll
            return super().wait_for_work(queues, timeout, interrupt)
        connection = self.connection
        connection.ensure_connection()
        driver = connection.connection
        if self.listening_on is not driver:
            self.hinted = False
            driver.add_notify_handler(lambda notice: self.hint(notice.payload))
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {connection.ops.quote_name(CHANNEL)}")
            self.listening_on = driver
        self.queues = set(queues)
        if self.hinted:
            self.hinted = False
            return
        with connection.wrap_database_errors:  # a closed connection has no socket
            interrupt.wait(timeout, driver.fileno())

    def hint(self, queue: str) -> None:
        if queue in self.queues:
            self.hinted = True
