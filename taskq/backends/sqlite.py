"""SQLite: optimistic claims on a database file shared by several processes.

SQLite has one writer at a time and no row locks. In WAL mode readers never wait for
the writer, and the busy timeout (Django's ``OPTIONS["timeout"]``, 5 s by default)
makes a writer wait its turn instead of failing at once. If the lock still cannot be
had, "database is locked" during a claim means only that nothing was claimed this
round: the worker polls again instead of dying, which is what killed the original's
extra workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import Claim
from taskq.backends.optimistic import OptimisticStrategy


def is_locked_error(error: OperationalError) -> bool:
    """Return whether ``error`` is SQLite's "database is locked" (or "busy")."""
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message


def prepare_connection(connection: BaseDatabaseWrapper) -> None:
    """Switch a new connection's database file to WAL, so readers never block."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")


class SQLiteStrategy(OptimisticStrategy):
    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "sqlite"

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        try:
            return super().claim(queues, worker_id)
        except OperationalError as error:
            if is_locked_error(error):
                return None
            raise
