"""Counts of tasks by group, queue and name, cheap enough to read every few seconds.

``snapshot()`` is one grouped query over the task table, one for the oldest pending
task and one over the worker table; read it from the Django shell or export it
(``taskq_stats``, ``taskq.prometheus``, the view in ``taskq.urls``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Case, Count, IntegerField, Min, Q, Value, When
from django.utils import timezone

from taskq.clock import database_now
from taskq.models import Task, Worker, dirty_cutoff, dirty_q

GROUPS = ("failed", "dirty", "active", "pending", "future")
#: What ``live_workers`` reports of each worker row.
LIVE_WORKER_FIELDS = (
    "ident",
    "host",
    "pid",
    "queues",
    "started_at",
    "heartbeat",
    "succeeded",
    "failed",
)


def _empty() -> dict[str, int]:
    return dict.fromkeys(GROUPS, 0)


def snapshot(using: str | None = None) -> dict[str, Any]:
    """Return the task counts per group, per queue and per task name.

    ``{"failed": 1, "dirty": 0, "active": 2, "pending": 5, "future": 3,
    "queues": {"default": {...}}, "tasks": {"app.tasks.send": {...}},
    "oldest_pending_age": 1.5, "workers": 2, "live_workers": [{...}, ...]}``; the age
    is in seconds, or ``None``. ``live_workers`` describes each live worker process,
    with the tasks it finished since it started (``succeeded``, ``failed``). Every
    value is plain JSON (``started_at`` is an ISO 8601 string).
    ``using`` is a database alias; by default the routers choose, as for any query.
    """
    now = timezone.now()
    tasks_table = Task.objects.using(using)  # None: the routers choose
    group = Case(
        When(state=Task.State.FAILED, then=Value(0)),
        When(Q(state=Task.State.STARTED) & dirty_q(), then=Value(1)),
        When(state=Task.State.STARTED, then=Value(2)),
        When(eta__lte=database_now(), then=Value(3)),  # as pending() judges it
        default=Value(4),
        output_field=IntegerField(),
    )
    rows = (
        tasks_table.annotate(group=group)
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
    oldest = tasks_table.pending().aggregate(oldest=Min("eta"))["oldest"]
    result["queues"] = queues
    result["tasks"] = tasks
    result["oldest_pending_age"] = (now - oldest).total_seconds() if oldest else None
    workers_table = Worker.objects.using(using)
    live = [
        {
            "ident": worker["ident"],
            "host": worker["host"],
            "pid": worker["pid"],
            "queues": worker["queues"].split(","),
            "started_at": worker["started_at"].isoformat(),
            "heartbeat_age": max(0.0, (now - worker["heartbeat"]).total_seconds()),
            "succeeded": worker["succeeded"],
            "failed": worker["failed"],
        }
        for worker in workers_table.filter(heartbeat__gte=dirty_cutoff())
        .order_by("ident")
        .values(*LIVE_WORKER_FIELDS)
    ]
    result["workers"] = len(live)
    result["live_workers"] = live
    return result
