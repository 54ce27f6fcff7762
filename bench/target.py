"""What the measurements need from a task queue, and taskq's answers.

A measurement (drain, latency, memory, ...) runs inside an agent process that has Django
set up for one queue and one database; it talks to the queue only through a ``Target``:
how to start a worker, how to tell that workers are ready, how to enqueue and how many
tasks are left. ``bench/original.py`` gives the same answers for the original.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction


class Target:
    """One task queue under test, seen from a Django process configured for it."""

    name: str
    #: The task the benchmark enqueues, by the name the queue stores.
    task_name: str

    def worker_argv(self) -> list[str]:
        """Return the command that starts one worker process (idle, not burst)."""
        raise NotImplementedError

    def ready(self, logs: Sequence[Path]) -> int:
        """Return how many started workers are ready to claim tasks."""
        raise NotImplementedError

    def clear(self) -> None:
        """Remove every task (and worker row) left by an earlier measurement."""
        raise NotImplementedError

    def insert(self, keys: Sequence[int], eta: datetime | None = None) -> None:
        """Write one task per key in a single transaction, with the queue's bulk API."""
        raise NotImplementedError

    def delay(self, key: int, eta: datetime | None = None) -> None:
        """Enqueue one task the way application code does, one commit per call."""
        raise NotImplementedError

    def remaining(self) -> int:
        """Return how many tasks are still in the table (queued or running)."""
        raise NotImplementedError


def truncate(table: str) -> None:
    """Empty ``table`` quickly, whatever its size (DELETE is slow on millions of rows)."""
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DELETE FROM {quoted}")
        else:
            cursor.execute(f"TRUNCATE TABLE {quoted}")


class Taskq(Target):
    name = "taskq"
    task_name = "bench.record"
    #: The workers' ``-l``: WARNING writes no line per task; ``taskq_worker``'s default,
    #: INFO, writes two (``drain_1_info`` measures them).
    loglevel = "WARNING"

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "django", "taskq_worker", "-l", self.loglevel]

    def ready(self, logs: Sequence[Path]) -> int:
        from taskq.models import Worker

        return Worker.objects.count()

    def clear(self) -> None:
        from taskq.models import Task, Worker

        truncate(Task._meta.db_table)
        Worker.objects.all().delete()

    def insert(self, keys: Sequence[int], eta: datetime | None = None) -> None:
        from taskq.enqueue import Call, enqueue_many

        calls = [Call(self.task_name, args=(key,), eta=eta) for key in keys]
        with transaction.atomic():
            enqueue_many(calls)

    def delay(self, key: int, eta: datetime | None = None) -> None:
        from bench.tasks import record

        if eta is None:
            record.delay(key)
        else:
            record.apply_async((key,), eta=eta)

    def remaining(self) -> int:
        from taskq.models import Task

        return Task.objects.count()


def current() -> Target:
    """Return the target this process's settings were written for."""
    if settings.BENCH_TARGET == "original":
        from bench.original import Original

        return Original()
    return Taskq()
