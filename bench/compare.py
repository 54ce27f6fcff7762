"""Compare the worker's cost per task between git revisions: ``python -m bench.compare
REV [REV …] [--database postgresql] [--tasks 5000] [--rounds 3] [--task bench.record]``.

Each revision is checked out in a worktree of its own (under the system's temporary
directory) with a database of its own (their schemas differ), and drained by one
``--burst`` worker in one process, without a profiler, in rounds that alternate between
the revisions, so that a change of the machine's speed during the run reaches all of
them alike. It prints, per revision, the tasks per second and the process's CPU time
per task (user and system, the heartbeat thread included) of every round, and their
medians; the CPU time varies far less than the rate on a shared machine.

The drain in each worktree is run by ``RUNNER`` below, not by that revision's own
code, so a revision older than this file can be measured too: it needs only
``bench.databases.create``, ``bench.target.Taskq`` and ``taskq.worker.Worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Runs in a revision's worktree: migrate, then drain ``tasks`` tasks once; prints JSON.
RUNNER = """
import json, os, resource, sys, tempfile, time
sys.path.insert(0, os.getcwd())
from bench import databases
databases.create(os.environ["BENCH_DATABASE"], databases.TASKQ_NAME)
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from bench.target import Taskq
from taskq.worker import Worker
target = Taskq()
target.task_name = sys.argv[1]
target.clear()
target.insert(range(int(sys.argv[2])))
worker = Worker(["default"], burst=True)
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
worker.run(handle_signals=False)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(json.dumps({"rate": worker.processed / seconds, "cpu_us": cpu * 1e6 / worker.processed}))
"""


def worktree(revision: str) -> tuple[str, Path]:
    """Return ``revision``'s commit and a worktree checked out at it (made once)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"taskq-compare-{commit[:12]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), commit],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    return commit, path


def drain(path: Path, commit: str, database: str, task: str, tasks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="taskq-compare-records-") as records:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_DATABASE": database,
            "BENCH_DB_NAME": f"taskq_compare_{commit[:12]}",
            "BENCH_SQLITE_DIR": str(
                Path(tempfile.gettempdir()) / f"taskq-compare-{commit[:12]}-db"
            ),
            "BENCH_RECORD_DIR": records,
        }
        completed = subprocess.run(
            [sys.executable, "-c", RUNNER, task, str(tasks)],
            cwd=path,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--database", default="postgresql")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task", default="bench.record", help="bench.record or bench.write")
    args = parser.parse_args(argv)
    trees = [(revision, *worktree(revision)) for revision in args.revisions]
    results: dict[str, list[dict[str, float]]] = {revision: [] for revision in args.revisions}
    for _ in range(args.rounds):
        for revision, commit, path in trees:
            results[revision].append(drain(path, commit, args.database, args.task, args.tasks))
    print(f"{args.database}, {args.task}, {args.tasks} tasks, 1 worker in-process, per round:")
    for revision, commit, _ in trees:
        rounds = results[revision]
        rates = " ".join(f"{r['rate']:6.0f}/s" for r in rounds)
        cpus = " ".join(f"{r['cpu_us']:4.0f}" for r in rounds)
        rate = statistics.median(r["rate"] for r in rounds)
        cpu = statistics.median(r["cpu_us"] for r in rounds)
        print(
            f"  {revision:>12} ({commit[:9]}): {rates}  median {rate:6.0f}/s;"
            f" CPU µs/task {cpus}  median {cpu:4.0f}"
        )
    print(json.dumps({"database": args.database, "task": args.task, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
