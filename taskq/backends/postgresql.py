"""PostgreSQL: the whole claim in one ``UPDATE … RETURNING`` round trip, and the delete
of the task that just succeeded together with the next claim in one statement.

The row is chosen by a scalar sub-select (``WHERE id = (SELECT … LIMIT 1 FOR UPDATE
SKIP LOCKED)``): an ``IN (…)`` could let the planner turn it into a join that locks and
updates more rows than the limit. ``state`` is compared with a literal so the planner
can use the partial claim index, which holds queued rows only and is read in the claim's
order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import CLAIM_FIELDS, Claim
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.models import Task


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

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        sql = _claim_sql(self.connection.ops.quote_name, len(queues))
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [worker_id, *queues])
            row = cursor.fetchone()
        return None if row is None else Claim.from_row(row)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        sql = _complete_and_claim_sql(self.connection.ops.quote_name, len(queues))
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [done.id, done.version, worker_id, *queues])
            deleted, *row = cursor.fetchone()
        return deleted == 1, None if row[0] is None else Claim.from_row(row)
