"""How the queue behaved over time: tasks finished per queue and minute, and the backlog.

Workers write it, not tasks: each heartbeat adds the outcomes its worker counted since
the last beat to the current minute's row of each queue (``MinuteWriter``), so a busy
worker costs the table one small write per queue and second, whatever its throughput,
and an idle one a write per queue and minute. The first heartbeat to write a queue's
minute samples that queue's backlog and deletes rows older than ``KEPT_FOR``. Minutes
are the database's, as every time taskq compares.

``series()`` reads the rows back, one entry per minute with the queues summed; the
admin's summary charts it and ``taskq.metrics.history`` returns it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import F, Max, Sum

from taskq.clock import DatabaseNow, read_database_now
from taskq.models import Minute, Task

#: How long a minute's row is kept.
KEPT_FOR = timedelta(hours=24)
#: A backlog sample counts a queue's pending tasks up to this many (an index range of
#: the claim index), so that sampling a huge backlog stays cheap.
BACKLOG_COUNTED_UP_TO = 100_000
#: The outcomes a minute counts, as ``Minute`` columns.
KINDS = ("succeeded", "failed", "retried", "expired")


def minute_of(moment: datetime) -> datetime:
    """Return the first second of ``moment``'s minute."""
    return moment.replace(second=0, microsecond=0)


def sample_backlog(using: str, queue: str) -> dict[str, Any]:
    """Return ``queue``'s pending count (bounded) and its oldest pending task's age."""
    pending = Task.objects.using(using).pending().filter(queue=queue)
    count = pending.order_by()[:BACKLOG_COUNTED_UP_TO].count()
    oldest = pending.order_by("eta").annotate(now=DatabaseNow()).values("eta", "now").first()
    age = None if oldest is None else max(0.0, (oldest["now"] - oldest["eta"]).total_seconds())
    return {"pending": count, "oldest_pending_age": age}


def add_to_minute(using: str, queue: str, minute: datetime, counts: Mapping[str, int]) -> bool:
    """Add ``counts`` to ``queue``'s row of ``minute``, creating it if there is none;
    return whether this call created it (and so sampled the backlog).

    Race-safe between workers without a lock: the update adds to a row that exists;
    when none does, the insert either creates it or meets the unique (queue, minute)
    constraint, because another worker created it meanwhile, and the update runs again.
    """
    rows = Minute.objects.using(using).filter(queue=queue, minute=minute)
    changes = {kind: F(kind) + n for kind, n in counts.items() if n}
    if changes and rows.update(**changes):
        return False
    if not changes and rows.exists():
        return False
    row = Minute(queue=queue, minute=minute, **sample_backlog(using, queue))
    for kind, n in counts.items():
        setattr(row, kind, n)
    try:
        with transaction.atomic(using=using):
            row.save(using=using, force_insert=True)
    except IntegrityError:
        if changes:
            rows.update(**changes)
        return False
    Minute.objects.using(using).filter(minute__lt=minute - KEPT_FOR).delete()
    return True


class MinuteWriter:
    """A heartbeat's part of the history: what its worker finished, per queue and minute.

    ``write()`` is called with each beat. It asks the database for the time only when
    there is something to add or a new minute may have begun (judged by
    ``time.monotonic``), and writes each of ``queues`` once a minute even when idle,
    so that an idle queue's backlog is sampled too.
    """

    def __init__(self, using: str, queues: Iterable[str]) -> None:
        self.using = using
        self.queues = list(queues)
        #: The minute each queue's row was last written for.
        self.written: dict[str, datetime] = {}
        #: ``time.monotonic()`` at which the database's next minute begins.
        self.next_minute_at = 0.0

    def write(self, unwritten: Mapping[str, Counter[str]]) -> None:
        """Add ``unwritten`` (counts by queue and kind) to the current minute's rows.

        Raise on a database error; the caller keeps the counts for the next beat."""
        if not unwritten and time.monotonic() < self.next_minute_at:
            return
        now = read_database_now(self.using)
        minute = minute_of(now)
        elapsed = (now - minute).total_seconds()
        self.next_minute_at = time.monotonic() + 60 - elapsed
        for queue in dict.fromkeys([*self.queues, *unwritten]):
            counts = unwritten.get(queue, Counter())
            if not any(counts.values()) and self.written.get(queue) == minute:
                continue
            add_to_minute(self.using, queue, minute, counts)
            self.written[queue] = minute


def series(minutes: int = 60, queue: str | None = None, using: str | None = None) -> list[Any]:
    """Return the last ``minutes`` minutes, oldest first, by the database's clock.

    Each entry: ``{"minute": datetime, "succeeded": n, "failed": n, "retried": n,
    "expired": n, "pending": n or None, "oldest_pending_age": seconds or None}``, summed
    over the queues (``queue`` limits it to one); the backlog is the sum of the queues'
    samples and the age the oldest of them. A minute no worker wrote has zero outcomes
    and no backlog (``None``). The current minute is still being counted.
    """
    alias = using or router.db_for_read(Minute)
    end = minute_of(read_database_now(alias))
    start = end - timedelta(minutes=minutes - 1)
    rows = Minute.objects.using(alias).filter(minute__gte=start, minute__lte=end)
    if queue is not None:
        rows = rows.filter(queue=queue)
    found: dict[datetime, dict[str, Any]] = {
        row["minute"]: dict(row)
        for row in rows.values("minute")
        .annotate(
            **{kind: Sum(kind) for kind in KINDS},
            pending=Sum("pending"),
            oldest_pending_age=Max("oldest_pending_age"),
        )
        .order_by("minute")
    }
    entries = []
    for step in range(minutes):
        minute = start + timedelta(minutes=step)
        row = found.get(minute, {})
        entries.append(
            {
                "minute": minute,
                **{kind: int(row.get(kind) or 0) for kind in KINDS},
                "pending": None if not row else int(row["pending"] or 0),
                "oldest_pending_age": row.get("oldest_pending_age"),
            }
        )
    return entries
