"""MySQL 8 and MariaDB ≥ 10.6: the claim as select, then update, in one short
transaction; ``enqueue_many``'s rows escaped once per distinct value; planner estimates;
the clock in UTC.

The claim (``MySQLStrategy``):

MySQL cannot update a table and select from it in the same statement, so the claim is
two statements. What matters most is the index: InnoDB locks every row its scan
touches, so the select must be a range scan of the claim index in the claim's order
(``state``, ``queue``, ``priority DESC``, ``eta``, ``id``; MariaDB reads descending
columns from 10.8 on). Then the scan stops at the first row it can lock and SKIP LOCKED
costs one row lock per claim. The select names that index (``FORCE INDEX``), and the idle
worker's next-ETA query the ``(state, eta)`` one: statistics InnoDB sampled while few
tasks waited made the optimizer read every queued row of the queue and sort them instead
(``tests/test_claim_plan.py``).

What matters next is round trips. Django's ``atomic()`` switches autocommit off and on
again around every transaction, two extra round trips per task; this strategy sends
``START TRANSACTION`` … ``COMMIT`` itself. The select is the ORM's definition of a due
task (``TaskQuerySet.due`` in ``CLAIM_ORDER``), compiled to SQL once per worker, not once
per claim; the update writes ``taskq.backends.claim``'s ``SET`` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from taskq.backends.base import Claim, expired
from taskq.backends.claim import open_queues_share_locked_sql, set_sql
from taskq.backends.engine import Engine
from taskq.backends.errors import MIGRATE, ErrorKind, Verdict, driver_error
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.clock import DatabaseNow
from taskq.models import CLAIM_FIELDS, CLAIM_INDEX, CLAIM_ORDER, Task

#: Where the claim's row has the task's id and version.
ID_AT, VERSION_AT = CLAIM_FIELDS.index("id"), CLAIM_FIELDS.index("version")

#: The index the idle worker's next-ETA query reads (``state``, ``eta``).
NEXT_DUE_INDEX = "taskq_task_state_eta"

if TYPE_CHECKING:
    from taskq.bulk_insert import BulkInsert
    from taskq.enqueue import Checked


class MySQLEngine(Engine):
    """MySQL's and MariaDB's engine: rows escaped once per value, estimates, UTC now."""

    can_estimate_count = True
    # Under REPEATABLE READ (Django sets READ COMMITTED unless told otherwise) a plain
    # read inside a transaction sees its snapshot; a locking read sees the latest
    # committed rows. Its shared lock is the one the refused insert holds already.
    latest_rows_sql = " LOCK IN SHARE MODE"

    def judge_error(self, error: BaseException) -> Verdict:
        return judge_mysql_error(self.connection, error)

    def open_queues_sql(self, queue_count: int) -> str:
        """A locking read of the queues' rows: a shared lock on each until the claim
        commits, which a pause's exclusive lock waits for (``claim.py`` says why)."""
        return open_queues_share_locked_sql(
            self.connection.ops.quote_name, queue_count, lock="LOCK IN SHARE MODE"
        )

    claim_plan_follows_statistics = True

    def analyze_sql(self, table: str) -> str:
        return f"ANALYZE TABLE {self.connection.ops.quote_name(table)}"

    def claim_plan(self, queues: Sequence[str]) -> str | None:
        """EXPLAIN the claim's locking select, one line per table: its index (``key``)
        and what else the optimizer does (``Extra``: a filesort would show there)."""
        select, params, _ = MySQLStrategy(self.connection.alias).compiled(tuple(queues))
        return self.explain(select, params)

    def next_due_plan(self, queues: Sequence[str], within: float) -> str | None:
        return self.explain(*MySQLStrategy(self.connection.alias).next_due_sql(queues, within))

    def explain(self, select: str, params: Sequence[Any]) -> str:
        """EXPLAIN ``select``: per table, its access, index, rows and ``Extra``."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {select}", params)
            names = [column[0].lower() for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return "\n".join(
            f"table={row['table']} type={row['type']} key={row['key']} rows={row['rows']} "
            f"Extra={row['extra']}"
            for row in rows
        )

    def clock_sql(self) -> str:
        # CURRENT_TIMESTAMP is in the session's time zone, Django stores UTC. Without
        # USE_TZ it stores local times, and the server's time zone must be TIME_ZONE.
        if settings.USE_TZ and self.connection.timezone_name == "UTC":
            return "UTC_TIMESTAMP(6)"
        return super().clock_sql()

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        sql, params = queryset.order_by().query.get_compiler(using=queryset.db).as_sql()
        with self.connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            columns = [column[0].lower() for column in cursor.description]
            first = cursor.fetchone()
        rows = first[columns.index("rows")] if first else None
        # MariaDB may append the filtered share: "1200 (40%)".
        return None if rows is None else int(str(rows).split()[0])

    def write_rows(self, bulk: BulkInsert, rows: list[Checked], batch_size: int) -> None:
        """``INSERT … VALUES (…), (…)``, one statement per batch.

        mysqlclient has no server-side parameters: it escapes every value into the
        statement with ``Connection.literal``. Calling it here instead, once per distinct
        value (most rows share their name, queue, priority, kwargs and due time), is the
        same text for a fraction of the work.
        """
        connection = self.connection
        connection.ensure_connection()
        driver = connection.connection
        encoding = driver.encoding
        literals: dict[tuple[type, Any], bytes] = {}

        def literal(value: Any) -> bytes:
            key = (type(value), value)
            if key not in literals:
                literals[key] = driver.literal(value)
            return literals[key]

        head = f"INSERT INTO {bulk.table} ({bulk.columns}) VALUES ".encode(encoding)
        defaults = b"".join(b", " + literal(value) for value in bulk.defaults) + b")"
        eta, expires = bulk.eta_field, bulk.expires_field
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch_size):
                values = [
                    b"("
                    + b", ".join(
                        (
                            literal(row.name),
                            literal(row.queue),
                            literal(row.priority),
                            driver.literal(row.args),  # rarely the same twice
                            literal(row.kwargs),
                            literal(bulk.moment(eta, row.eta)),
                            literal(bulk.moment(expires, row.expires)),
                        )
                    )
                    + defaults
                    for row in rows[start : start + batch_size]
                ]
                # Text, as Django's execute wrappers expect, and without parameters: no
                # %-formatting either.
                cursor.execute((head + b", ".join(values)).decode(encoding))


def force_index(sql: str, index: str, quote: Any) -> str:
    """Return ``sql`` (a select from the task table) reading the task table through
    ``index`` only: ``FORCE INDEX`` after the table in its ``FROM``.

    InnoDB's statistics of a queue table are a sample of whatever the table held when
    they were taken; taken while few tasks waited, they can make a scan of another index
    and a filesort of every queued row look cheaper than the index read in order.
    """
    table = quote(Task._meta.db_table)
    head = f"FROM {table}"
    assert sql.count(head) == 1, sql
    return sql.replace(head, f"{head} FORCE INDEX ({quote(index)})")


class MySQLStrategy(SkipLockedStrategy):
    engine_class = MySQLEngine
    begin_sql = "START TRANSACTION"

    def __init__(self, using: str) -> None:
        super().__init__(using)
        #: Compiled claims by (queues, held-back task names).
        self.statements: dict[
            tuple[tuple[str, ...], tuple[str, ...]], tuple[str, list[Any], str]
        ] = {}

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        statements = self.compiled(tuple(queues))
        with self.transaction() as cursor:
            return self.claim_in(cursor, statements, worker_id)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        statements = self.compiled(tuple(queues))
        connection = self.connection
        if self.through_django(connection):
            opened = self.transaction()
        else:
            opened = self.driver_transaction(connection)
        with opened as cursor:
            completed = self.delete_claimed(cursor, done)
            return completed, self.claim_in(cursor, statements, worker_id)

    def claim_in(
        self, cursor: Any, statements: tuple[str, list[Any], str], worker_id: int
    ) -> Claim | None:
        select, params, update = statements
        cursor.execute(select, params)
        row = cursor.fetchone()
        if row is None:
            return None
        # The row lock makes the fence redundant; it costs nothing and would turn a
        # lock that failed to hold into an empty claim instead of a second run.
        cursor.execute(update, [worker_id, row[ID_AT], row[VERSION_AT]])
        if cursor.rowcount != 1:
            return None
        return Claim.from_row(row, updated=True)

    def next_due_sql(self, queues: Sequence[str], within: float) -> tuple[str, list[Any]]:
        """``next_due_query`` as SQL, through the ``(state, eta)`` index read in ETA
        order: the window keeps that read short, whatever the statistics say."""
        query = self.next_due_query(queues, within).query
        sql, params = query.get_compiler(self.using).as_sql()
        return force_index(sql, NEXT_DUE_INDEX, self.connection.ops.quote_name), list(params)

    def next_due_in(self, queues: Sequence[str], within: float) -> float | None:
        sql, params = self.next_due_sql(queues, within)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        eta, now = row  # both as the driver reads them: the difference is all we need
        return max(0.0, (eta - now).total_seconds())

    def compiled(self, queues: tuple[str, ...]) -> tuple[str, list[Any], str]:
        """Return the claim's select (SQL and parameters) and update, compiled once.

        Call it before ``START TRANSACTION``: the first time, it opens and commits a
        transaction of its own, which would end the claim's.
        """
        key = (queues, self.held_back)
        if key not in self.statements:
            due = (
                self.unpaused(
                    Task.objects.using(self.using).select_for_update(skip_locked=True),
                    queues,
                )
                .due(queues, self.held_back)
                .order_by(*CLAIM_ORDER)
                .values_list(*CLAIM_FIELDS, expired())[:1]
            )
            # Compiling a locking select is allowed inside a transaction only.
            with transaction.atomic(using=self.using):
                compiler = due.query.get_compiler(self.using)
                select, params = compiler.as_sql()
                now, now_params = compiler.compile(DatabaseNow())
            assert not now_params
            quote = self.connection.ops.quote_name
            select = force_index(select, CLAIM_INDEX, quote)
            # Fenced by version and state, as a compare-and-set: see claim_in().
            update = (
                f"UPDATE {quote(Task._meta.db_table)} SET {set_sql(quote, now)} "
                f"WHERE id = %s AND version = %s AND state = {Task.State.QUEUED:d}"
            )
            self.statements[key] = (select, list(params), update)
        return self.statements[key]


# MySQL and MariaDB ----------------------------------------------------------------

#: Server errors worth waiting out: shutdown in progress, too many connections, the
#: connection killed (MariaDB) or timed out by the server (MySQL 8).
MYSQL_OUTAGE = {1040, 1053, 1077, 1080, 1152, 1159, 1161, 1927, 4031}
#: Contention: lock wait timeout, deadlock, a statement interrupted or timed out.
MYSQL_BUSY = {1205, 1213, 1317, 3024, 1969}
MYSQL_ADVICE = {
    1146: MIGRATE,  # no such table
    1054: MIGRATE,  # unknown column
    1049: "create the database, or fix NAME in DATABASES",
    1290: "the server runs with --read-only: point DATABASES at the primary",
    1792: "the transaction is read-only: point DATABASES at the primary",
    1836: "the server is read-only: point DATABASES at the primary",
    1153: "a statement is larger than the server's max_allowed_packet",
    1406: "a value is too long for its column",
    1118: "a row is larger than the storage engine allows",
    1390: "the statement has more placeholders than the server allows",
    1142: "the database user lacks a privilege on the task table",
    1045: "the server refused the user or password in DATABASES",
}


def judge_mysql_error(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    driver = driver_error(error)
    code = driver.args[0] if driver.args and isinstance(driver.args[0], int) else None
    if code is None:
        if isinstance(error, (OperationalError, InterfaceError)):
            return ErrorKind.OUTAGE, ""
        return ErrorKind.PERMANENT, ""
    # 2000-2999 are the client library's own errors: no connection, lost connection,
    # server gone away, commands out of sync. A new connection cures them.
    if 2000 <= code < 3000 or code in MYSQL_OUTAGE or code == 0:
        return ErrorKind.OUTAGE, ""
    if code in MYSQL_BUSY:
        return ErrorKind.BUSY, ""
    return ErrorKind.PERMANENT, MYSQL_ADVICE.get(code, f"error {code}")
