"""PostgreSQL: the whole claim in one ``UPDATE … RETURNING`` round trip, the delete of
the task that just succeeded together with the next claim in one statement, ``COPY``
for ``enqueue_many``, planner estimates for big counts, and wake-ups by ``NOTIFY``.

Both claim statements are prepared once per connection (server-side binding): planning
the claim costs about as much as running it. Django turns psycopg's automatic
preparation off for the sake of transaction-pooling PgBouncers older than 1.21; set
``TASKQ_PREPARED_STATEMENTS = False`` behind one of those. An idle worker ``LISTEN``s
while it waits, and a trigger on the task table (``CREATE_WAKEUP``, installed by
migration ``0004_notify_trigger``) notifies the queues of every insert when it commits,
so a new task wakes it at once. The notification is a hint: polling alone finds every
task.

The claim is ``taskq.backends.claim``'s ``UPDATE … RETURNING`` with ``FOR UPDATE SKIP
LOCKED`` on its sub-select: concurrent workers each lock a different row and never
wait. ``state`` is a literal there, so the planner can use the partial claim index,
which holds queued rows only and is read in the claim's order.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, QuerySet

from taskq.alarm import Alarm
from taskq.backends.base import Claim
from taskq.backends.claim import update_returning_sql
from taskq.backends.engine import Engine
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.conf import settings
from taskq.models import Task

if TYPE_CHECKING:
    from taskq.bulk_insert import BulkInsert
    from taskq.enqueue import Checked

psycopg: Any
try:  # imported by name: the driver is an optional extra, and mypy may not have it
    psycopg = importlib.import_module("psycopg")
except ImportError:  # psycopg2, or no PostgreSQL driver at all
    psycopg = None

#: The channel the task table's trigger notifies; the payload is a queue name.
CHANNEL = "taskq"
#: The database's clock: the time the statement started, the same in all of it (Django's
#: ``Now()``; ``CURRENT_TIMESTAMP`` would be the start of the transaction).
CLOCK = "STATEMENT_TIMESTAMP()"

#: A statement-level trigger sees all rows of the statement at once (a ``COPY`` of ten
#: thousand rows sends one notification per queue), and PostgreSQL delivers identical
#: notifications of one transaction once, at commit. The application sends nothing: no
#: extra round trip per enqueue, and rows written by other programs wake workers too.
CREATE_WAKEUP = f"""
CREATE FUNCTION taskq_notify_queues() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', queue) FROM (SELECT DISTINCT queue FROM new_rows) AS written;
    RETURN NULL;
END
$$;
CREATE TRIGGER taskq_task_notify AFTER INSERT ON taskq_task
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq_notify_queues();
"""
DROP_WAKEUP = """
DROP TRIGGER IF EXISTS taskq_task_notify ON taskq_task;
DROP FUNCTION IF EXISTS taskq_notify_queues();
"""
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
    # SKIP LOCKED: a row another worker is claiming is passed over, not waited for.
    return update_returning_sql(
        quote, CLOCK, queue_count, false="false", lock="FOR UPDATE SKIP LOCKED"
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


class PostgreSQLEngine(Engine):
    """PostgreSQL's engine: ``COPY``, ``UNNEST``, estimates, ``NOTIFY`` on insert."""

    can_listen = psycopg is not None  # psycopg2 has no notify handlers: workers poll
    can_copy = psycopg is not None  # psycopg 3's Cursor.copy; Django picks it if installed
    can_unnest = True
    can_estimate_count = True
    create_wakeup_sql = CREATE_WAKEUP
    drop_wakeup_sql = DROP_WAKEUP

    def in_open_transaction(self) -> bool:
        driver = self.connection.connection
        if driver is None:
            return False
        info = getattr(driver, "info", None)
        if info is not None:  # psycopg 3: TransactionStatus.IDLE is 0
            return int(info.transaction_status) != 0
        return bool(driver.get_transaction_status())  # psycopg2: STATUS_READY is 0

    def clock_sql(self) -> str:
        return CLOCK

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        sql, params = queryset.order_by().query.get_compiler(using=queryset.db).as_sql()
        with self.connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    def write_rows(self, bulk: BulkInsert, rows: list[Checked], batch_size: int) -> None:
        if self.can_copy:
            self.write_copy(bulk, rows, batch_size)
        else:
            self.write_unnest(bulk, rows, batch_size)

    def write_copy(self, bulk: BulkInsert, rows: list[Checked], batch_size: int) -> None:
        """psycopg 3: ``COPY … FROM STDIN``, one per batch.

        The fastest way in: rows are formatted in C and streamed. ``COPY`` does not go
        through Django's execute wrappers (nor its debug log of queries).
        """
        sql = f"COPY {bulk.table} ({bulk.columns}) FROM STDIN"
        eta, expires = bulk.eta_field, bulk.expires_field
        defaults = bulk.defaults
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            for start in range(0, len(rows), batch_size):
                with cursor.cursor.copy(sql) as copy:
                    for row in rows[start : start + batch_size]:
                        copy.write_row(
                            (
                                *row[:5],
                                bulk.moment(eta, row.eta),
                                bulk.moment(expires, row.expires),
                                *defaults,
                            )
                        )

    def write_unnest(self, bulk: BulkInsert, rows: list[Checked], batch_size: int) -> None:
        """psycopg2: ``INSERT … SELECT … FROM UNNEST(array, …)``.

        One array a column, as ``bulk_create`` does since Django 5.2: the statement
        stays small and is planned in no time, however many rows a batch has.
        """
        connection = self.connection
        arrays = ", ".join(f"(%s)::{_array_type(f, connection)}[]" for f in bulk.call_fields)
        selected = ", ".join(["rows.*", *bulk.default_literals()])
        sql = (
            f"INSERT INTO {bulk.table} ({bulk.columns}) "
            f"SELECT {selected} FROM UNNEST({arrays}) AS rows"
        )
        eta, expires = bulk.eta_field, bulk.expires_field
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                columns: list[list[Any]] = [list(column) for column in zip(*batch, strict=True)]
                columns[5] = [bulk.moment(eta, value) for value in columns[5]]
                columns[6] = [bulk.moment(expires, value) for value in columns[6]]
                cursor.execute(sql, columns)


def _array_type(target: Field[Any, Any], connection: BaseDatabaseWrapper) -> str:
    """The column's type without its size (``varchar``, not ``varchar(200)``), as Django's
    own ``UNNEST`` does: the values were checked already, and nothing is cut."""
    return cast(str, target.db_type(connection)).split("(")[0]


class PostgreSQLStrategy(SkipLockedStrategy):
    engine_class = PostgreSQLEngine
    can_return_rows_from_update = True
    #: Turned off per instance by ``TASKQ_PREPARED_STATEMENTS = False``.
    prepares_claims = PreparingCursor is not None

    def __init__(self, using: str) -> None:
        super().__init__(using)
        #: The driver connection this worker LISTENs on (a new one after a reconnect).
        self.listening_on: Any = None
        #: The queues this worker waits for, and whether one was named since it last
        #: waited.
        self.queues: set[str] = set()
        self.hinted = False
        #: Read once: no settings lookup per task.
        self.prepares_claims = self.prepares_claims and settings.PREPARED_STATEMENTS
        #: The psycopg cursor the claims run on, for as long as its connection lives.
        self.raw_cursor: Any = None

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
        if not self.prepares_claims:
            with connection.cursor() as cursor:
                yield cursor
            return
        connection.ensure_connection()
        driver = connection.connection
        raw = self.raw_cursor
        if raw is None or raw.connection is not driver or raw.closed:
            if driver.prepare_threshold is None:
                # Django's default turns preparation off, explicit requests too. Allow
                # only explicit ones: other statements on this connection stay unprepared.
                driver.prepare_threshold = ONLY_WHEN_ASKED
            with connection.wrap_database_errors:
                raw = self.raw_cursor = PreparingCursor(driver)
        wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
        # Not closed after use: one psycopg cursor per connection serves every claim
        # (a cursor holds no server resource between statements; creating one per
        # claim cost more Python time than the rest of the claim's bookkeeping).
        yield wrap(raw)

    def wait_for_work(self, queues: Sequence[str], timeout: float, interrupt: Alarm) -> None:
        """Wait at most ``timeout`` seconds for a ``NOTIFY`` naming one of ``queues``.

        Notifications reach a handler that only raises a flag, whenever the driver
        reads them (during a claim, too): psycopg's own backlog would keep every one
        of them for as long as the worker is busy. Idle, the worker waits for its
        socket to become readable; the next claim reads what arrived. A stop signal is
        heard at once.
        """
        if not PostgreSQLEngine.can_listen or interrupt.is_set():  # psycopg2: poll
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
