"""The reference: the original django-taskq 1.0.x, in a virtualenv of its own.

Its API, read from its source: ``django_taskq.celery.shared_task`` (``delay`` writes one
row with ``Task.objects.create``), the model ``django_taskq.models.Task`` (table
``taskq_task``, pickled ``args``/``kwargs``, ``execute_at``) and the worker command
``manage.py taskq [-Q queue]``: a loop of ``Task.next_task()`` (``SELECT … FOR UPDATE
SKIP LOCKED`` ordered by ``execute_at``, then ``save()``), run, ``delete()``; it prints
two lines per task to stdout and sleeps one second whenever nothing is due. It has no
bulk API and no worker table, so a worker is ready once it printed "No new tasks".

The virtualenv ``.bench-venv-original/`` is made on first use. The original's processes
run with ``bench.original_settings`` and their own database, ``taskq_bench_orig``.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bench.target import Target

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".bench-venv-original"
REQUIREMENTS = ["django-taskq==1.0.23", "Django>=5.2,<6", "psycopg[binary]>=3.1", "mysqlclient"]


def python() -> Path:
    """Return the virtualenv's interpreter, creating the virtualenv if it is missing."""
    interpreter = VENV / "bin" / "python"
    if not interpreter.exists():
        print(f"creating {VENV} with {', '.join(REQUIREMENTS)}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
        subprocess.run(
            [str(interpreter), "-m", "pip", "install", "-q", *REQUIREMENTS],
            check=True,
        )
    return interpreter


class Original(Target):
    name = "original"
    task_name = "bench.original_tasks.record"

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "django", "taskq"]

    def ready(self, logs: Sequence[Path]) -> int:
        return sum(1 for log in logs if log.exists() and b"No new tasks" in log.read_bytes())

    def clear(self) -> None:
        from django_taskq.models import Task

        Task.objects.all().delete()

    def insert(self, keys: Sequence[int], eta: datetime | None = None) -> None:
        from django.db import transaction
        from django.utils import timezone
        from django_taskq.models import Task

        execute_at = eta or timezone.now()
        rows = [
            Task(queue="default", func=self.task_name, args=(k,), kwargs={}, execute_at=execute_at)
            for k in keys
        ]
        with transaction.atomic():
            Task.objects.bulk_create(rows, batch_size=1000)

    def delay(self, key: int, eta: datetime | None = None) -> None:
        from bench.original_tasks import record

        if eta is None:
            record.delay(key)
        else:
            record.apply_async((key,), eta=eta)

    def remaining(self) -> int:
        from django_taskq.models import Task

        return Task.objects.count()
