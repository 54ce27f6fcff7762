"""The benchmark's taskq tasks, each recording its execution (``bench.record``).

``bench.record`` is a no-op; ``bench.write`` does the least work a real task does, one
row written through the ORM on the worker's connection (``bench/models.py``), so the
drain sees what a worker's connection handling costs a task that uses the database.
"""

from bench.models import Written
from bench.record import record as _record
from taskq.celery import shared_task


@shared_task(name="bench.record")
def record(key: int) -> None:
    _record(key)


@shared_task(name="bench.write")
def write(key: int) -> None:
    Written.objects.create(key=key)
    _record(key)
