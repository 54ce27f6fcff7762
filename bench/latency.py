"""Pickup latency and ETA accuracy of one idle worker.

Pickup: tasks are enqueued one at a time with ``delay()`` at random moments (a random
pause before each, so they land anywhere in the worker's poll cycle), and each is
awaited before the next; latency is from ``delay()`` returning (the row committed) to
the task body starting, both read from ``time.time()`` on the same machine.

ETA: tasks with ETAs spread a few hundred milliseconds apart are enqueued up front;
the worker is idle before each comes due. Lateness is the task's start minus its ETA:
the target is p50 ≤ 100 ms and never negative (never started before its ETA).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench import record
from bench.target import Target
from bench.workers import Workers

WAIT_FOR_TASK = 30.0


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "min_ms": round(min(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def wait_for_key(directory: Path, key: int, timeout: float = WAIT_FOR_TASK) -> float:
    """Return the recorded start time of task ``key``, polling the record files."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found, started in record.read(directory):
            if found == key:
                return started
        time.sleep(0.001)
    raise RuntimeError(f"task {key} did not run within {timeout}s")


def pickup(
    target: Target, count: int, pause: tuple[float, float] = (0.05, 0.4), seed: int = 1
) -> dict[str, Any]:
    rng = random.Random(seed)
    target.clear()
    record_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-records-"))
    latencies = []
    with Workers(target, 1, record_dir):
        time.sleep(1.0)  # let the worker settle into its idle loop
        for key in range(count):
            time.sleep(rng.uniform(*pause))
            target.delay(key)
            committed = time.time()
            latencies.append(wait_for_key(record_dir, key) - committed)
    return summary_ms(latencies)


def eta(target: Target, count: int, spacing: float = 0.3, seed: int = 2) -> dict[str, Any]:
    rng = random.Random(seed)
    target.clear()
    record_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-records-"))
    with Workers(target, 1, record_dir) as pool:
        first = datetime.now(timezone.utc) + timedelta(seconds=1.5)
        etas = {
            key: first + timedelta(seconds=key * spacing + rng.uniform(0, spacing / 2))
            for key in range(count)
        }
        for key, moment in etas.items():
            target.delay(key, eta=moment)
        wait_for_key(record_dir, count - 1, timeout=count * spacing + WAIT_FOR_TASK)
        time.sleep(0.2)
        dead = len(pool.dead())
    started = dict(record.read(record_dir))
    lateness = [started[key] - moment.timestamp() for key, moment in etas.items()]
    return {
        **summary_ms(lateness),
        "early": sum(1 for late in lateness if late < 0),
        "dead_workers": dead,
    }
