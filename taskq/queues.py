"""Pause and resume queues, from Python: ``taskq.queues.pause("mail")``.

A paused queue still takes new tasks; no worker starts one of them until it is resumed.
A task already running when the pause is asked finishes. ``pause()`` returns once no
claim of the queue can commit any more: every claim tests the queue's row in its own
statement, and the pause waits for the claims under way (``taskq.backends.flow``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections, transaction

from taskq.backends import engine_for, task_database
from taskq.conf import RATE_UNITS, settings
from taskq.models import Queue
from taskq.names import check_queues

__all__ = ["overview", "pause", "paused", "rate_text", "resume"]


def pause(*names: str, using: str | None = None) -> None:
    """Pause the queues ``names``: once this returns, no worker starts a task of them."""
    queues = check_queues(names)
    using = using or task_database()
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            engine_for(connections[using]).lock_for_pause(cursor)
        rows = Queue.objects.using(using)
        rows.bulk_create([Queue(name=name) for name in queues], ignore_conflicts=True)
        rows.filter(name__in=queues).update(paused=True)


def resume(*names: str, using: str | None = None) -> None:
    """Let workers start the tasks of the queues ``names`` again."""
    queues = check_queues(names)
    Queue.objects.using(using or task_database()).filter(name__in=queues).update(paused=False)


def paused(using: str | None = None) -> list[str]:
    """Return the names of the paused queues, sorted."""
    rows = Queue.objects.using(using or task_database()).filter(paused=True)
    return sorted(rows.values_list("name", flat=True))


def overview(using: str | None = None, counts: Any = None) -> list[dict[str, Any]]:
    """Return every known queue (served by a worker, paused, limited or holding tasks)
    with its task counts, whether it is paused and its ``TASKQ_QUEUES`` limits.

    ``counts``: a ``metrics.snapshot()`` (or ``bounded_counts()``) already read.
    """
    from taskq import metrics  # metrics imports this module

    snap = counts if counts is not None else metrics.snapshot(using)
    is_paused = dict(Queue.objects.using(using or task_database()).values_list("name", "paused"))
    limits = settings.QUEUES
    names: Iterable[str] = {*snap["queues"], *is_paused, *limits}
    return [
        {
            "name": name,
            "paused": bool(is_paused.get(name, False)),
            "concurrency": limits[name].concurrency if name in limits else None,
            "rate": limits[name].rate if name in limits else None,
            "rate_text": rate_text(limits[name].rate if name in limits else None),
            **snap["queues"].get(name, dict.fromkeys(metrics.GROUPS, 0)),
        }
        for name in sorted(names)
    ]


def rate_text(rate: float | None) -> str:
    """A rate in starts per second as Celery writes it, in the largest unit that makes
    it a whole number ("-": no rate)."""
    if rate is None:
        return "-"
    for unit, seconds in RATE_UNITS.items():
        count = rate * seconds
        if abs(count - round(count)) < 1e-9:
            return f"{round(count)}/{unit}"
    return f"{rate * 3600:g}/h"
