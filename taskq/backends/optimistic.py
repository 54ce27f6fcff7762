"""Claims by compare-and-set on the row's version, for databases without SKIP LOCKED.

Read the first due task and its version, then ``UPDATE … SET version = version + 1
WHERE id = %s AND version = %s``: one updated row means this worker won it. A worker
that loses reads again and sees the next task, because the winner's update is already
committed. No statement holds a lock beyond itself, so this works on every database
Django supports; under heavy contention workers spend round trips losing races.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F

from taskq.backends.base import CLAIM_FIELDS, Claim, ClaimStrategy, expired
from taskq.clock import database_now
from taskq.models import Task

#: Lost races in a row before a claim gives up for this round (the worker polls again).
MAX_ATTEMPTS = 8


class OptimisticStrategy(ClaimStrategy):
    family = "optimistic"

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        return True

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        tasks = Task.objects.using(self.using)
        due = (
            tasks.due(queues)
            .order_by("-priority", "eta", "id")
            .values_list(*CLAIM_FIELDS, expired())
        )
        for _ in range(MAX_ATTEMPTS):
            row = due.first()
            if row is None:
                return None
            candidate = Claim.from_row(row)
            won = tasks.filter(
                pk=candidate.id, version=candidate.version, state=Task.State.QUEUED
            ).update(
                state=Task.State.STARTED,
                version=F("version") + 1,
                worker_id=worker_id,
                started_at=database_now(),
            )
            if won:
                return replace(candidate, version=candidate.version + 1)
        return None
