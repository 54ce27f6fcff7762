"""What taskq does differently on each database, apart from how a task is claimed.

An engine is chosen from the connection (``taskq.backends.engine_for``), whatever claim
strategy the project forces: a PostgreSQL project that claims with ``"optimistic"``
still enqueues with ``COPY``. This class is the generic default, which any database
Django supports can run; each database's module subclasses it, as Django's
``features.py`` and ``operations.py`` do. Callers ask the capability flags below
instead of the database's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.db.models.sql import Query

from taskq.backends.errors import Verdict, judge_by_class
from taskq.models import Task

if TYPE_CHECKING:
    from taskq.bulk_insert import BulkInsert
    from taskq.enqueue import Checked


class Engine:
    """The generic engine: Django's own SQL, no extras."""

    #: Can an idle worker be woken by the database when a task is written?
    can_listen = False
    #: Can ``enqueue_many`` stream its rows with ``COPY``?
    can_copy = False
    #: Can ``enqueue_many`` send a batch as one array per column (``UNNEST``)?
    can_unnest = False
    #: Does the planner estimate a row count for less than counting it?
    can_estimate_count = False
    #: With ``USE_TZ = False``, is the clock in ``TIME_ZONE`` whatever the server's own?
    clock_follows_time_zone = False
    #: The SQL that creates the trigger announcing new tasks ("": the database has none).
    create_wakeup_sql = ""
    #: The SQL that drops that trigger.
    drop_wakeup_sql = ""
    #: The literal SQL writes true as (a boolean column compared with it).
    true_sql = "1"
    #: What ends a SELECT that must see rows committed after its transaction's snapshot?
    latest_rows_sql = ""
    #: Does the failed list's index hold failed rows only (``FailedListIndex``)?
    has_partial_failed_index = False
    #: Can the optimizer's statistics change which index the claim reads?
    claim_plan_follows_statistics = False
    #: Can a connection pooler that speaks the database's protocol (PgBouncer) stand
    #: between the workers and the server?
    can_pool_connections = False
    #: Does a deleted or updated row stay behind as a dead row until a vacuum removes
    #: it (so that a queue table needs vacuuming, and a long transaction hurts it)?
    keeps_dead_rows = False

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} for {self.connection.alias!r}>"

    @cached_property
    def has_partial_claim_index(self) -> bool:
        """Does the claim index hold queued rows only (a partial index)?"""
        return bool(self.connection.features.supports_partial_indexes)

    def open_queues_sql(self, queue_count: int) -> str:
        """The claim's condition "none of these queues is paused" (``taskq.backends.claim``);
        its placeholders are the queues."""
        from taskq.backends.claim import open_queues_sql  # claim.py imports the models

        return open_queues_sql(self.connection.ops.quote_name, queue_count, true=self.true_sql)

    def lock_for_pause(self, cursor: Any) -> None:
        """In a pause's transaction, before it writes: wait for the claims under way,
        so that once the pause commits no claim that missed it can still commit.

        By default nothing: where a claim is one write (SQLite's single writer) or takes
        a shared lock on its queues' rows (MySQL), the pause's own write waits already.
        """

    def analyze_sql(self, table: str) -> str:
        """The statement that refreshes the optimizer's statistics of ``table`` ("":
        the database keeps none that taskq's statements depend on)."""
        return ""

    def claim_functions_sql(self) -> str:
        """The SQL that creates the functions the claim and the next-ETA query run in,
        where the database needs them to pin their plans ("": it does not)."""
        return ""

    def installed_claim_functions_sql(self) -> str:
        """The definitions of those functions as the database holds them now."""
        return ""

    def claim_plan(self, queues: Sequence[str]) -> str | None:
        """The optimizer's plan of the claim of ``queues`` as it would run now, as text
        (``None`` where its plan cannot change: ``claim_plan_follows_statistics``)."""
        return None

    def table_tuning_sql(self, table: str) -> str:
        """The statements that tune ``table``'s storage for a queue's churn ("": none)."""
        return ""

    def table_untuning_sql(self, table: str) -> str:
        """The statements that take ``table_tuning_sql`` back ("": none)."""
        return ""

    def dead_rows(self, table: str) -> int | None:
        """How many dead rows ``table`` holds, by the database's statistics (``None``:
        the database keeps no dead rows, or does not say)."""
        return None

    def oldest_transaction_age(self) -> float | None:
        """Seconds since the oldest transaction that holds back the removal of dead
        rows began, among the sessions this role can see (``None``: none, or the
        database keeps no dead rows)."""
        return None

    def vacuum_sql(self, table: str) -> str:
        """The statement that removes ``table``'s dead rows without blocking writers and
        without waiting for a lock ("": nothing to remove, or no such statement)."""
        return ""

    def next_due_plan(self, queues: Sequence[str], within: float) -> str | None:
        """The plan of the idle worker's next-ETA query, as text (``None``: Django's
        ``explain()`` of ``ClaimStrategy.next_due_query`` says it)."""
        return None

    def prepare_connection(self) -> None:
        """Set up a new connection for concurrent workers."""

    def clock_sql(self) -> str:
        """The database's time now, as SQL for Django's ``%s`` placeholders: Django's
        ``Now()``, which is what this database stores datetimes as."""
        sql, params = Query(None).get_compiler(connection=self.connection).compile(Now())
        assert not params
        return str(sql)

    def in_open_transaction(self) -> bool:
        """Is the driver connection inside a transaction Django does not know of (a raw
        ``BEGIN`` a task sent)? Only drivers that know without a round trip can tell;
        asking the server on every task would cost one, so by default: no."""
        return False

    def judge_error(self, error: BaseException) -> Verdict:
        """Say whether a driver's ``error`` is an outage, busy or a refusal, with advice
        for a human (``taskq.backends.errors.diagnose``). Generic: Django's classes."""
        return judge_by_class(error)

    def unique_key_holder(self, digest: str) -> int | None:
        """Return the id of the task holding the unique key whose digest is ``digest``,
        or ``None`` if none does (it finished since its row refused ours).

        Read after an insert was refused, maybe inside the caller's transaction: the
        holder may have committed after that transaction's snapshot was taken, so the
        read must see the latest rows (``latest_rows_sql``)."""
        quote = self.connection.ops.quote_name
        sql = (
            f"SELECT {quote('id')} FROM {quote(Task._meta.db_table)} "
            f"WHERE {quote('unique_key_hash')} = %s{self.latest_rows_sql}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [digest])
            row = cursor.fetchone()
        return None if row is None else int(row[0])

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        """Return the planner's estimate of ``queryset.count()``, or ``None``: count."""
        return None

    def write_rows(self, bulk: BulkInsert, rows: list[Checked], batch_size: int) -> None:
        """Write ``rows`` for ``enqueue_many``: ``INSERT … VALUES (…), (…)``, one
        statement per batch, with parameters."""
        placeholders = ["%s"] * len(bulk.call_fields) + bulk.default_literals()
        placeholder = f"({', '.join(placeholders)})"
        head = f"INSERT INTO {bulk.table} ({bulk.columns}) VALUES "
        # SQLite (and Oracle) cap the parameters of one statement.
        size = self.connection.ops.bulk_batch_size(bulk.call_fields, rows)
        size = max(1, min(batch_size, size))
        eta, expires = bulk.eta_field, bulk.expires_field
        sql = ""
        with self.connection.cursor() as cursor:
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                params: list[Any] = []
                for row in batch:
                    params += row[:5]
                    params.append(bulk.moment(eta, row.eta))
                    params.append(bulk.moment(expires, row.expires))
                if not sql or len(batch) < size:
                    sql = head + ", ".join([placeholder] * len(batch))
                cursor.execute(sql, params)
