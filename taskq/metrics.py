"""Counts of tasks by group, queue and name, cheap enough to read every few seconds.

``snapshot()`` is one grouped query over the task table, one for the oldest pending
task and one over the worker table; read it from the Django shell or export it
(``taskq_stats``, ``taskq.prometheus``, the view in ``taskq.urls``). Its counts are
exact, so it reads every row: about two seconds for two million rows on MariaDB.

``bounded_counts()`` is what the admin's summary page shows: the same table of counts,
exact where that is cheap, and otherwise a lower bound or the query planner's estimate,
each marked as such (``Tally``). Its cost does not grow with the number of tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When

from taskq import history as _history
from taskq.backends import engine_for
from taskq.backends.estimates import estimated_count
from taskq.clock import DatabaseNow, database_now
from taskq.models import DISTINCT_VALUES_LIMIT, Task, TaskQuerySet, Worker, dirty_cutoff, dirty_q

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


#: ``bounded_counts()`` counts a whole group exactly up to this many tasks (an index-only
#: scan of this many entries takes about 70 ms on MariaDB), ...
TOTAL_COUNTED_UP_TO = 200_000
#: ... and one group's tasks of one queue or task name up to this many.
CELL_COUNTED_UP_TO = 10_000


def _empty() -> dict[str, int]:
    return dict.fromkeys(GROUPS, 0)


def _group_case() -> Case:
    """Return the expression of a task's group: its index in ``GROUPS``."""
    return Case(
        When(state=Task.State.FAILED, then=Value(0)),
        When(Q(state=Task.State.STARTED) & dirty_q(), then=Value(1)),
        When(state=Task.State.STARTED, then=Value(2)),
        When(eta__lte=database_now(), then=Value(3)),  # as pending() judges it
        default=Value(4),
        output_field=IntegerField(),
    )


def _grouped(tasks: QuerySet[Any]) -> QuerySet[Any]:
    """Return rows of queue, name, group and count: one grouped query over ``tasks``."""
    return (
        tasks.annotate(group=_group_case())
        .values("queue", "name", "group")
        .annotate(count=Count("pk"))
        .order_by()
    )


def snapshot(using: str | None = None) -> dict[str, Any]:
    """Return the task counts per group, per queue and per task name.

    ``{"failed": 1, "dirty": 0, "active": 2, "pending": 5, "future": 3,
    "queues": {"default": {...}}, "tasks": {"app.tasks.send": {...}},
    "oldest_pending_age": 1.5, "workers": 2, "live_workers": [{...}, ...],
    "paused_queues": ["mail"], "dead_rows": 120, "oldest_transaction_age": 0.2}``; ages
    are in seconds by the database's clock, or ``None`` (the last two: ``table_health``).
    ``live_workers`` describes each live worker process,
    with the tasks it finished since it started (``succeeded``, ``failed``). Every
    value is plain JSON (``started_at`` is an ISO 8601 string).
    ``using`` is a database alias; by default the routers choose, as for any query.
    """
    tasks_table = Task.objects.using(using)  # None: the routers choose
    result: dict[str, Any] = _empty()
    queues: dict[str, dict[str, int]] = {}
    tasks: dict[str, dict[str, int]] = {}
    for row in _grouped(tasks_table):
        name = GROUPS[row["group"]]
        result[name] += row["count"]
        queues.setdefault(row["queue"], _empty())[name] += row["count"]
        tasks.setdefault(row["name"], _empty())[name] += row["count"]
    result["queues"] = queues
    result["tasks"] = tasks
    result["oldest_pending_age"] = _oldest_pending_age(tasks_table)
    result.update(_live_workers(using))
    result["paused_queues"] = paused_queues(using)
    result.update(table_health(tasks_table.db))
    return result


def paused_queues(using: str | None) -> list[str]:
    """The paused queues (``taskq.queues``), sorted."""
    from taskq.queues import paused  # taskq.queues imports this module

    return paused(using)


def table_health(using: str) -> dict[str, Any]:
    """What warns of a queue table that cannot be vacuumed, where the database keeps
    dead rows (PostgreSQL): ``dead_rows``, the task table's dead rows by the server's
    statistics, and ``oldest_transaction_age``, the seconds since the oldest open
    transaction that holds their removal back began (among the sessions this role can
    see). Each is ``None`` where the database has no such thing or does not say."""
    engine = engine_for(connections[using])
    if not engine.keeps_dead_rows:
        return {"dead_rows": None, "oldest_transaction_age": None}
    return {
        "dead_rows": engine.dead_rows(Task._meta.db_table),
        "oldest_transaction_age": engine.oldest_transaction_age(),
    }


def _age(row: Mapping[str, Any], column: str) -> float:
    """Seconds from ``column`` to the row's ``now``, both the database's; never negative."""
    return max(0.0, (row["now"] - row[column]).total_seconds())


def _oldest_pending_age(tasks_table: TaskQuerySet) -> float | None:
    """The oldest pending ETA's age, by the database's clock (read in the same query)."""
    row = tasks_table.pending().order_by("eta").annotate(now=DatabaseNow()).values("eta", "now")
    oldest = row.first()
    return _age(oldest, "eta") if oldest else None


def _live_workers(using: str | None) -> dict[str, Any]:
    workers_table = Worker.objects.using(using).annotate(now=DatabaseNow())
    live = [
        {
            "ident": worker["ident"],
            "host": worker["host"],
            "pid": worker["pid"],
            "queues": worker["queues"].split(","),
            "started_at": worker["started_at"].isoformat(),
            "heartbeat_age": _age(worker, "heartbeat"),
            "succeeded": worker["succeeded"],
            "failed": worker["failed"],
        }
        for worker in workers_table.filter(heartbeat__gte=dirty_cutoff())
        .order_by("ident")
        .values(*LIVE_WORKER_FIELDS, "now")
    ]
    return {"workers": len(live), "live_workers": live}


@dataclass(frozen=True)
class Tally:
    """A count as ``bounded_counts()`` knows it: exact, a lower bound or an estimate."""

    value: int
    #: "exact"; "at least" (counting stopped at ``value``); "estimate" (the planner's).
    kind: str = "exact"

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    def __str__(self) -> str:
        return {"exact": "", "at least": "≥ ", "estimate": "≈ "}[self.kind] + str(self.value)


ZERO = Tally(0)


def _count_up_to(tasks: QuerySet[Any], limit: int) -> Tally:
    """Count ``tasks`` exactly, reading no more than ``limit`` of them."""
    counted = tasks.order_by()[:limit].count()  # COUNT(*) over a LIMIT subquery
    return Tally(counted, "exact" if counted < limit else "at least")


def _group_total(tasks: QuerySet[Any]) -> Tally:
    """Count a group exactly up to ``TOTAL_COUNTED_UP_TO``; past that, the estimate."""
    estimate = estimated_count(tasks)
    if estimate is None:  # SQLite: no planner estimate to fall back on
        return Tally(tasks.count())
    if estimate < 4 * TOTAL_COUNTED_UP_TO:  # else counting would surely stop short
        tally = _count_up_to(tasks, TOTAL_COUNTED_UP_TO)
        if tally.exact or estimate <= tally.value:
            return tally
    return Tally(estimate, "estimate")


def bounded_counts(using: str | None = None) -> dict[str, Any]:
    """Return ``snapshot()``'s counts at a cost that does not grow with the table.

    ``{"failed": Tally, ..., "queues": {"default": {"failed": Tally, ...}},
    "tasks": {...}, "oldest_pending_age": ..., "workers": ..., "live_workers": [...]}``.
    The tasks of a state (failed, started, queued) are counted exactly in one grouped
    query when the planner expects fewer than ``CELL_COUNTED_UP_TO`` of them. A bigger
    group's total is counted up to ``TOTAL_COUNTED_UP_TO`` and then estimated by the
    planner; its count per queue and per name is exact when the total is, and otherwise
    stops at ``CELL_COUNTED_UP_TO`` ("at least"). Queues and names come from
    ``TaskQuerySet.values_in_state``, through indexes, at most ``DISTINCT_VALUES_LIMIT``
    of each; ``"cut"`` says whether some were left out.
    """
    tasks_table = Task.objects.using(using)
    totals: dict[str, Tally] = dict.fromkeys(GROUPS, ZERO)
    breakdowns: dict[str, dict[str, dict[str, Tally]]] = {"queue": {}, "name": {}}
    cut = False

    def row_of(column: str, value: str) -> dict[str, Tally]:
        return breakdowns[column].setdefault(value, dict.fromkeys(GROUPS, ZERO))

    members = {
        Task.State.FAILED: ["failed"],
        Task.State.STARTED: ["dirty", "active"],
        Task.State.QUEUED: ["pending", "future"],
    }
    for state, groups in members.items():
        in_state = tasks_table.filter(state=state)
        estimate = estimated_count(in_state)
        if estimate is None or estimate < CELL_COUNTED_UP_TO:
            exact: dict[str, int] = {}
            per: dict[str, dict[tuple[str, str], int]] = {"queue": {}, "name": {}}
            for row in _grouped(in_state):
                group = GROUPS[row["group"]]
                exact[group] = exact.get(group, 0) + row["count"]
                for column in ("queue", "name"):
                    key = (row[column], group)
                    per[column][key] = per[column].get(key, 0) + row["count"]
            for group, count in exact.items():
                totals[group] = Tally(count)
            for column, counts in per.items():
                for (value, group), count in counts.items():
                    row_of(column, value)[group] = Tally(count)
            continue
        values = {
            column: tasks_table.values_in_state(state, column, DISTINCT_VALUES_LIMIT + 1)
            for column in ("queue", "name")
        }
        for column, found in values.items():
            if len(found) > DISTINCT_VALUES_LIMIT:
                cut = True
                values[column] = found[:DISTINCT_VALUES_LIMIT]
        for group in groups:
            tasks = getattr(tasks_table, group)()
            total = totals[group] = _group_total(tasks)
            # Below the total's own limit every count per value is exact too, and
            # together they read at most the group's tasks once per column.
            limit = total.value + 1 if total.exact else CELL_COUNTED_UP_TO
            for column, column_values in values.items():
                for value in column_values:
                    row = row_of(column, value)
                    if total != ZERO:
                        row[group] = _count_up_to(tasks.filter(**{column: value}), limit)
    return {
        **totals,
        "queues": breakdowns["queue"],
        "tasks": breakdowns["name"],
        "oldest_pending_age": _oldest_pending_age(tasks_table),
        **_live_workers(using),
        "cut": cut,
    }


def history(minutes: int = 60, queue: str | None = None, using: str | None = None) -> list[Any]:
    """Return what the workers did in each of the last ``minutes`` minutes, oldest first.

    ``[{"minute": "2026-12-01T10:41:00+00:00", "succeeded": 120, "failed": 2,
    "retried": 5, "expired": 0, "pending": 40, "oldest_pending_age": 3.2}, ...]``,
    summed over the queues (or of ``queue`` alone), by the database's clock: the rows
    the workers' heartbeats write (``taskq.history``). ``pending`` and
    ``oldest_pending_age`` are ``None`` for a minute no worker wrote. Plain JSON.
    """
    return [
        {**entry, "minute": entry["minute"].isoformat()}
        for entry in _history.series(minutes, queue, using)
    ]
