"""The benchmark's taskq task: a no-op that records its execution (``bench.record``)."""

from bench.record import record as _record
from taskq.celery import shared_task


@shared_task(name="bench.record")
def record(key: int) -> None:
    _record(key)
