"""Worker memory: resident set size of one worker, idle at start and after N tasks.

The worker runs with ``DEBUG=True``, where Django keeps every query in
``connection.queries`` unless someone resets it, so a leak shows here first. Tasks are
fed in batches that keep the table small, so the run measures memory per task and not
the cost of a deep queue. RSS is read from /proc when the worker is ready (idle, before
any task), after the first 1 000 tasks (caches warm) and at the end; the target is end
within ±10 % of start.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.drain import STALL_AFTER, remaining
from bench.target import Target
from bench.workers import Workers, rss_bytes

MIB = 1024 * 1024
WARM_AFTER = 1000
BATCH = 2000
POLL = 0.05


def measure(target: Target, tasks: int) -> dict[str, Any]:
    target.clear()
    record_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-records-"))
    with Workers(target, 1, record_dir, env={"BENCH_DEBUG": "1"}) as pool:
        pid = pool.processes[0].pid
        start = peak = rss_bytes(pid)
        warm = None
        fed, left = 0, 0
        began = last_progress = time.perf_counter()
        while fed < tasks or left:
            if fed < tasks and left < BATCH // 2:
                batch = range(fed, min(tasks, fed + BATCH))
                target.insert(batch)
                fed += len(batch)
            time.sleep(POLL)
            now_left = remaining(target)
            if now_left < left or fed < tasks:
                last_progress = time.perf_counter()
            elif time.perf_counter() - last_progress > STALL_AFTER or pool.dead():
                break
            left = now_left
            rss = rss_bytes(pid)
            peak = max(peak, rss)
            if warm is None and fed - left >= WARM_AFTER:
                warm = rss
        seconds = time.perf_counter() - began
        end = rss_bytes(pid)
    return {
        "tasks": tasks,
        "left": left,
        "seconds": round(seconds, 1),
        "start_mib": round(start / MIB, 1),
        "warm_mib": None if warm is None else round(warm / MIB, 1),
        "end_mib": round(end / MIB, 1),
        "peak_mib": round(peak / MIB, 1),
        "growth": end / start - 1,
        "growth_after_warm": None if warm is None else end / warm - 1,
    }
