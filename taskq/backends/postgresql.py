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
import select
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, QuerySet

from taskq.alarm import Alarm
from taskq.backends.base import Claim
from taskq.backends.claim import open_queues_sql, update_returning_sql
from taskq.backends.engine import Engine
from taskq.backends.errors import MIGRATE, ErrorKind, Verdict, driver_error
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.conf import settings
from taskq.models import Queue, Task

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


#: Storage parameters of the task table (migration ``table_tuning``). Autovacuum's
#: default waits for dead rows worth a fifth of the table; a queue table makes one dead
#: row per task and holds a few live ones, or millions of future ones, so it is vacuumed
#: after a fixed number of dead rows instead (and analyzed likewise: the claim's plan
#: does not depend on it, the admin's estimates do). Where autovacuum is off these are
#: inert. No fillfactor: a claim changes ``state``, an indexed column, so no claim or
#: retry is a HOT update that free space in the page would help.
TABLE_TUNING = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "10000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_vacuum_insert_threshold": "10000",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "10000",
}


@lru_cache
def _claim_sql(quote: Callable[[str], str], queue_count: int, held_count: int = 0) -> str:
    """Return the claim for ``queue_count`` queues; only placeholders carry values: the
    worker, the queues, the task names held back, and the queues again for the test
    that none is paused."""
    # SKIP LOCKED: a row another worker is claiming is passed over, not waited for.
    return update_returning_sql(
        quote,
        CLOCK,
        queue_count,
        false="false",
        lock="FOR UPDATE SKIP LOCKED",
        also=open_queues_sql(quote, queue_count, true="true"),
        held_count=held_count,
    )


@lru_cache
def _complete_and_claim_sql(
    quote: Callable[[str], str], queue_count: int, held_count: int = 0
) -> str:
    """Return the delete of a succeeded task and the next claim as one statement.

    Both run on one snapshot: the deleted row is started, so it is never the claimed
    one. The outer select returns exactly one row, whether or not a task was claimed:
    the count of deleted rows (0 if the claim on it was lost), then the claim or NULLs.
    """
    table = quote(Task._meta.db_table)
    return (
        f"WITH done AS (DELETE FROM {table} WHERE id = %s AND version = %s "
        f"AND state = {Task.State.STARTED:d} RETURNING 1), "
        f"claimed AS ({_claim_sql(quote, queue_count, held_count)}) "
        f"SELECT (SELECT count(*) FROM done), claimed.* FROM (VALUES (1)) AS one "
        f"LEFT JOIN claimed ON true"
    )


class PostgreSQLEngine(Engine):
    """PostgreSQL's engine: ``COPY``, ``UNNEST``, estimates, ``NOTIFY`` on insert."""

    can_listen = psycopg is not None  # psycopg2 has no notify handlers: workers poll
    claim_plan_follows_statistics = True
    can_copy = psycopg is not None  # psycopg 3's Cursor.copy; Django picks it if installed
    can_unnest = True
    can_estimate_count = True
    create_wakeup_sql = CREATE_WAKEUP
    drop_wakeup_sql = DROP_WAKEUP
    true_sql = "true"

    def judge_error(self, error: BaseException) -> Verdict:
        return judge_postgresql_error(self.connection, error)

    keeps_dead_rows = True
    can_pool_connections = True
    has_partial_failed_index = True

    def table_tuning_sql(self, table: str) -> str:
        """Autovacuum by dead rows, not by a share of the table (``TABLE_TUNING``)."""
        options = ", ".join(f"{name} = {value}" for name, value in TABLE_TUNING.items())
        return f"ALTER TABLE {self.connection.ops.quote_name(table)} SET ({options})"

    def table_untuning_sql(self, table: str) -> str:
        names = ", ".join(TABLE_TUNING)
        return f"ALTER TABLE {self.connection.ops.quote_name(table)} RESET ({names})"

    def dead_rows(self, table: str) -> int | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = to_regclass(%s)",
                [self.connection.ops.quote_name(table)],
            )
            row = cursor.fetchone()
        return None if row is None else int(row[0])

    def oldest_transaction_age(self) -> float | None:
        """The oldest open transaction of another session that holds a snapshot or a
        transaction id (``backend_xmin``, ``backend_xid``: what pins the horizon below
        which dead rows may be removed), from ``pg_stat_activity``; sessions of other
        roles show only to a role with ``pg_read_all_stats``. Prepared transactions and
        replication slots hold the horizon too, and are not counted here."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)) "
                "FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND xact_start IS NOT NULL "
                "AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)"
            )
            row = cursor.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def vacuum_sql(self, table: str) -> str:
        # SKIP_LOCKED: if another VACUUM (autovacuum, another worker) holds the table,
        # skip it instead of waiting. No TRUNCATE: giving back the end of the file
        # takes a lock that stops every claim.
        return f"VACUUM (SKIP_LOCKED, TRUNCATE FALSE) {self.connection.ops.quote_name(table)}"

    def analyze_sql(self, table: str) -> str:
        return f"ANALYZE {self.connection.ops.quote_name(table)}"

    def claim_plan(self, queues: Sequence[str]) -> str | None:
        """EXPLAIN the claim as the worker sends it for ``queues``."""
        sql = _claim_sql(self.connection.ops.quote_name, len(queues))
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", [None, *queues, *queues])
            return "\n".join(row[0] for row in cursor.fetchall())

    def lock_for_pause(self, cursor: Any) -> None:
        """Every claim reads the queue table, and so holds its ``ACCESS SHARE`` lock to
        the end of its statement; ``ACCESS EXCLUSIVE`` waits for them, and claims that
        start meanwhile wait for the pause and then see it (each statement of READ
        COMMITTED takes its snapshot once its locks are granted). No row lock, no write
        per claim: the claim pays nothing for the pause's exactness."""
        table = self.connection.ops.quote_name(Queue._meta.db_table)
        cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

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
        #: The psycopg cursor the claims run on, for as long as its connection lives.
        self.raw_cursor: Any = None
        #: Read once: no settings lookup per task.
        self.prepares_claims = self.prepares_claims and settings.PREPARED_STATEMENTS

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        held = self.held_back
        sql = _claim_sql(self.connection.ops.quote_name, len(queues), len(held))
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, [worker_id, *queues, *held, *queues])
            row = cursor.fetchone()
        return None if row is None else Claim.from_row(row)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        held = self.held_back
        sql = _complete_and_claim_sql(self.connection.ops.quote_name, len(queues), len(held))
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, [done.id, done.version, worker_id, *queues, *held, *queues])
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
        # Behind a transaction pooler, LISTEN needs a direct connection of its own.
        listen_on = settings.LISTEN_DATABASE or self.using
        connection = connections[listen_on]
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
            if listen_on != self.using and select.select([driver.fileno()], [], [], 0)[0]:
                # No claim reads this connection: a statement makes the driver read the
                # notifications that arrived (and call the handler), or the socket would
                # stay readable and every wait return at once.
                driver.execute("SELECT 1")

    def hint(self, queue: str) -> None:
        if queue in self.queues:
            self.hinted = True


# PostgreSQL -----------------------------------------------------------------------

#: SQLSTATEs (or their two-character classes) worth waiting out.
PG_OUTAGE = {"08", "53", "57P01", "57P02", "57P03", "58"}
#: SQLSTATEs of contention: retry soon.
PG_BUSY = {"40001", "40P01", "55P03", "57014"}
#: SQLSTATEs of a refusal that deserves a particular piece of advice.
PG_ADVICE = {
    "42P01": MIGRATE,  # undefined_table
    "42703": MIGRATE,  # undefined_column
    "3D000": "create the database, or fix NAME in DATABASES",  # invalid_catalog_name
    "25006": "the server or this session is read-only (a standby, or default_transaction_"
    "read_only): point DATABASES at the primary",
    "54000": "the statement is beyond what PostgreSQL allows (too many parameters or values)",
    "54001": "the statement is too complex for PostgreSQL",
    "22001": "a value is too long for its column",
    "42501": "the database user lacks a privilege on the task table",
}
#: What libpq or psycopg say, without a SQLSTATE, when the client refuses a statement.
PG_CLIENT_REFUSALS = ("number of parameters must be between", "query too large", "out of memory")


def judge_postgresql_error(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    driver = driver_error(error)
    sqlstate: Any = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    if not sqlstate:
        message = str(error).lower()
        if any(refusal in message for refusal in PG_CLIENT_REFUSALS):
            return ErrorKind.PERMANENT, "the statement is beyond what the driver can send"
        # No answer from the server: refused, reset or closed connections.
        if isinstance(error, (OperationalError, InterfaceError)):
            return ErrorKind.OUTAGE, ""
        return ErrorKind.PERMANENT, ""
    if sqlstate in PG_OUTAGE or sqlstate[:2] in PG_OUTAGE:
        return ErrorKind.OUTAGE, ""
    if sqlstate in PG_BUSY:
        return ErrorKind.BUSY, ""
    return ErrorKind.PERMANENT, PG_ADVICE.get(sqlstate, f"SQLSTATE {sqlstate}")
