"""Signals a worker sends around each task it runs, for error trackers and metrics.

Every signal carries the same fields the worker's log lines put in ``extra``:
``task_id``, ``task_name``, ``queue``, ``attempt`` (1 on the first run) and, once the
task has run, ``duration`` in seconds. The sender is the registered task object (the
``@shared_task`` function, or taskq's wrapper around a ``django.tasks.Task``), or
``None`` when the row names no registered task.

They are sent with ``send_robust``: a receiver that raises is logged and ignored, so a
broken error-tracker hook can never stop a worker or change a task's outcome.

- ``task_started``: the task is about to run.
- ``task_succeeded``: it returned; its row is deleted.
- ``task_failed``: it raised (or could not start: unregistered name, undecodable
  arguments); its row is kept as failed. Extra: ``exception``, ``traceback`` (text).
  Sent from inside the ``except`` block, so ``sys.exc_info()`` works in a receiver.
- ``task_retried``: it asked to run again. Extra: ``exception`` (the reason, or
  ``None``), ``eta`` (when it will run again).
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

__all__ = ["send", "task_failed", "task_retried", "task_started", "task_succeeded"]

logger = logging.getLogger("taskq.signals")

task_started = Signal()
task_succeeded = Signal()
task_failed = Signal()
task_retried = Signal()

_NAMES = {
    id(task_started): "task_started",
    id(task_succeeded): "task_succeeded",
    id(task_failed): "task_failed",
    id(task_retried): "task_retried",
}


def send(signal: Signal, sender: Any, **fields: Any) -> None:
    """Send ``signal`` to every receiver; log, never raise, what a receiver raises."""
    if not signal.receivers:  # the common case, on every task: nobody listens
        return
    for receiver, response in signal.send_robust(sender, **fields):
        if isinstance(response, Exception):
            logger.error(
                "Receiver %r of taskq's %s signal raised %r",
                receiver,
                _NAMES.get(id(signal), "a"),
                response,
                exc_info=response,
                extra={key: fields[key] for key in ("task_id", "task_name") if key in fields},
            )
