"""Run the benchmark: ``python -m bench [--quick] [--databases …] [--only …] [--json PATH]``.

For each database the orchestrator (this process, without Django) creates the
benchmark's databases, migrates them, then runs each measurement in an agent process
of its own (``bench/agent.py``): Django can be set up once per process, and the
original django-taskq lives in another virtualenv. The bare SQL loops run from here.
Results are printed as a table per database and written as JSON, also after each
database so that an interrupted run keeps what it measured.

Measurements (``--only``): ``enqueue`` (``delay()``, the bulk API); ``drain`` (no-op
tasks, 1, 2 and 4 workers, beside the original and the bare loop; the workers run with
``-l WARNING``, and ``drain_1_info`` is the one-worker drain at the default ``-l INFO``,
which writes two lines per task); ``drain_write`` (tasks that write one row through
Django's cursor, 1, 2 and 4 workers, with ``CONN_MAX_AGE = None`` as in
``drain_write_K`` and with Django's default 0 as in ``drain_write_K_age0``, beside
``bare_write_K``, the bare loop with the same write in a commit of its own,
``bare_write_K_django``, the same with the write sent through Django's cursor as the
task sends it, and ``bare_write_K_one_commit``, the same write in the claim's commit
(``bench/bare.py`` says which is the floor), and ``body``, the task's own INSERT
through Django, the ORM and through the driver with no queue around it; each drain also
samples the database connections each worker holds); ``latency`` (pickup, also as
``pickup_age0`` with ``CONN_MAX_AGE = 0``, and ETA); ``depth`` (claims at depth, admin
pages); ``memory``; ``many`` (the write drain with 8 and 16 workers, PostgreSQL and
MariaDB); ``pressure`` (PostgreSQL: a steady producer and workers while a session holds
a transaction open, ``bench/pressure.py``); ``limits`` (the claim's p50/p99 with and
without the pause test, and for queues with a concurrency and a rate limit).
Every cell runs with ``CONN_MAX_AGE = None`` unless its name ends in ``_age0``.

Sizes (full / ``--quick``): 5 000 / 1 000 ``delay()`` calls; 100 000 / 20 000 rows for
the bulk API; drains of 10 000 / 2 000 tasks with 1, 2 and 4 workers; 100 / 20 pickups
(original: 50 / 8, it polls once a second) and ETAs; 1M due + 1M future + 100k failed
rows / a tenth, with 500 / 200 claims, for the claim at depth; 100 000 / 10 000 tasks
for worker memory; 20 000 / 4 000 write tasks for 8 and 16 workers (``many``); pressure:
a transaction held 300 / 30 s (``--pressure-hold``) while 500 / 200 tasks a second are
queued for 2 workers. The run is one cell per measurement; ``--rounds N`` measures the
drain cells N times, alternating taskq and its floor, and keeps each cell's median
round (the JSON has every round's rate): on a shared machine a ratio of two single
cells moves by a quarter from one run to the next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bare, databases, original, report
from bench.agent import RESULT_PREFIX

#: A cell of ``Run.alternate``: its key, the measurement, its arguments.
Cell = tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...], dict[str, Any]]

REPO = Path(__file__).resolve().parent.parent
MEASUREMENTS = (
    "enqueue",
    "drain",
    "drain_write",
    "latency",
    "depth",
    "memory",
    "many",
    "pressure",
    "limits",
)
#: The drains of ``many``, and the databases they run on (SQLite has one writer).
MANY_WORKERS = (8, 16)
MANY_DATABASES = ("postgresql", "mysql")
WORKER_COUNTS = (1, 2, 4)
#: What the progress line on stderr shows of a result.
SUMMARY = (
    "rate",
    "p50_ms",
    "p95_ms",
    "growth",
    "p99_ratio",
    "duplicates",
    "missing",
    "written",
    "connections_per_worker_max",
)
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "delay": 5_000,
        "bulk": 100_000,
        "drain": 10_000,
        "pickup": 100,
        "original_pickup": 50,
        "eta": 100,
        "depth": {"due": 1_000_000, "future": 1_000_000, "failed": 100_000, "claims": 500},
        "memory": 100_000,
        "limits": 1_000,
        "many": 20_000,
        "pressure": {"hold": 300.0, "rate": 500.0, "workers": 2, "before": 20.0},
    },
    "quick": {
        "delay": 1_000,
        "bulk": 20_000,
        "drain": 2_000,
        "pickup": 20,
        "original_pickup": 8,
        "eta": 20,
        "depth": {"due": 100_000, "future": 100_000, "failed": 10_000, "claims": 200},
        "memory": 10_000,
        "limits": 250,
        "many": 4_000,
        "pressure": {"hold": 30.0, "rate": 200.0, "workers": 2, "before": 10.0},
    },
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[2],
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument(
        "--databases",
        default=",".join(databases.VENDORS),
        help=f"comma-separated, from {','.join(databases.VENDORS)} (default: all)",
    )
    parser.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated, from {','.join(MEASUREMENTS)} (default: all)",
    )
    parser.add_argument("--no-original", action="store_true", help="skip the original django-taskq")
    parser.add_argument(
        "--pressure-hold",
        type=float,
        default=None,
        help="seconds the pressure cell holds its transaction open (default: 300, quick 30)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of the drain cells (drain, drain_write), each round running a "
        "worker count's cells once in turn; a cell keeps its median round (default: 1)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="default: bench-results/<time>.json"
    )
    args = parser.parse_args(argv)
    args.databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for name in args.databases:
        if name not in databases.VENDORS:
            parser.error(f"unknown database {name!r}")
    for name in args.only:
        if name not in MEASUREMENTS:
            parser.error(f"unknown measurement {name!r}")
    return args


def environment(target: str, vendor: str, conn_max_age: str = "none") -> dict[str, str]:
    """Return the environment of an agent; its workers inherit it (``CONN_MAX_AGE`` too)."""
    module = "bench.original_settings" if target == "original" else "bench.settings"
    path = os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": module,
        "BENCH_DATABASE": vendor,
        "BENCH_CONN_MAX_AGE": conn_max_age,
        "PYTHONPATH": path,
    }


def interpreter(target: str) -> str:
    return str(original.python()) if target == "original" else sys.executable


def migrate(target: str, vendor: str) -> None:
    subprocess.run(
        [interpreter(target), "-m", "django", "migrate", "-v0", "--skip-checks"],
        env=environment(target, vendor),
        cwd=REPO,
        check=True,
    )


def run_agent(
    target: str, vendor: str, measurement: str, conn_max_age: str = "none", **parameters: Any
) -> dict[str, Any]:
    """Run one measurement in an agent process and return its result."""
    completed = subprocess.run(
        [interpreter(target), "-m", "bench.agent", measurement, json.dumps(parameters)],
        env=environment(target, vendor, conn_max_age),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]))
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-12:]
    raise RuntimeError(f"{target} {measurement} exited {completed.returncode}: " + "\n".join(tail))


class Run:
    """One benchmark run: what was asked, where the results go, the results so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = SIZES["quick" if args.quick else "full"]
        self.data: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "mode": "quick" if args.quick else "full",
            "sizes": self.sizes,
            "machine": machine(),
            "databases": {},
        }

    def step(self, vendor: str, key: str, measure: Any, *params: Any, **kwargs: Any) -> None:
        """Run one measurement, keep its result (or its error) and say so on stderr."""
        started, load = time.monotonic(), os.getloadavg()[0]
        try:
            result = measure(*params, **kwargs)
        except Exception as error:  # one failed measurement must not lose the others
            result = {"error": str(error)}
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        # Other processes on the machine skew a cell; the load average says how busy it was.
        result["load_before"] = round(load, 2)
        self.data["databases"][vendor]["results"][key] = result
        summary = result.get("error") or {
            k: round(v, 2) if isinstance(v, float) else v for k, v in result.items() if k in SUMMARY
        }
        print(
            f"[{vendor}] {key}: {summary} ({result['wall_seconds']}s)", file=sys.stderr, flush=True
        )

    def alternate(self, vendor: str, cells: list[Cell]) -> None:
        """Measure ``cells`` (key, measure, params, keyword params) side by side, in
        ``--rounds`` rounds that run each cell once in turn, so that a change of the
        machine's speed during the run reaches every cell alike; keep per cell the
        round of median rate (``combine_rounds``)."""
        rounds: dict[str, list[dict[str, Any]]] = {key: [] for key, *_ in cells}
        for _ in range(self.args.rounds):
            for key, measure, params, kwargs in cells:
                self.step(vendor, key, measure, *params, **kwargs)
                rounds[key].append(self.data["databases"][vendor]["results"][key])
        if self.args.rounds > 1:
            for key, results in rounds.items():
                self.data["databases"][vendor]["results"][key] = combine_rounds(results)

    def database(self, vendor: str) -> None:
        sizes, originals = self.sizes, not self.args.no_original
        self.data["databases"][vendor] = {
            "version": databases.server_version(vendor),
            "results": {},
        }
        databases.create(vendor, databases.TASKQ_NAME)
        migrate("taskq", vendor)
        if originals:
            databases.create(vendor, databases.ORIGINAL_NAME)
            migrate("original", vendor)
        only = self.args.only
        # The bare loop sends taskq's own per-task statements, rendered by taskq.
        sql = run_agent("taskq", vendor, "statements")
        if "enqueue" in only:
            self.step(vendor, "delay", run_agent, "taskq", vendor, "delay", tasks=sizes["delay"])
            if originals:
                self.step(
                    vendor,
                    "original_delay",
                    run_agent,
                    "original",
                    vendor,
                    "delay",
                    tasks=sizes["delay"],
                )
            self.step(vendor, "bulk", run_agent, "taskq", vendor, "bulk", tasks=sizes["bulk"])
        if "drain" in only:
            for workers in WORKER_COUNTS:
                tasks = sizes["drain"]
                cells: list[Cell] = [
                    (
                        f"drain_{workers}",
                        run_agent,
                        ("taskq", vendor, "drain"),
                        {"tasks": tasks, "workers": workers},
                    ),
                ]
                if originals:
                    cells.append(
                        (
                            f"original_drain_{workers}",
                            run_agent,
                            ("original", vendor, "drain"),
                            {"tasks": tasks, "workers": workers},
                        )
                    )
                cells.append((f"bare_{workers}", bare.measure, (vendor, sql, tasks, workers), {}))
                if workers == 1:
                    # taskq_worker's default log level: two lines per task.
                    cells.append(
                        (
                            "drain_1_info",
                            run_agent,
                            ("taskq", vendor, "drain"),
                            {"tasks": tasks, "workers": 1, "loglevel": "INFO"},
                        )
                    )
                self.alternate(vendor, cells)
        if "drain_write" in only:
            # What the write task's body costs without a queue (bench/body.py).
            self.step(vendor, "body", run_agent, "taskq", vendor, "body", tasks=sizes["drain"])
            for workers in WORKER_COUNTS:
                # The two settings side by side, so the ratio of the two sees the same load.
                cells = [
                    (
                        f"drain_write_{workers}{suffix}",
                        run_agent,
                        ("taskq", vendor, "drain"),
                        {
                            "conn_max_age": age,
                            "tasks": sizes["drain"],
                            "workers": workers,
                            "task": "bench.write",
                            "connections": True,
                        },
                    )
                    for age, suffix in (("none", ""), ("0", "_age0"))
                ]
                # The floor (a commit for the task's INSERT, one for delete and claim),
                # the same with the INSERT sent through Django's cursor, and with the
                # INSERT folded into the claim's commit.
                cells += [
                    (
                        f"bare_write_{workers}{suffix}",
                        bare.measure,
                        (vendor, sql, sizes["drain"], workers),
                        {"write": write, "environ": environment("taskq", vendor)},
                    )
                    for write, suffix in (
                        ("own", ""),
                        ("django", "_django"),
                        ("together", "_one_commit"),
                    )
                ]
                self.alternate(vendor, cells)
        if "latency" in only:
            self.step(vendor, "pickup", run_agent, "taskq", vendor, "pickup", count=sizes["pickup"])
            self.step(
                vendor,
                "pickup_age0",
                run_agent,
                "taskq",
                vendor,
                "pickup",
                conn_max_age="0",
                count=sizes["pickup"],
            )
            if originals:
                self.step(
                    vendor,
                    "original_pickup",
                    run_agent,
                    "original",
                    vendor,
                    "pickup",
                    count=sizes["original_pickup"],
                    pause=[0.05, 1.2],
                )
            self.step(vendor, "eta", run_agent, "taskq", vendor, "eta", count=sizes["eta"])
        if "depth" in only:
            self.step(vendor, "depth", run_agent, "taskq", vendor, "depth", **sizes["depth"])
        if "limits" in only:
            self.step(
                vendor, "limits", run_agent, "taskq", vendor, "limits", claims=sizes["limits"]
            )
        if "many" in only and vendor in MANY_DATABASES:
            for workers in MANY_WORKERS:
                self.step(
                    vendor,
                    f"many_{workers}",
                    run_agent,
                    "taskq",
                    vendor,
                    "drain",
                    tasks=sizes["many"],
                    workers=workers,
                    task="bench.write",
                    connections=True,
                )
                self.step(
                    vendor,
                    f"bare_many_{workers}",
                    bare.measure,
                    vendor,
                    sql,
                    sizes["many"],
                    workers,
                    write="own",
                )
        if "pressure" in only and vendor == "postgresql":
            hold = self.args.pressure_hold
            params = {**sizes["pressure"], **({"hold": hold} if hold is not None else {})}
            self.step(vendor, "pressure", run_agent, "taskq", vendor, "pressure", **params)
        if "memory" in only:
            self.step(vendor, "memory", run_agent, "taskq", vendor, "memory", tasks=sizes["memory"])


#: Fields of a drain where the worst round speaks for the cell: one duplicate in any
#: round is a duplicate.
WORST_OF_ROUNDS = ("duplicates", "missing", "dead_workers", "left", "connections_per_worker_max")


def combine_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from its rounds: the round of median rate, with every round's rate (in
    the order they ran) and the worst of ``WORST_OF_ROUNDS``; an error if all failed."""
    measured = sorted((r for r in results if "error" not in r), key=lambda r: r["rate"] or 0)
    if not measured:
        return results[0]
    combined = {**measured[(len(measured) - 1) // 2]}
    combined["rounds"] = [r.get("rate") for r in results]
    for key in WORST_OF_ROUNDS:
        values = [r[key] for r in measured if r.get(key) is not None]
        if values:
            combined[key] = max(values)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        combined["round_errors"] = errors
    return combined


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    # BENCH_SOURCE names the code when it runs from an exported tree (git archive).
    commit = (
        os.environ.get("BENCH_SOURCE")
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "taskq"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    import django

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "commit": commit,
        "taskq_changed_since_commit": bool(dirty),
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run = Run(args)
    path = args.json
    for vendor in args.databases:
        try:
            run.database(vendor)
        except Exception as error:
            run.data["databases"].setdefault(vendor, {"version": "?", "results": {}})
            run.data["databases"][vendor]["error"] = str(error)
            print(f"[{vendor}] failed: {error}", file=sys.stderr)
        path = report.write_json(run.data, path)
    print()
    for vendor, entry in run.data["databases"].items():
        print(report.table(vendor, entry["version"], entry["results"]))
        if "error" in entry:
            print(f"  {vendor} stopped: {entry['error']}")
        print()
    print(f"mode {run.data['mode']}; JSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
