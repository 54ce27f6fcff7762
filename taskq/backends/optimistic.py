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

from taskq.backends.base import Claim, ClaimStrategy, expired
from taskq.clock import database_now
from taskq.models import CLAIM_FIELDS, CLAIM_ORDER, Task, claim_changes

#: Lost races in a row before a claim gives up for this round (the worker polls again).
MAX_ATTEMPTS = 8


class OptimisticStrategy(ClaimStrategy):
    family = "optimistic"

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        tasks = Task.objects.using(self.using)
        due = (
            self.unpaused(tasks.due(queues, self.held_back), queues)
            .order_by(*CLAIM_ORDER)
            .values_list(*CLAIM_FIELDS, expired())
        )
        for _ in range(MAX_ATTEMPTS):
            row = due.first()
            if row is None:
                return None
            candidate = Claim.from_row(row)
            # The test that no queue is paused goes with the write that wins the task.
            won = self.unpaused(
                tasks.filter(pk=candidate.id, version=candidate.version, state=Task.State.QUEUED),
                queues,
            ).update(**claim_changes(worker_id, database_now()))
            if won:
                return replace(candidate, version=candidate.version + 1)
        return None
