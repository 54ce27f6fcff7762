"""SQLite: claims on a database file shared by several processes.

SQLite has one writer at a time and no row locks. In WAL mode readers never wait for
the writer, and the busy timeout (Django's ``OPTIONS["timeout"]``, 5 s by default)
makes a writer wait its turn instead of failing at once. If the lock still cannot be
had, "database is locked" during a claim means only that nothing was claimed this
round: the worker polls again instead of dying, which is what killed the original's
extra workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import CLAIM_FIELDS, Claim
from taskq.backends.optimistic import OptimisticStrategy
from taskq.models import CLAIM_INDEX, Task


def is_locked_error(error: OperationalError) -> bool:
    """Return whether ``error`` is SQLite's "database is locked" (or "busy")."""
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message


def prepare_connection(connection: BaseDatabaseWrapper) -> None:
    """Switch a new connection's database file to WAL, so readers never block."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")


@lru_cache
def _claim_sql(quote: Callable[[str], str], queue_count: int, use_tz: bool) -> str:
    """Return the claim as one ``UPDATE … RETURNING`` (SQLite ≥ 3.35).

    SQLite has one writer, so a single statement needs no compare-and-set. ``INDEXED
    BY`` names the claim index: without statistics the planner prefers the (state, eta)
    index and sorts every due row, which at a million rows costs a hundred times more.
    ``state`` is a literal, or the partial index could not be used.
    """
    table = quote(Task._meta.db_table)
    index = quote(CLAIM_INDEX)
    # The same clock as taskq.clock.DatabaseNow: local time when USE_TZ is off.
    local = "" if use_tz else ", 'localtime'"
    now = f"STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW'{local})"
    returning = ", ".join(quote(name) for name in CLAIM_FIELDS)
    return (
        f"UPDATE {table} SET state = {Task.State.STARTED:d}, version = version + 1, "
        f"worker_id = %s, started_at = {now} "
        f"WHERE id = (SELECT id FROM {table} INDEXED BY {index} "
        f"WHERE state = {Task.State.QUEUED:d} AND queue IN ({', '.join(['%s'] * queue_count)}) "
        f"AND eta <= {now} ORDER BY priority DESC, eta, id LIMIT 1) "
        f"RETURNING {returning}, COALESCE(expires <= {now}, 0)"
    )


class SQLiteStrategy(OptimisticStrategy):
    """One ``UPDATE … RETURNING`` where SQLite has it, the optimistic claim before."""

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "sqlite"

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        try:
            if not self.connection.features.can_return_columns_from_insert:
                return super().claim(queues, worker_id)
            sql = _claim_sql(self.connection.ops.quote_name, len(queues), settings.USE_TZ)
            with self.connection.cursor() as cursor:
                cursor.execute(sql, [worker_id, *queues])
                row = cursor.fetchone()
            return None if row is None else Claim.from_row(row)
        except OperationalError as error:
            if is_locked_error(error):
                return None
            raise
