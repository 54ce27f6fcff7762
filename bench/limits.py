"""What flow control costs a claim: p50/p99 of the claim a worker makes, per kind of queue.

Cases, each claiming tasks of queue ``default`` through ``taskq.backends.flow.Flow`` as
the worker does (each claim followed by the fenced delete, which is not timed):

- ``no_pause_test``: the claim statement with the pause test replaced by a trivial
  condition on the same parameters: the claim as it was before pauses existed;
- ``unlimited``: today's claim, with its test that no queue is paused;
- ``paused_other``: the same while another queue (not the worker's) is paused;
- ``concurrency``: ``TASKQ_QUEUES = {"default": {"concurrency": 1000}}`` (the queue's row
  locked, the active tasks counted, then the claim, one transaction);
- ``rate``: ``{"rate": "1000000/s"}`` (row locked, ``next_start_at`` read and moved);
- ``both``: the two limits together.

The cases take turns, a slice of claims each, so that a busy machine weighs on all of
them alike. A limited claim that meets its own rate's next start (SQLite's clock has
milliseconds) is asked again at once and only the claim that succeeded is timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.test import override_settings

from bench.depth import analyze, fill, worker_row
from bench.latency import percentile
from bench.target import Target

WARMUP = 20
ROUNDS = 5
CASES = ("no_pause_test", "unlimited", "paused_other", "concurrency", "rate", "both")
LIMITS: dict[str, dict[str, Any]] = {
    "concurrency": {"concurrency": 1000},
    "rate": {"rate": "1000000/s"},
    "both": {"concurrency": 1000, "rate": "1000000/s"},
}


@contextmanager
def without_pause_test() -> Iterator[None]:
    """Render every claim with ``CAST(%s AS CHAR(100)) IS NOT NULL`` per queue instead
    of the pause test: the same parameters, no read of the queue table. PostgreSQL's
    claim is a function of the database: it is installed again without the test, and
    back with it at the end."""
    from taskq.backends import engine, mysql, sqlite

    def trivial(quote: Any, queue_count: int, **kwargs: Any) -> str:
        return " AND ".join(["CAST(%s AS CHAR(100)) IS NOT NULL"] * queue_count)

    def clear() -> None:
        for cached in (sqlite._claim_sql, sqlite._driver_sql):
            cached.cache_clear()

    saved = (sqlite.open_queues_sql, mysql.open_queues_share_locked_sql)
    saved_engine = engine.Engine.open_queues_sql
    sqlite.open_queues_sql = trivial  # type: ignore[assignment]
    mysql.open_queues_share_locked_sql = trivial  # type: ignore[assignment]
    engine.Engine.open_queues_sql = lambda self, n: trivial(None, n)  # type: ignore[method-assign]
    clear()
    try:
        with claim_functions_without_pause_test():
            yield
    finally:
        sqlite.open_queues_sql, mysql.open_queues_share_locked_sql = saved
        engine.Engine.open_queues_sql = saved_engine  # type: ignore[method-assign]
        clear()


@contextmanager
def claim_functions_without_pause_test() -> Iterator[None]:
    """Where the claim is a function of the database, install it without the pause
    test for the block."""
    from taskq.backends import engine_for, postgresql

    functions = engine_for(connection).claim_functions_sql()
    if not functions:
        yield
        return
    quote = connection.ops.quote_name
    pause_test = postgresql.open_queues_sql(quote, 1, true="true").replace(
        f"{quote('name')} = %s", f"{quote('name')} = ANY(p_queues)"
    )
    assert pause_test in functions
    with connection.cursor() as cursor:
        cursor.execute(functions.replace(pause_test, "true"))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(functions)


def claims_of(case: str, count: int, worker_id: int, samples: list[float]) -> int:
    """Make ``count`` claims of ``case``; append their times; return the retries."""
    from taskq.backends import get_strategy
    from taskq.backends.flow import Flow

    settings = {"TASKQ_QUEUES": {"default": LIMITS[case]}} if case in LIMITS else {}
    retries = 0
    with override_settings(**settings):
        strategy = get_strategy()
        flow = Flow(strategy, ["default"])
        flow.prepare()
        done = 0
        while done < count:
            flow.not_before.clear()
            start = time.perf_counter()
            claim = flow.claim(worker_id)
            elapsed = time.perf_counter() - start
            if claim is None:
                if case not in ("rate", "both") or retries > 100 * count:
                    raise RuntimeError(f"{case}: nothing claimed after {done} claims")
                retries += 1
                continue
            strategy.complete(claim)
            samples.append(elapsed)
            done += 1
    return retries


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 3),
    }


def measure(target: Target, claims: int) -> dict[str, Any]:
    from taskq import queues
    from taskq.models import Queue

    target.clear()
    Queue.objects.all().delete()
    per_slice = max(1, claims // ROUNDS)
    fill("due", 3 * (len(CASES) * (per_slice * ROUNDS + WARMUP)))  # a third in "default"
    analyze()
    worker = worker_row("bench-limits")
    samples: dict[str, list[float]] = {case: [] for case in CASES}
    retries = dict.fromkeys(CASES, 0)
    for round_ in range(ROUNDS + 1):  # round 0 warms every case up
        for case in CASES:
            kept = samples[case] if round_ else []
            if case == "paused_other":
                queues.pause("elsewhere")
            try:
                if case == "no_pause_test":
                    with without_pause_test():
                        retries[case] += claims_of(
                            case, per_slice if round_ else WARMUP, worker.pk, kept
                        )
                else:
                    retries[case] += claims_of(
                        case, per_slice if round_ else WARMUP, worker.pk, kept
                    )
            finally:
                queues.resume("elsewhere")
    worker.delete()
    target.clear()
    result: dict[str, Any] = {"claims": per_slice * ROUNDS, "vendor": connection.vendor}
    for case in CASES:
        result[case] = {**summary(samples[case]), "retries": retries[case]}
    base = result["unlimited"]["p50_ms"]
    result["p50_ratio_vs_unlimited"] = {
        case: round(result[case]["p50_ms"] / base, 2) for case in CASES
    }
    return result
