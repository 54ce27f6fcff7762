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
which holds queued rows only and is read in the claim's order. It runs inside a
function of the database (``taskq_claim``, and ``taskq_next_due`` for the idle worker's
question), whose planner settings keep statistics from choosing another plan
(``claim_function_sql`` says why).
"""

from __future__ import annotations

import importlib
import json
import select
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings as django_settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, QuerySet

from taskq.alarm import Alarm
from taskq.backends.base import Claim
from taskq.backends.claim import open_queues_sql, order_sql, update_returning_sql
from taskq.backends.engine import Engine
from taskq.backends.errors import MIGRATE, ErrorKind, Verdict, driver_error
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.conf import settings
from taskq.models import CLAIM_FIELDS, CLAIM_ORDER, Queue, Task

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
#: psycopg's own ``timestamptz`` loader (its C one where psycopg is built with it). Django
#: replaces it on every connection with a Python subclass, which only matters when
#: ``USE_TZ = False`` (it drops the zone); the claims' cursor takes psycopg's back.
TimestamptzLoader: Any = None
if psycopg is not None:
    TimestamptzLoader = psycopg.adapters.get_loader(
        psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
    )

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


#: The claim as a function of the database, with the planner settings that pin its plan.
CLAIM_FUNCTION = "taskq_claim"
#: The idle worker's question (``next_due_in``) as a function, under the same settings.
NEXT_DUE_FUNCTION = "taskq_next_due"
#: Inside those functions only: no plan but a walk of an index in the claim's order.
PLANNER_SETTINGS = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    # A plan priced out by the settings above (several queues still sort) costs more
    # than jit_above_cost: compiling it would cost more than running it.
    "jit": "off",
    # Plan once per session (and again after an ANALYZE), not per call: the one plan
    # left does not depend on the arguments, and planning costs about as much as the
    # claim itself.
    "plan_cache_mode": "force_generic_plan",
}


def _function_claims(quote: Callable[[str], str]) -> tuple[str, str]:
    """The claim function's two statements, for one queue and for several: the one
    claim definition (pause test and held-back names included) over the function's
    arguments ``p_worker``, ``p_queues`` and ``p_held``.

    One queue: an equality, so that the claim index is read in the claim's order and
    its first row is the answer. Several: the same read for each queue (a lateral
    join), and the best of those first rows; any other plan reads every due row of
    the queues and sorts them. Each queue's first row is locked until the statement
    ends; the others skip it meanwhile, as they skip a row being claimed.
    """
    held = f"{quote('name')} <> ALL(p_held)"
    also = f"{held} AND {open_queues_sql(quote, 1, true='true')}"
    claim = update_returning_sql(
        quote, CLOCK, 1, false="false", lock="FOR UPDATE SKIP LOCKED", also=also
    )
    worker, queue, paused = (f"{quote(c)} = %s" for c in ("worker_id", "queue", "name"))
    assert claim.count("%s") == 3 and all(p in claim for p in (worker, queue, paused)), claim
    claim = claim.replace(worker, f"{quote('worker_id')} = p_worker")
    claim = claim.replace(paused, f"{quote('name')} = ANY(p_queues)")
    one = claim.replace(queue, f"{quote('queue')} = p_queues[1]")
    # The sub-select of the one-queue claim, for each queue of the list.
    pk = quote("id")
    start = one.index(f"WHERE {pk} = (") + len(f"WHERE {pk} = (")
    end = one.index(") RETURNING ")
    first_of_each = (
        one[start:end]
        .replace(f"SELECT {pk} FROM", f"SELECT {_claim_order_columns(quote)} FROM", 1)
        .replace(f"{quote('queue')} = p_queues[1]", f"{quote('queue')} = listed.queue")
    )
    chosen = (
        f"SELECT {pk} FROM unnest(p_queues) AS listed(queue) "
        f"CROSS JOIN LATERAL ({first_of_each}) AS first_rows "
        f"ORDER BY {order_sql(quote)} LIMIT 1"
    )
    several = one[:start] + chosen + one[end:]
    return one, several


def _claim_order_columns(quote: Callable[[str], str]) -> str:
    """The primary key and the columns of ``CLAIM_ORDER``, as a select list."""
    names = dict.fromkeys(["id", *(name.lstrip("-") for name in CLAIM_ORDER)])
    return ", ".join(quote(name) for name in names)


def _settings_sql() -> str:
    return " ".join(f"SET {name} = {value}" for name, value in PLANNER_SETTINGS.items())


def claim_function_sql(connection: BaseDatabaseWrapper) -> str:
    """Return the ``CREATE OR REPLACE FUNCTION`` of the claim (``taskq_claim(worker,
    queues, held)``), rendered from the one claim definition (``taskq.backends.claim``).

    Why a function: PostgreSQL takes no hint, and the planner costs an index by the
    pages it expects to read per row. In a queue table the claim index bloats with dead
    entries (one per task, until a vacuum), and statistics taken while few tasks waited
    expect a row or two: a scan of another index and a sort then look cheaper than the
    claim index, and read every queued row on every claim. A function's ``SET`` clauses
    hold only while it runs, and its plans are made (and made again after an
    ``ANALYZE``) under them: with sequential scans, bitmap scans and sorts priced out,
    the one plan left is the claim index read in the claim's order, whatever the
    statistics say. The body is PL/pgSQL so that its plans are cached per session, as
    the prepared claim's were. A change to the claim definition needs a migration that
    installs this again (``0014_claim_functions`` holds it as it was then);
    ``tests/test_claim_plan.py`` compares the installed functions with it.
    """
    quote = connection.ops.quote_name
    one, several = _function_claims(quote)
    names = [*CLAIM_FIELDS, "expired"]
    fields = [cast("Field[Any, Any]", Task._meta.get_field(name)) for name in CLAIM_FIELDS]
    types = [*(_type_without_size(field, connection) for field in fields), "boolean"]
    result = ", ".join(f"claimed_{n} {t}" for n, t in zip(names, types, strict=True))
    selected = ", ".join(f"claimed.{n}::{t}" for n, t in zip(names, types, strict=True))
    claimed = f"claimed ({', '.join(names)})"
    return (
        f"CREATE OR REPLACE FUNCTION {CLAIM_FUNCTION}(p_worker bigint, p_queues text[], "
        f"p_held text[]) RETURNS TABLE ({result}) "
        f"LANGUAGE plpgsql VOLATILE {_settings_sql()} AS $claim$\n"
        "BEGIN\n"
        "  IF cardinality(p_queues) = 1 THEN\n"
        f"    RETURN QUERY WITH {claimed} AS ({one})\n    SELECT {selected} FROM claimed;\n"
        "  ELSE\n"
        f"    RETURN QUERY WITH {claimed} AS ({several})\n    SELECT {selected} FROM claimed;\n"
        "  END IF;\n"
        "END\n$claim$"
    )


def next_due_sql(quote: Callable[[str], str]) -> str:
    """``ClaimStrategy.next_due_query`` over the arguments ``p_queues`` and ``p_within``
    (seconds): the ``(state, eta)`` index read in ETA order."""
    table, state, queue, eta = (quote(n) for n in (Task._meta.db_table, "state", "queue", "eta"))
    return (
        f"SELECT {eta}, {CLOCK} FROM {table} WHERE {state} = {Task.State.QUEUED:d} "
        f"AND {queue} = ANY(p_queues) AND {eta} > {CLOCK} "
        f"AND {eta} <= {CLOCK} + p_within * interval '1 second' ORDER BY {eta} LIMIT 1"
    )


def next_due_function_sql(connection: BaseDatabaseWrapper) -> str:
    """Return the ``CREATE OR REPLACE FUNCTION`` of ``taskq_next_due(queues, within)``."""
    return (
        f"CREATE OR REPLACE FUNCTION {NEXT_DUE_FUNCTION}(p_queues text[], p_within float8) "
        "RETURNS TABLE (next_eta timestamptz, now timestamptz) "
        f"LANGUAGE plpgsql STABLE {_settings_sql()} AS $next$\n"
        f"BEGIN\n  RETURN QUERY {next_due_sql(connection.ops.quote_name)};\nEND\n$next$"
    )


#: What the strategy sends: the claim function, its arguments the worker, the queues
#: and the names held back.
CALL_CLAIM = f"SELECT * FROM {CLAIM_FUNCTION}(%s, %s, %s)"
#: The idle worker's question, as the strategy sends it.
CALL_NEXT_DUE = f"SELECT * FROM {NEXT_DUE_FUNCTION}(%s, %s)"


@lru_cache
def _complete_and_claim_sql(quote: Callable[[str], str]) -> str:
    """Return the delete of a succeeded task and the next claim as one statement.

    The outer select returns exactly one row, whether or not a task was claimed: the
    count of deleted rows (0 if the claim on it was lost), then the claim or NULLs. The
    deleted row is started, so it is never the claimed one.
    """
    table = quote(Task._meta.db_table)
    return (
        f"WITH done AS (DELETE FROM {table} WHERE id = %s AND version = %s "
        f"AND state = {Task.State.STARTED:d} RETURNING 1) "
        f"SELECT (SELECT count(*) FROM done), claimed.* FROM (VALUES (1)) AS one "
        f"LEFT JOIN {CLAIM_FUNCTION}(%s, %s, %s) AS claimed ON true"
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

    def claim_functions_sql(self) -> str:
        return f"{claim_function_sql(self.connection)};\n{next_due_function_sql(self.connection)}"

    def installed_claim_functions_sql(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE proname IN (%s, %s) "
                "ORDER BY proname = %s",
                [CLAIM_FUNCTION, NEXT_DUE_FUNCTION, NEXT_DUE_FUNCTION],
            )
            return ";\n".join(row[0] for row in cursor.fetchall())

    def claim_plan(self, queues: Sequence[str]) -> str | None:
        """EXPLAIN the claim function's statement for ``queues`` as the function plans
        it: a generic plan, under the settings the installed function has."""
        one, several = _function_claims(self.connection.ops.quote_name)
        sql = one if len(queues) == 1 else several
        for name, number in (("p_worker", 1), ("p_queues", 2), ("p_held", 3)):
            sql = sql.replace(name, f"${number}")
        arguments = [None, list(queues), []]
        return self._generic_plan(CLAIM_FUNCTION, sql, "bigint, text[], text[]", arguments)

    def next_due_plan(self, queues: Sequence[str], within: float) -> str | None:
        """EXPLAIN the next-ETA function's statement as the function plans it."""
        sql = next_due_sql(self.connection.ops.quote_name)
        sql = sql.replace("p_queues", "$1").replace("p_within", "$2")
        return self._generic_plan(NEXT_DUE_FUNCTION, sql, "text[], float8", [list(queues), within])

    def _generic_plan(self, function: str, sql: str, types: str, arguments: list[Any]) -> str:
        """The plan ``function`` makes of its statement ``sql`` (parameters ``$1``, …
        of ``types``): prepared and explained under the installed function's settings."""
        placeholders = ", ".join(["%s"] * len(arguments))
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            cursor.execute("SELECT unnest(proconfig) FROM pg_proc WHERE proname = %s", [function])
            for (setting,) in cursor.fetchall():
                name, value = setting.split("=", 1)
                cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
            cursor.execute(f"PREPARE taskq_plan ({types}) AS {sql}")
            try:
                cursor.execute(f"EXPLAIN EXECUTE taskq_plan ({placeholders})", arguments)
                return "\n".join(row[0] for row in cursor.fetchall())
            finally:
                cursor.execute("DEALLOCATE taskq_plan")

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
        arrays = ", ".join(f"(%s)::{_type_without_size(f, connection)}[]" for f in bulk.call_fields)
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


def _type_without_size(target: Field[Any, Any], connection: BaseDatabaseWrapper) -> str:
    """The column's type without its size (``varchar``, not ``varchar(200)``), as Django's
    own ``UNNEST`` does and as a function's result declares it: the values were checked
    already, and nothing is cut."""
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
        with self.prepared_cursor() as cursor:
            cursor.execute(CALL_CLAIM, [worker_id, list(queues), list(self.held_back)])
            row = cursor.fetchone()
        return None if row is None else Claim.from_row(row)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        sql = _complete_and_claim_sql(self.connection.ops.quote_name)
        params = [done.id, done.version, worker_id, list(queues), list(self.held_back)]
        with self.prepared_cursor() as cursor:
            cursor.execute(sql, params)
            deleted, *row = cursor.fetchone()
        return deleted == 1, None if row[0] is None else Claim.from_row(row)

    def next_due_row(self, queues: Sequence[str], within: float) -> tuple[Any, Any] | None:
        """Through ``taskq_next_due``, whose plan reads the ``(state, eta)`` index
        whatever the statistics say."""
        with self.prepared_cursor() as cursor:
            cursor.execute(CALL_NEXT_DUE, [list(queues), float(within)])
            row = cursor.fetchone()
        return None if row is None else (row[0], row[1])

    @contextmanager
    def prepared_cursor(self) -> Iterator[Any]:
        """A psycopg cursor that binds on the server and prepares every statement it
        runs, its errors raised as Django's; in Django's cursor wrapper (debug log,
        execute wrappers) when ``through_django()``."""
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
            if django_settings.USE_TZ:  # aware datetimes in the session's zone, as Django's
                raw.adapters.register_loader("timestamptz", TimestamptzLoader)
        # Not closed after use: one psycopg cursor per connection serves every claim
        # (a cursor holds no server resource between statements; creating one per
        # claim cost more Python time than the rest of the claim's bookkeeping).
        if self.through_django(connection):
            logged = connection.queries_logged
            yield (connection.make_debug_cursor if logged else connection.make_cursor)(raw)
        else:
            with connection.wrap_database_errors:
                yield raw

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
    "42883": MIGRATE,  # undefined_function: the claim functions of migration 0014
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
