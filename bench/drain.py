"""Drain: how fast N worker processes empty a table of tasks, and whether each task ran
exactly once.

The tasks are no-ops (``bench.record``) or, with ``task="bench.write"``, write one row
each through Django's cursor; the rows written are counted afterwards. ``connections=True``
also samples how many database connections each worker holds (``bench/connections.py``),
every ``SAMPLE_EVERY`` seconds: reading ``/proc/net/tcp`` costs the agent a few
milliseconds, which at every poll would take CPU from the workers on a small machine.

The workers start idle and the clock starts when the tasks, bulk-inserted in one
transaction, are committed; it stops when the table is empty. So start-up is not
counted, but an idle worker's wake-up is (at most one poll interval, a small share of
a 10 000-task run). Every execution appends its key to a per-process file; duplicates
and missing keys come from those files, and a worker that ended on its own counts as
dead (the original's extra SQLite workers die of "database is locked").
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import InterfaceError, OperationalError, connection

from bench import connections as held_connections
from bench import record
from bench.target import Target, truncate
from bench.workers import Workers

POLL = 0.02
#: No progress for this long (or every worker dead) ends the wait.
STALL_AFTER = 30.0
#: Seconds between two samples of the workers' connections.
SAMPLE_EVERY = 0.25


def remaining(target: Target) -> int:
    """Return ``target.remaining()``, waiting out a database restart (up to a minute).

    Other processes may restart a shared server mid-run; the workers are meant to
    survive that, and the benchmark's own polling should too.
    """
    deadline = time.monotonic() + 60
    while True:
        try:
            return target.remaining()
        except (OperationalError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            connection.close()
            time.sleep(1)


def wait_until_empty(
    target: Target, pool: Workers, on_poll: Callable[[int], None] | None = None
) -> tuple[float, int]:
    """Return the seconds from now until the table was empty, and the tasks left.

    If the workers stall, return the time of the last progress and what is left.
    """
    start = last_progress = time.perf_counter()
    left = remaining(target)
    while left:
        time.sleep(POLL)
        now_left = remaining(target)
        now = time.perf_counter()
        if on_poll is not None:
            on_poll(now_left)
        if now_left < left:
            last_progress = now
        elif now - last_progress > STALL_AFTER or len(pool.dead()) == pool.count:
            return last_progress - start, now_left
        left = now_left
    return time.perf_counter() - start, 0


def check_records(directory: Path, tasks: int) -> dict[str, int]:
    """Return how many keys ran more than once (extra runs) and how many never ran."""
    counts = Counter(key for key, _ in record.read(directory))
    return {
        "executions": sum(counts.values()),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "missing": sum(1 for key in range(tasks) if key not in counts),
    }


def measure(
    target: Target,
    tasks: int,
    workers: int,
    task: str | None = None,
    connections: bool = False,
    loglevel: str | None = None,
) -> dict[str, Any]:
    target.clear()
    if task is not None:
        target.task_name = task  # this agent process measures this one drain
    if loglevel is not None:
        target.loglevel = loglevel  # taskq's workers only (bench.target.Taskq)
    writes = task == "bench.write"
    if writes:
        from bench.models import Written

        truncate(Written._meta.db_table)
    record_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-records-"))
    most_held, sampled = 0, 0.0
    with Workers(target, workers, record_dir) as pool:
        pids = [process.pid for process in pool.processes]

        def sample(_left: int) -> None:
            nonlocal most_held, sampled
            if time.monotonic() - sampled >= SAMPLE_EVERY:
                sampled = time.monotonic()
                most_held = max([most_held, *held_connections.held(pids).values()])

        target.insert(range(tasks))
        seconds, left = wait_until_empty(target, pool, sample if connections else None)
        dead = pool.dead()
        locked = pool.count_in_logs("database is locked")
    extra: dict[str, Any] = {"task": target.task_name}
    if writes:
        extra["written"] = Written.objects.count()
    if connections:
        extra["connections_per_worker_max"] = most_held
    return {
        "tasks": tasks,
        "workers": workers,
        "seconds": round(seconds, 3),
        "rate": (tasks - left) / seconds if seconds > 0 else None,
        "left": left,
        "dead_workers": len(dead),
        "locked_messages": locked,
        **check_records(record_dir, tasks),
        **extra,
    }
