"""Flow control: paused queues, and queues with a concurrency or a rate limit.

The queue is the unit of control and the database the only coordinator: the state every
worker must respect is a row per queue in ``taskq_queue`` (``taskq.models.Queue``), and
each claim checks it in its own statement or transaction, never from a cache.

- **Paused.** Every claim statement carries the test "none of my queues is paused"
  (``open_queues_sql``, rendered into each strategy's SQL), so a pause that committed
  is seen by every claim that starts later. The pause also waits for the claims under
  way (``Engine.lock_for_pause``), so once it returns no claim of the queue commits.
  The worker keeps a copy of which of its queues are paused only to leave them out of
  the list it claims from: when a claim comes back empty, the copy is read again.
- **Limited** (``TASKQ_QUEUES``). Which queues have limits comes from the settings, so
  a worker knows without a query. Queues without limits keep the one-statement claim;
  each limited queue is claimed in a short transaction of its own that locks the
  queue's row (``SELECT … FOR UPDATE``; SQLite: its one writer), reads the row, counts
  the queue's active tasks if it has a concurrency limit, and checks and moves the
  queue's ``next_start_at`` if it has a rate. Two workers cannot both pass the check:
  the second waits for the first's commit and then counts its claim. A dirty task (its
  worker's heartbeat is late) is not active, so a dead worker's slot frees itself.

A limited queue that cannot start a task now says until when (the rate's next start,
or a poll interval for a full concurrency), and the worker does not ask again before
then: it serves its other queues meanwhile, and sleeps when it has nothing else.

- **Rate-limited tasks** (``shared_task(rate_limit=…)``). Which tasks have a rate comes
  from the registry, so a worker knows without a query, and every worker imports the
  same tasks. The worker's strategy passes over their names (``held_back``: a
  ``NOT IN`` more in the claim's statement; none, and it is the statement of old), so
  the other tasks of a queue keep running while a limited one waits. Each such task
  is claimed in a short transaction of its own that locks its row of ``taskq_task_rate``
  (``taskq.models.TaskRate``), checks and moves its ``next_start_at`` as for a queue's
  rate, and claims the first due task of that name in the worker's open queues (in a
  limited queue, under that queue's checks too: task row first, then queue row, always
  in that order). Only the holder of the row lock claims that name, and the claim is
  fenced by the row's version, so a task starts once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from django.db import transaction
from django.db.models import F

from taskq import registry
from taskq.backends.base import Claim, ClaimStrategy, expired
from taskq.clock import DatabaseNow, database_now
from taskq.conf import QueueLimits, settings
from taskq.models import CLAIM_FIELDS, CLAIM_ORDER, Queue, Task, TaskRate, claim_changes


class Flow:
    """The claims of one worker on ``queues``, with pauses and limits respected."""

    def __init__(self, strategy: ClaimStrategy, queues: Sequence[str]) -> None:
        self.strategy = strategy
        self.using = strategy.using
        self.queues = list(queues)
        limits = settings.QUEUES  # read once: the worker's configuration
        #: The worker's queues that have limits, and their limits.
        self.limited = {queue: limits[queue] for queue in self.queues if queue in limits}
        self.unlimited = [queue for queue in self.queues if queue not in self.limited]
        #: Which of the worker's queues were paused when last read.
        self.paused: set[str] = set()
        #: Monotonic time before which a limited queue is not asked again.
        self.not_before: dict[str, float] = {}
        self.next_refresh = 0.0
        #: Limited queues first on one claim, the others first on the next.
        self.limited_first = False
        #: Seconds between two starts of each task with a ``rate_limit``, by name.
        self.rated = {name: 1 / rate for name, rate in registry.rate_limits().items()}
        #: Monotonic time before which a rate-limited task is not asked again.
        self.task_not_before: dict[str, float] = {}
        # The ordinary claim passes over the rate-limited tasks (none: unchanged).
        strategy.held_back = tuple(self.rated)

    # Setup and the paused copy ---------------------------------------------------------

    def prepare(self) -> None:
        """Write the row of each of the worker's queues (a claim locks it), then read
        which are paused."""
        Queue.objects.using(self.using).bulk_create(
            [Queue(name=queue) for queue in self.queues], ignore_conflicts=True
        )
        if self.rated:
            TaskRate.objects.using(self.using).bulk_create(
                [TaskRate(name=name) for name in self.rated], ignore_conflicts=True
            )
        self.refresh()

    def refresh(self) -> bool:
        """Read again which of the worker's queues are paused; return whether one the
        worker claimed from is paused now."""
        paused = set(
            Queue.objects.using(self.using)
            .filter(name__in=self.queues, paused=True)
            .values_list("name", flat=True)
        )
        newly = bool(paused - self.paused)
        self.paused = paused
        self.next_refresh = time.monotonic() + settings.POLL_INTERVAL
        return newly

    def refresh_if_due(self) -> None:
        """While busy, notice a resume: only when some queue is paused, and at most once
        per poll interval (the claim notices a pause by itself)."""
        if self.paused and time.monotonic() >= self.next_refresh:
            self.refresh()

    def claimable(self) -> list[str]:
        """The worker's queues that are not paused (``--burst`` exits when these have
        nothing due)."""
        return [queue for queue in self.queues if queue not in self.paused]

    def unlimited_open(self) -> list[str]:
        return [queue for queue in self.unlimited if queue not in self.paused]

    def limited_ready(self) -> list[str]:
        now = time.monotonic()
        return [
            queue
            for queue in self.limited
            if queue not in self.paused and self.not_before.get(queue, 0.0) <= now
        ]

    def rated_ready(self) -> list[str]:
        now = time.monotonic()
        return [name for name in self.rated if self.task_not_before.get(name, 0.0) <= now]

    # Claims ----------------------------------------------------------------------------

    def claim(self, worker_id: int) -> Claim | None:
        """Claim the next task the worker may start now, or return ``None``."""
        self.refresh_if_due()
        self.limited_first = not self.limited_first
        steps = [self.claim_limited, self.claim_rated, self.claim_unlimited]
        if not self.limited_first:
            steps.reverse()
        for step in steps:
            claim = step(worker_id)
            if claim is not None:
                return claim
        return None

    def complete_and_claim(self, done: Claim, worker_id: int) -> tuple[bool, Claim | None]:
        """Delete the succeeded ``done`` and claim the next task; in one round trip (the
        strategy's) when no limited queue nor rate-limited task is to be asked now."""
        self.refresh_if_due()
        open_queues = self.unlimited_open()
        if open_queues and not self.limited_ready() and not self.rated_ready():
            completed, claim = self.strategy.complete_and_claim(done, open_queues, worker_id)
            if claim is None:
                claim = self.claim_unlimited(worker_id, claimed_empty=True)
            return completed, claim
        completed = self.strategy.complete(done)
        return completed, self.claim(worker_id)

    def claim_unlimited(self, worker_id: int, *, claimed_empty: bool = False) -> Claim | None:
        """The strategy's own claim on the unlimited queues that are not paused. An empty
        claim may mean that one of them was paused: then again without it."""
        if not self.unlimited:
            return None
        while True:
            open_queues = self.unlimited_open()
            if not claimed_empty and open_queues:
                claim = self.strategy.claim(open_queues, worker_id)
                if claim is not None:
                    return claim
            claimed_empty = False
            if not self.refresh() or not self.unlimited_open():
                return None

    def claim_limited(self, worker_id: int) -> Claim | None:
        for queue in self.limited_ready():
            claim = self.claim_limited_queue(queue, self.limited[queue], worker_id)
            if claim is not None:
                return claim
        return None

    def claim_limited_queue(
        self, queue: str, limits: QueueLimits, worker_id: int, name: str | None = None
    ) -> Claim | None:
        """Claim a task of ``queue`` (called ``name``, if given) if its limits allow one
        to start now.

        One transaction: lock the queue's row, check pause, rate and concurrency under
        that lock, claim, and move the rate's next start. Holding the row lock, the
        check and the claim are one step for every other worker.
        """
        tasks = Task.objects.using(self.using)
        with transaction.atomic(using=self.using):
            state = self.lock(queue)
            if state is None:  # no row yet: written now, asked again next round
                Queue.objects.using(self.using).bulk_create(
                    [Queue(name=queue)], ignore_conflicts=True
                )
                return None
            paused, next_start_at, now = state
            if paused:
                self.paused.add(queue)
                return None
            if limits.rate is not None and next_start_at is not None and next_start_at > now:
                self.wait(queue, (next_start_at - now).total_seconds())
                return None
            if limits.concurrency is not None:
                if tasks.active().filter(queue=queue).count() >= limits.concurrency:
                    # A slot frees when a task ends or its worker goes dirty: ask again
                    # after a poll interval.
                    self.wait(queue, settings.POLL_INTERVAL * random.uniform(0.5, 1.5))
                    return None
            if name is None:
                claim = self.strategy.claim([queue], worker_id)
            else:
                claim = self.claim_named(name, [queue], worker_id)
            if claim is not None and limits.interval is not None:
                # Written after the claim, by the database's clock: the next start is at
                # least one interval after this one's started_at.
                Queue.objects.using(self.using).filter(name=queue).update(
                    next_start_at=database_now(limits.interval)
                )
            return claim

    def claim_rated(self, worker_id: int) -> Claim | None:
        for name in self.rated_ready():
            claim = self.claim_rated_task(name, self.rated[name], worker_id)
            if claim is not None:
                return claim
        return None

    def claim_rated_task(self, name: str, interval: float, worker_id: int) -> Claim | None:
        """Claim a task called ``name`` if its rate lets one start now.

        One transaction: lock the task's rate row, check its next start, claim the
        first due task of that name in the worker's open queues (the unlimited ones,
        then each limited one under its own checks), and move the next start.
        """
        with transaction.atomic(using=self.using):
            rows = TaskRate.objects.using(self.using).filter(name=name)
            if not self.strategy.connection.features.has_select_for_update:
                rows.update(next_start_at=F("next_start_at"))  # SQLite: see lock()
            else:
                rows = rows.select_for_update()
            row = rows.annotate(now=DatabaseNow()).values_list("next_start_at", "now").first()
            if row is None:  # no row yet: written now, asked again next round
                TaskRate.objects.using(self.using).bulk_create(
                    [TaskRate(name=name)], ignore_conflicts=True
                )
                self.task_wait(name, 0.0)
                return None
            next_start_at, now = row
            if next_start_at is not None and next_start_at > now:
                self.task_wait(name, (next_start_at - now).total_seconds())
                return None
            open_queues = self.unlimited_open()
            claim = self.claim_named(name, open_queues, worker_id) if open_queues else None
            for queue in self.limited_ready() if claim is None else ():
                claim = self.claim_limited_queue(queue, self.limited[queue], worker_id, name)
                if claim is not None:
                    break
            if claim is None:
                # None due: a new one is seen after a poll interval, as a full queue's slot.
                self.task_wait(name, settings.POLL_INTERVAL * random.uniform(0.5, 1.5))
                return None
            # By the database's clock, after the claim: at least one interval after its
            # started_at.
            rows.update(next_start_at=database_now(interval))
            self.task_wait(name, interval)
            return claim

    def claim_named(self, name: str, queues: Sequence[str], worker_id: int) -> Claim | None:
        """Claim the first due task called ``name`` of ``queues``, none of them paused:
        the claim's definition with the name added. Only the holder of the name's rate
        lock claims it; the version fences the write all the same."""
        tasks = Task.objects.using(self.using)
        row = (
            self.strategy.unpaused(tasks.due(queues).filter(name=name), queues)
            .order_by(*CLAIM_ORDER)
            .values_list(*CLAIM_FIELDS, expired())
            .first()
        )
        if row is None:
            return None
        candidate = Claim.from_row(row)
        won = self.strategy.unpaused(
            tasks.filter(pk=candidate.id, version=candidate.version, state=Task.State.QUEUED),
            queues,
        ).update(**claim_changes(worker_id, database_now()))
        return replace(candidate, version=candidate.version + 1) if won else None

    def lock(self, queue: str) -> tuple[bool, datetime | None, datetime] | None:
        """Lock the row of ``queue`` for this transaction; return its pause, its next
        start and the database's time now, or ``None`` if it has no row."""
        rows = Queue.objects.using(self.using).filter(name=queue)
        if not self.strategy.connection.features.has_select_for_update:
            # SQLite: write first, so the transaction holds the write lock from here on
            # (a transaction that read first could not wait for it later).
            rows.update(paused=F("paused"))
        else:
            rows = rows.select_for_update()
        row = rows.annotate(now=DatabaseNow()).values_list("paused", "next_start_at", "now").first()
        return None if row is None else (bool(row[0]), row[1], row[2])

    def task_wait(self, name: str, seconds: float) -> None:
        self.task_not_before[name] = time.monotonic() + max(0.0, seconds)

    def wait(self, queue: str, seconds: float) -> None:
        self.not_before[queue] = time.monotonic() + max(0.0, seconds)

    # Idle ------------------------------------------------------------------------------

    def idle_timeout(self, timeout: float) -> float:
        """How long an idle worker sleeps: ``timeout``, or, when all it could claim is
        limited queues that said "not before", until the first of those moments; never
        past the next slot of a rate-limited task."""
        now = time.monotonic()
        sleep = self.queue_idle_timeout(timeout)
        slots = [moment - now for moment in self.task_not_before.values() if moment > now]
        return min(sleep, min(slots)) if slots else sleep

    def queue_idle_timeout(self, timeout: float) -> float:
        if self.unlimited_open():
            return timeout
        waiting = [
            self.not_before.get(queue, 0.0) for queue in self.limited if queue not in self.paused
        ]
        if not waiting:
            return timeout  # every queue paused: look for a resume after a poll interval
        return max(timeout, min(waiting) - time.monotonic())
