"""Where a taskq worker spends its time per task: statements, commits and a profile.

``python -m bench.profile [--database postgresql] [--tasks 5000] [--top 25] [--task
bench.write]`` inserts no-op tasks (or, with ``--task bench.write``, tasks that write
one row through Django's cursor), runs one ``--burst`` worker in this process under
cProfile and prints, per task: the statements it sent (counted by an ``execute_wrapper``
on its connection), the commits the server saw (``pg_stat_database`` on PostgreSQL, the
session's ``Com_*`` counters on MariaDB) and the functions that took the time. cProfile
slows Python code more than waiting on the database, so read the shares, not the
absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

#: Tasks run with the statement counter before the profiled run.
COUNTED_TASKS = 200


def server_counters(connection: Any) -> dict[str, int]:
    """Return the server's transaction counters for this connection or database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
            commits, rollbacks = cursor.fetchone()
            return {"commits": commits, "rollbacks": rollbacks}
        if connection.vendor == "mysql":
            cursor.execute("SHOW SESSION STATUS LIKE 'Com\\_%'")
            wanted = ("Com_commit", "Com_begin", "Com_set_option", "Com_rollback", "Questions")
            return {name: int(value) for name, value in cursor.fetchall() if name in wanted}
    return {}


def queue_tasks(database: str, task: str, count: int) -> None:
    """Set up Django on ``database`` in this process, migrated, and queue ``count`` tasks
    ``task`` (``bench.record`` or ``bench.write``) in an empty table."""
    os.environ["BENCH_DATABASE"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ["BENCH_RECORD_DIR"] = tempfile.mkdtemp(prefix="taskq-bench-records-")
    from bench import databases

    databases.create(database, databases.TASKQ_NAME)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from bench.target import Taskq

    target = Taskq()
    target.task_name = task
    target.clear()
    if task == "bench.write":
        from bench.models import Written
        from bench.target import truncate

        truncate(Written._meta.db_table)
    target.insert(range(count))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--database", default="postgresql")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", default=None, help="write the pstats file here")
    parser.add_argument("--task", default="bench.record", help="bench.record or bench.write")
    args = parser.parse_args(argv)
    queue_tasks(args.database, args.task, args.tasks + COUNTED_TASKS)
    from django.db import connection

    from taskq.worker import Worker

    statements: Counter[str] = Counter()

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        statements[sql.split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    # The statements are counted over the first tasks alone: with an execute wrapper
    # installed the worker sends its claims through Django's cursor, the slower path.
    counted = Worker(["default"], max_tasks=COUNTED_TASKS)
    with connection.execute_wrapper(count):
        counted.run(handle_signals=False)
    worker = Worker(["default"], burst=True)
    before = server_counters(connection)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(worker.run, handle_signals=False)
    seconds = time.perf_counter() - start
    after = server_counters(connection)
    done = worker.processed
    print(
        f"{args.database}: {done} tasks in {seconds:.2f}s under cProfile ({done / seconds:.0f}/s)"
    )
    print(
        f"statements per task (first {counted.processed} tasks):",
        {k: round(v / counted.processed, 2) for k, v in statements.items()},
    )
    print("server counters per task:", {k: round((after[k] - before[k]) / done, 2) for k in after})
    if args.dump:
        profiler.dump_stats(args.dump)
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main(sys.argv[1:])
