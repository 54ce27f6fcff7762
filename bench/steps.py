"""Where a taskq worker's CPU goes per task, step by step, without a profiler.

``python -m bench.steps [--database sqlite] [--tasks 5000] [--task bench.record]`` queues
the tasks, runs one ``--burst`` worker in this process with a thread-CPU timer around
each step of its loop (the claim, with the delete of the task before it; running the
task; the checks after it; recording its outcome; the checks before the next claim),
and prints each step's CPU time per task beside the whole loop's. cProfile
(``bench.profile``) slows every Python call; these timers cost one clock read on each
side of a step, so each figure is close to that step's real cost (the loop's own lines
between the steps make up the rest of the whole).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.profile import queue_tasks

#: (where the step lives, its name there, its label), in the loop's order. ``module`` is
#: ``taskq.worker``, whose loop calls ``run_claimed`` by that name.
STEPS = (
    ("worker", "maintain", "checks before the claim (maintain)"),
    ("flow", "complete_and_claim", "delete the last task and claim (Flow)"),
    ("strategy", "complete_and_claim", "  of which in the claim strategy"),
    ("module", "run_claimed", "run the task (run_claimed)"),
    ("worker", "after_task", "checks after the task (after_task)"),
    ("worker", "record", "record the outcome (record)"),
)


def timed(function: Callable[..., Any], label: str, spent: Counter[str]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.thread_time_ns() - start

    return step


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steps")
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--task", default="bench.record", help="bench.record or bench.write")
    args = parser.parse_args(argv)
    queue_tasks(args.database, args.task, args.tasks)
    from taskq import worker as worker_module
    from taskq.backends import get_strategy, task_database
    from taskq.backends.flow import Flow
    from taskq.worker import Worker

    strategy_class = type(get_strategy(task_database()))  # the class the worker will use
    owners = {"worker": Worker, "flow": Flow, "strategy": strategy_class, "module": worker_module}
    spent: Counter[str] = Counter()
    for owner, name, label in STEPS:
        setattr(owners[owner], name, timed(getattr(owners[owner], name), label, spent))
    worker = Worker(["default"], burst=True)
    start, wall = time.thread_time_ns(), time.perf_counter()
    worker.run(handle_signals=False)
    total, wall = time.thread_time_ns() - start, time.perf_counter() - wall
    done = worker.processed
    print(f"{args.database}, {args.task}: {done} tasks, {done / wall:.0f}/s in one process")
    print(f"  {'the whole loop (main thread)':42s} {total / done / 1e3:7.1f} us CPU a task")
    for _, _, label in STEPS:
        print(f"  {label:42s} {spent[label] / done / 1e3:7.1f} us")


if __name__ == "__main__":
    main(sys.argv[1:])
