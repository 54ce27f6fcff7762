"""Claims with ``SELECT … FOR UPDATE SKIP LOCKED``.

Concurrent workers never wait for each other and never collide: each one locks the
first due row nobody else holds, flips it to started and commits. This generic form is
two statements in one short transaction, which any database with SKIP LOCKED accepts
(Oracle included); PostgreSQL and MySQL/MariaDB have their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import Claim, ClaimStrategy, expired
from taskq.clock import database_now
from taskq.models import CLAIM_FIELDS, CLAIM_ORDER, Task, claim_changes


class SkipLockedStrategy(ClaimStrategy):
    family = "skip_locked"
    uses_row_locks = True

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        has_skip_locked = bool(connection.features.has_select_for_update_skip_locked)
        return has_skip_locked and super().is_supported(connection)

    @classmethod
    def unsupported_reason(cls, connection: BaseDatabaseWrapper) -> str:
        return (
            f"{connection.display_name} (database alias {connection.alias!r}) has no "
            "SELECT ... FOR UPDATE SKIP LOCKED "
            "(connection.features.has_select_for_update_skip_locked is False), and Django "
            "would silently drop the row lock; use 'optimistic' or None"
        )

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        # savepoint=False: inside complete_and_claim's transaction, no savepoint is needed.
        with transaction.atomic(using=self.using, savepoint=False):
            row = (
                self.unpaused(
                    Task.objects.using(self.using).select_for_update(skip_locked=True),
                    queues,
                )
                .due(queues, self.held_back)
                .order_by(*CLAIM_ORDER)
                .values_list(*CLAIM_FIELDS, expired())
                .first()
            )
            if row is None:
                return None
            claim = Claim.from_row(row)
            Task.objects.using(self.using).filter(pk=claim.id).update(
                **claim_changes(worker_id, database_now())
            )
        return replace(claim, version=claim.version + 1)
