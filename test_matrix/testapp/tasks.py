"""Tasks the tests enqueue and worker processes run."""

import ctypes
import logging
import os
import signal
import threading

import django

from taskq.celery import SoftTimeLimitExceeded, shared_task


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


# Tasks that misbehave towards the worker (tests/test_worker_survives.py) --------------

_connections_seen = []


@shared_task
def record_connection(key):
    """Record which driver connection the task ran on (kept alive, so ids stay unique)."""
    from django.db import connection

    connection.ensure_connection()
    _connections_seen.append(connection.connection)
    _record(f"{key} {len({id(c) for c in _connections_seen})}")


@shared_task
def leave_autocommit_off_and_raise(key):
    from django.db import transaction

    transaction.set_autocommit(False)
    record.delay(f"inner {key}")
    raise ValueError("after turning autocommit off")


@shared_task
def leave_atomic_open(key):
    from django.db import transaction

    transaction.atomic().__enter__()
    record.delay(f"inner {key}")


@shared_task
def fork_and_return(key):
    child = os.fork()
    _record(f"{key} {'child' if child == 0 else 'parent'} {os.getpid()}")


@shared_task
def record_pid(key):
    _record(f"{key} {os.getpid()}")


@shared_task
def replace_stop_handlers():
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# Time limits and cancellation (tests/test_timelimits.py, tests/test_cancel.py).


@shared_task(time_limit=1)
def limited_sleep(key):
    _record(f"start {key}")
    _pause(60)
    _record(f"end {key}")


@shared_task(time_limit=1)
def limited_busy(key):
    """A pure-Python loop that swallows every Exception: only the hard limit stops it."""
    _record(f"start {key}")
    spins = 0
    while True:
        try:
            spins += 1
        except Exception:
            pass


@shared_task(soft_time_limit=0.5, time_limit=5)
def soft_cleanup(key):
    _record(f"start {key}")
    try:
        _pause(60)
    except SoftTimeLimitExceeded:
        _record(f"cleanup {key}")


@shared_task(
    soft_time_limit=0.5,
    autoretry_for=(SoftTimeLimitExceeded,),
    max_retries=1,
    retry_kwargs={"countdown": 0},
)
def soft_autoretry(key):
    _record(f"start {key}")
    _pause(60)


@shared_task(time_limit=0.5)
def uninterruptible(key):
    """A C call that never returns to the interpreter: SIGALRM blocked, libc's sleep()."""
    _record(f"start {key}")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    ctypes.CDLL(None).sleep(30)
    _record(f"end {key}")


@shared_task
def busy(key):
    _record(f"start {key}")
    while True:
        pass


# Celery-style task definitions (issue 11); importing them registers them with taskq.
from test_matrix.testapp import celery_styles  # noqa: F401, E402


@shared_task
def record_call(*args, **kwargs):
    """Record that this row ran, whatever its arguments: ``ran <task id>``."""
    from taskq.celery import current_request

    _record(f"ran {current_request().id}")


# Flow control (tests/test_flow.py).


@shared_task
def flow_step(key, seconds=0):
    """Record the start of its claim (the row's ``started_at``) and, before it returns,
    the time then, both by the database's clock: what pauses and limits are judged by."""
    from taskq.clock import DatabaseNow
    from taskq.context import current_request
    from taskq.models import Task

    row = Task.objects.filter(pk=current_request().id)
    started = row.values_list("started_at", flat=True).get()
    _record(f"start {key} {started.isoformat()}")
    _pause(seconds)
    ended = row.annotate(now=DatabaseNow()).values_list("now", flat=True).get()
    _record(f"end {key} {ended.isoformat()}")


# The worker's log (tests/test_worker_log.py).

_task_logger = logging.getLogger("test_matrix.testapp.tasks")


@shared_task(autoretry_for=(ValueError,), max_retries=1, retry_kwargs={"countdown": 0})
def flaky(message="flaky"):
    """Fails every time: its first run retries, its second fails for good."""
    _task_logger.info("flaky says %s", message)
    raise ValueError(message)


@shared_task
def says(message):
    _task_logger.info("the task says %s", message)


@shared_task(max_retries=None, autoretry_for=(KeyError,), retry_kwargs={"countdown": 0})
def retries_forever_then_fails():
    raise ValueError("no retry for this one")


# Unique tasks (tests/test_unique.py).


@shared_task(unique=True)
def unique_record(key, *, extra=None):
    _record(f"unique {key}")


@shared_task(autoretry_for=(ValueError,), retry_kwargs={"countdown": 3600, "max_retries": 3})
def fail_and_retry_later(key):
    _record(f"attempt {key}")
    raise ValueError(key)


# Schedules (tests/test_schedules.py).


@shared_task
def record_slot(label="slot"):
    """Record the slot this run is for (its row's eta), how late it was queued, and the
    task's id (a slot queued twice would have two)."""
    from taskq.context import current_request
    from taskq.models import Task

    task = Task.objects.get(pk=current_request().id)
    late = (task.created_at - task.eta).total_seconds()
    _record(f"{label} {task.eta.isoformat()} {late} {task.pk}")


@shared_task(bind=True, max_retries=1)
def retry_once(self, key):
    """Ask for one retry, then succeed."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    _record(str(key))
