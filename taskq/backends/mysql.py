"""MySQL 8 and MariaDB ≥ 10.6: select, then update, in one short transaction.

MySQL cannot update a table and select from it in the same statement, so the claim is
two statements. What matters most is the index: InnoDB locks every row its scan
touches, so the select must be a range scan of the claim index in the claim's order
(``state``, ``queue``, ``priority DESC``, ``eta``, ``id``; MariaDB reads descending
columns from 10.8 on). Then the scan stops at the first row it can lock and SKIP LOCKED
costs one row lock per claim.

What matters next is round trips. Django's ``atomic()`` switches autocommit off and on
again around every transaction, two extra round trips per task; this strategy sends
``START TRANSACTION`` … ``COMMIT`` itself. The select is the ORM's definition of a due
task (``TaskQuerySet.due``), compiled to SQL once per worker, not once per claim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import CLAIM_FIELDS, Claim, expired
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.clock import DatabaseNow
from taskq.models import Task


class MySQLStrategy(SkipLockedStrategy):
    begin_sql = "START TRANSACTION"

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return connection.vendor == "mysql" and super().is_supported(connection)

    def __init__(self, using: str) -> None:
        super().__init__(using)
        self.statements: dict[tuple[str, ...], tuple[str, list[Any], str]] = {}

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        statements = self.compiled(tuple(queues))
        with self.transaction() as cursor:
            return self.claim_in(cursor, statements, worker_id)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        statements = self.compiled(tuple(queues))
        with self.transaction() as cursor:
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
        claim = Claim.from_row(row)
        # The row lock makes the fence redundant; it costs nothing and would turn a
        # lock that failed to hold into an empty claim instead of a second run.
        cursor.execute(update, [Task.State.STARTED, worker_id, claim.id, claim.version])
        if cursor.rowcount != 1:
            return None
        return replace(claim, version=claim.version + 1)

    def compiled(self, queues: tuple[str, ...]) -> tuple[str, list[Any], str]:
        """Return the claim's select (SQL and parameters) and update, compiled once.

        Call it before ``START TRANSACTION``: the first time, it opens and commits a
        transaction of its own, which would end the claim's.
        """
        if queues not in self.statements:
            due = (
                Task.objects.using(self.using)
                .select_for_update(skip_locked=True)
                .due(queues)
                .order_by("-priority", "eta", "id")
                .values_list(*CLAIM_FIELDS, expired())[:1]
            )
            # Compiling a locking select is allowed inside a transaction only.
            with transaction.atomic(using=self.using):
                compiler = due.query.get_compiler(self.using)
                select, params = compiler.as_sql()
                now, now_params = compiler.compile(DatabaseNow())
            assert not now_params
            quote = self.connection.ops.quote_name
            update = (
                f"UPDATE {quote(Task._meta.db_table)} SET state = %s, version = version + 1, "
                f"worker_id = %s, started_at = {now} WHERE id = %s AND version = %s "
                f"AND state = {Task.State.QUEUED:d}"
            )
            self.statements[queues] = (select, list(params), update)
        return self.statements[queues]
