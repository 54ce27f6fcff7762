"""Whether a connection holds an open transaction that Django does not know of.

A task may send ``BEGIN`` through a raw cursor and return: Django's own flags
(``in_atomic_block``, autocommit) stay clean, but the worker's next write would run
inside the task's transaction. PostgreSQL and SQLite drivers know their transaction
status without a round trip; MySQLdb does not, and asking the server on every task
would cost a round trip per task, so there only Django's flags are checked.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper


def in_open_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Return whether ``connection``'s driver connection is inside a transaction."""
    driver = connection.connection
    if driver is None:
        return False
    if connection.vendor == "sqlite":
        return bool(driver.in_transaction)
    if connection.vendor == "postgresql":
        info = getattr(driver, "info", None)
        if info is not None:  # psycopg 3: IDLE is 0
            return int(info.transaction_status) != 0
        return bool(driver.get_transaction_status())  # psycopg2: STATUS_READY is 0
    return False
