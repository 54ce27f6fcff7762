"""Pressure: a steady producer and draining workers while a session holds a transaction
open (PostgreSQL; ``--only pressure``).

A queue table makes a dead row per task. A transaction left open (``BEGIN; SELECT
txid_current();`` then idle, as an application that forgot to commit) pins the horizon
below which no vacuum may remove them, so they pile up in the heap and in the claim
index, and every claim walks past them. The cell runs three phases: ``before`` (no open
transaction), ``during`` (the transaction held for ``hold`` seconds) and ``after`` (from
its end until the backlog is back to what it was before, or ``recover_limit`` seconds).
Throughout, a producer queues ``rate`` tasks a second (``delay()``, one commit each) and
``workers`` workers drain them.

Per phase it reports the throughput (tasks finished per second), the backlog at its
end, the claim's time p50/p99 and the task table's dead rows (``n_dead_tup``, the
server's statistics) at its start and end. The claim's time is sampled from here, every
``PROBE_EVERY`` seconds: the claim function in a transaction that is rolled back, so it
claims nothing (the row it held is queued again at once). ``recovery_seconds`` is how long
after the transaction ended the backlog was back to its level before. Where nobody
vacuums the table (this server runs with ``autovacuum = off``), dead rows stay until
someone does: ``vacuum_after`` (default on) runs one ``VACUUM`` of the task table as the
transaction ends, as autovacuum would soon after, and the cell says so.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from django.db import connection, connections

from bench import databases
from bench.drain import check_records
from bench.target import Target
from bench.workers import Workers
from taskq.backends.postgresql import CALL_CLAIM

#: Seconds between two probe claims, and between two samples of the table.
PROBE_EVERY = 0.05
#: The claim as workers send it (the worker NULL: rolled back, so nobody is claimed).
PROBE_SQL = CALL_CLAIM
SAMPLE_EVERY = 0.5


class Producer(threading.Thread):
    """Queue ``rate`` tasks a second, one ``delay()`` each, until stopped."""

    def __init__(self, target: Target, rate: float) -> None:
        super().__init__(daemon=True)
        self.target, self.rate = target, rate
        self.stopped = threading.Event()
        self.produced = 0

    def run(self) -> None:
        start = time.monotonic()
        try:
            while not self.stopped.is_set():
                due = int((time.monotonic() - start) * self.rate)
                while self.produced < due:
                    self.target.delay(self.produced)
                    self.produced += 1
                time.sleep(0.005)
        finally:
            connections.close_all()


class Prober(threading.Thread):
    """Time the claim every ``PROBE_EVERY`` seconds, in a transaction rolled back."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stopped = threading.Event()
        self.samples: list[tuple[float, float]] = []  # (monotonic time, seconds)

    def run(self) -> None:
        driver = databases.connect("postgresql", databases.TASKQ_NAME)
        try:
            while not self.stopped.wait(PROBE_EVERY):
                with driver.transaction(force_rollback=True):
                    started = time.perf_counter()
                    driver.execute(PROBE_SQL, [None, ["default"], []]).fetchall()
                    self.samples.append((time.monotonic(), time.perf_counter() - started))
        finally:
            driver.close()


def table_state() -> tuple[int, int]:
    """Return the task table's rows and its dead rows (server statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM taskq_task), "
            "(SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'taskq_task')"
        )
        rows, dead = cursor.fetchone()
    return int(rows), int(dead or 0)


def measure(
    target: Target,
    hold: float = 300.0,
    rate: float = 500.0,
    workers: int = 2,
    before: float = 20.0,
    recover_limit: float | None = None,
    vacuum_after: bool = True,
) -> dict[str, Any]:
    if connection.vendor != "postgresql":
        return {"skipped": "PostgreSQL only"}
    recover_limit = recover_limit if recover_limit is not None else max(60.0, hold)
    target.clear()
    target.task_name = "bench.record"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM taskq_task")
    record_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-records-"))
    samples: list[dict[str, float]] = []
    marks: dict[str, float] = {}
    holder = databases.connect("postgresql", databases.TASKQ_NAME)
    with Workers(target, workers, record_dir) as pool:
        dead_workers = pool.dead
        producer, prober = Producer(target, rate), Prober()
        producer.start()
        prober.start()
        t0 = time.monotonic()

        def sample() -> dict[str, float]:
            rows, dead = table_state()
            entry = {"t": time.monotonic() - t0, "produced": producer.produced}
            entry.update(rows=rows, dead=dead, done=producer.produced - rows)
            samples.append(entry)
            return entry

        def run_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                sample()
                time.sleep(SAMPLE_EVERY)

        marks["before"] = 0.0
        run_for(before)
        baseline = max(statistics.median(s["rows"] for s in samples), rate * 0.2)
        holder.execute("BEGIN")
        holder.execute("SELECT txid_current()").fetchone()
        marks["during"] = time.monotonic() - t0
        run_for(hold)
        holder.rollback()
        marks["after"] = time.monotonic() - t0
        vacuumed = False
        if vacuum_after:
            with connection.cursor() as cursor:
                cursor.execute("VACUUM taskq_task")
            vacuumed = True
        recovered_at = None
        deadline = time.monotonic() + recover_limit
        while time.monotonic() < deadline:
            entry = sample()
            if entry["rows"] <= baseline:
                recovered_at = entry["t"]
                break
            time.sleep(SAMPLE_EVERY)
        run_for(min(before, 5.0))
        marks["end"] = time.monotonic() - t0
        producer.stopped.set()
        producer.join()
        prober.stopped.set()
        prober.join()
        while table_state()[0]:  # let the workers finish what was produced
            if time.monotonic() - t0 > marks["end"] + recover_limit:
                break
            time.sleep(SAMPLE_EVERY)
        dead = len(dead_workers())
    holder.close()
    probes = [(t - t0, seconds) for t, seconds in prober.samples]
    phases = {}
    for name, (start, end) in {
        "before": (marks["before"], marks["during"]),
        "during": (marks["during"], marks["after"]),
        "after": (marks["after"], marks["end"]),
    }.items():
        inside = [s for s in samples if start <= s["t"] <= end]
        times = sorted(seconds for t, seconds in probes if start <= t <= end)
        phase: dict[str, Any] = {"seconds": round(end - start, 1)}
        if len(inside) >= 2:
            first, last = inside[0], inside[-1]
            phase["rate"] = (last["done"] - first["done"]) / max(last["t"] - first["t"], 1e-9)
            phase["backlog_end"] = last["rows"]
            phase["backlog_max"] = max(s["rows"] for s in inside)
            phase["dead_start"], phase["dead_end"] = first["dead"], last["dead"]
        if times:
            phase["claim_p50_ms"] = 1e3 * times[len(times) // 2]
            phase["claim_p99_ms"] = 1e3 * times[min(len(times) - 1, int(len(times) * 0.99))]
        phases[name] = phase
    faults = check_records(record_dir, producer.produced)
    return {
        "rate_asked": rate,
        "workers": workers,
        "hold_seconds": hold,
        "produced": producer.produced,
        "phases": phases,
        "recovery_seconds": None if recovered_at is None else recovered_at - marks["after"],
        "vacuumed_after": vacuumed,
        "dead_workers": dead,
        # The summary line on stderr shows these.
        "rate": phases["during"].get("rate"),
        "p99_ms": phases["during"].get("claim_p99_ms"),
        **faults,
    }
