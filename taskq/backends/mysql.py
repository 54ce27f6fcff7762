"""MySQL 8 and MariaDB ≥ 10.6: select, then update, in one short transaction.

MySQL cannot update a table and select from it in the same statement, so the claim is
the generic two-statement SKIP LOCKED claim. What matters here is the index: InnoDB
locks every row its scan touches, so the select must be a range scan of the claim
index in the claim's order (``state``, ``queue``, ``priority DESC``, ``eta``, ``id``;
MariaDB reads descending columns from 10.8 on). Then the scan stops at the first row
it can lock and SKIP LOCKED costs one row lock per claim.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.skip_locked import SkipLockedStrategy


class MySQLStrategy(SkipLockedStrategy):
    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "mysql" and super().is_supported(connection)
