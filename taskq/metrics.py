"""Counts of tasks by group, queue and name, cheap enough to read every few seconds.

``snapshot()`` is one grouped query over the task table plus one over the worker
table; read it from the Django shell or export it (``taskq_stats``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case, Count, IntegerField, Min, Q, Value, When
from django.utils import timezone

from taskq.models import Task, Worker, dirty_cutoff, dirty_q

GROUPS = ("failed", "dirty", "active", "pending", "future")


def _empty() -> dict[str, int]:
    return dict.fromkeys(GROUPS, 0)


def snapshot() -> dict[str, Any]:
    """Return the task counts per group, per queue and per task name.

    ``{"failed": 1, "dirty": 0, "active": 2, "pending": 5, "future": 3,
    "queues": {"default": {...}}, "tasks": {"app.tasks.send": {...}},
    "oldest_pending_age": 1.5, "workers": 2}``; the age is in seconds, or ``None``.
    """
    now = timezone.now()
    group = Case(
        When(state=Task.State.FAILED, then=Value(0)),
        When(Q(state=Task.State.STARTED) & dirty_q(), then=Value(1)),
        When(state=Task.State.STARTED, then=Value(2)),
        When(eta__lte=now, then=Value(3)),
        default=Value(4),
        output_field=IntegerField(),
    )
    rows = (
        Task.objects.annotate(group=group)
        .values("queue", "name", "group")
        .annotate(count=Count("pk"))
        .order_by()
    )
    result: dict[str, Any] = _empty()
    queues: dict[str, dict[str, int]] = {}
    tasks: dict[str, dict[str, int]] = {}
    for row in rows:
        name = GROUPS[row["group"]]
        result[name] += row["count"]
        queues.setdefault(row["queue"], _empty())[name] += row["count"]
        tasks.setdefault(row["name"], _empty())[name] += row["count"]
    oldest = Task.objects.pending().aggregate(oldest=Min("eta"))["oldest"]
    result["queues"] = queues
    result["tasks"] = tasks
    result["oldest_pending_age"] = (now - oldest).total_seconds() if oldest else None
    result["workers"] = Worker.objects.filter(heartbeat__gte=dirty_cutoff()).count()
    return result
