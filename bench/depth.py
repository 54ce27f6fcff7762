"""Claim cost at depth: claim latency with millions of rows beside the due ones.

The table holds 1 000 000 due and 1 000 000 future tasks spread over three queues and
eleven priorities, plus 100 000 failed tasks (``--quick``: a tenth). The claims, of
queue ``default``, go through taskq's own claim strategy in this process, each followed
by the fenced delete a worker does after success; only the claim is timed. The same is
measured on an almost empty table (only the rows those claims take), and the target is
claim p99 at depth within 2x of that.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from typing import Any

from django.db import connection
from django.utils import timezone

from bench import admin_pages, rows
from bench.latency import percentile
from bench.target import Target

WARMUP = 20


def fill(kind: str, count: int, *, mixed: bool = True) -> None:
    from taskq.models import Task

    with connection.cursor() as cursor:
        cursor.execute(
            rows.insert_sql(connection.vendor, Task._meta.db_table, count, kind, mixed=mixed)
        )


def analyze() -> None:
    from taskq.models import Task

    sql = rows.analyze_sql(connection.vendor, Task._meta.db_table)
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            if cursor.description:
                cursor.fetchall()


def claim_latencies(claims: int) -> dict[str, Any]:
    """Claim and complete ``claims`` tasks of queue ``default``; return claim p50/p99."""
    from taskq.backends import get_strategy

    strategy = get_strategy()
    worker = worker_row("bench-depth")
    samples = []
    for i in range(WARMUP + claims):
        start = time.perf_counter()
        claim = strategy.claim(["default"], worker.pk)
        elapsed = time.perf_counter() - start
        if claim is None:
            raise RuntimeError(f"nothing to claim after {i} claims")
        strategy.complete(claim)
        if i >= WARMUP:
            samples.append(elapsed)
    worker.delete()
    return {
        "claims": claims,
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
        "max_ms": round(max(samples) * 1000, 3),
    }


def measure(
    target: Target, due: int, future: int, failed: int, claims: int, admin: bool = True
) -> dict[str, Any]:
    target.clear()
    # Almost empty: just enough due rows (a third in queue "default") for the claims.
    fill("due", 3 * (claims + WARMUP))
    analyze()
    empty = claim_latencies(claims)
    target.clear()

    start = time.perf_counter()
    fill("due", due)
    fill("future", future)
    fill("failed", failed)
    analyze()
    load_seconds = time.perf_counter() - start
    deep = claim_latencies(claims)
    pages = admin_pages.measure() if admin else None
    target.clear()
    analyze()
    return {
        "due": due,
        "future": future,
        "failed": failed,
        "load_seconds": round(load_seconds, 1),
        "empty": empty,
        "deep": deep,
        "p99_ratio": deep["p99_ms"] / empty["p99_ms"],
        "admin_pages": pages,
    }


def worker_row(label: str) -> Any:
    """Write the worker row a measurement's claims name (queue ``default``)."""
    from taskq.models import Worker

    now = timezone.now()
    return Worker.objects.create(
        ident=f"{label}:{os.getpid()}:{time.time()}",
        host=socket.gethostname(),
        pid=os.getpid(),
        queues="default",
        started_at=now,
        heartbeat=now,
    )
