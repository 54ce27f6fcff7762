"""Tasks the tests enqueue and worker processes run."""

import os
import threading

import django

from taskq.celery import shared_task


def _pause(seconds: float) -> None:
    """Sleep; unlike time.sleep, this works under libfaketime's shifted clocks."""
    threading.Event().wait(seconds)


def _record(line: str) -> None:
    """Append a line to the file named by TASKQ_TEST_RECORD (atomic with O_APPEND)."""
    path = os.environ.get("TASKQ_TEST_RECORD")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


@shared_task
def noop():
    pass


@shared_task
def record(key):
    _record(str(key))


@shared_task
def slow(key, seconds):
    _record(f"start {key}")
    _pause(seconds)
    _record(f"end {key}")


@shared_task
def fail(message="boom"):
    raise ValueError(message)


@shared_task
def exit_worker():
    raise SystemExit(3)


@shared_task
def interrupt_worker():
    raise KeyboardInterrupt("raised by the task, not by a signal")


# Django's @task functions, on Django >= 6.0; importing them registers them with taskq.
if django.VERSION >= (6, 0):
    from test_matrix.testapp import django_tasks  # noqa: F401, E402


@shared_task(acks_late=True, max_retries=1)
def slow_idempotent(key, seconds):
    """Safe to run again: queued again automatically if its worker dies."""
    _record(f"start {key}")
    _pause(seconds)
    _record(f"end {key}")


@shared_task
def record_call(*args, **kwargs):
    """Record that this row ran, whatever its arguments: ``ran <task id>``."""
    from taskq.celery import current_request

    _record(f"ran {current_request().id}")
