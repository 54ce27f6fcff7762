"""The same no-op task for the original django-taskq (imported by its worker by path)."""

from django_taskq.celery import shared_task

from bench.record import record as _record


@shared_task
def record(key: int) -> None:
    _record(key)
