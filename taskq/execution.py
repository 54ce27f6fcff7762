"""Running one claimed task: decode it, run it, and say how it ended.

``run_claimed`` writes nothing to the database itself (the task's own code may): it
returns an ``Outcome``, and recording that outcome is the worker's next, separate step.
Every way a task can end is one outcome class, so the worker's recording is one
``match`` and a new ending (a time limit, a cancellation) is one more class.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from taskq import registry, serialization, signals
from taskq.backends import Claim
from taskq.context import PendingRequest, Retry, running
from taskq.timelimits import CancelRequested, CurrentRun, HardTimeLimit, limits_for

logger = logging.getLogger("taskq.worker")


@dataclass(frozen=True)
class Outcome:
    """How a claimed task ended; ``fields`` go to its log lines and signals."""

    claim: Claim
    task: registry.RegisteredTask | None
    fields: dict[str, Any] = field(compare=False)

    @property
    def label(self) -> str:
        return f"{self.claim.name}[{self.claim.id}]"


@dataclass(frozen=True)
class Succeeded(Outcome):
    """The task returned: delete its row."""


@dataclass(frozen=True)
class Expired(Outcome):
    """Its expiry had passed when it was claimed: delete it, it did not run."""


@dataclass(frozen=True)
class Retried(Outcome):
    """The task asked to run again (``retry()`` or ``autoretry_for``)."""

    retry: Retry
    #: What the row's ``error`` column keeps: the reason's traceback.
    error: str


@dataclass(frozen=True)
class Failed(Outcome):
    """The task raised: keep the row as failed, with the traceback."""

    exception: BaseException
    error: str


@dataclass(frozen=True)
class Cancelled(Outcome):
    """Someone asked to stop the running task, and it was interrupted: delete its row."""

    requested_by: str


@dataclass(frozen=True)
class Rejected(Outcome):
    """The task could not even start (unregistered name, undecodable arguments)."""

    exception: Exception
    error: str


def run_claimed(claim: Claim, worker: str, current: CurrentRun | None = None) -> Outcome:
    """Run ``claim``'s task once in this process, for worker ``worker``; return how it
    ended. A task's ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``) is its
    failure, never the worker's end.

    With ``current``, the body runs under its time limits and can be cancelled: the
    interrupts reach the body only, never the logging and signals around it."""
    fields: dict[str, Any] = {
        "task_id": claim.id,
        "task_name": claim.name,
        "queue": claim.queue,
        "attempt": claim.retries + 1,
    }
    if claim.expired:
        return Expired(claim, None, fields)
    try:
        task = registry.get(claim.name)
    except registry.UnregisteredTask as unregistered:
        return Rejected(claim, None, {**fields, "duration": 0.0}, unregistered, str(unregistered))
    try:
        args, kwargs = serialization.loads_call(claim.args, claim.kwargs)
    except serialization.DecodeError as undecodable:
        reason = f"cannot decode the arguments of {claim.name}[{claim.id}]: {undecodable!r}"
        return Rejected(claim, task, {**fields, "duration": 0.0}, undecodable, reason)

    logger.info("Task %s[%s] started", claim.name, claim.id, extra=fields)
    signals.send(signals.task_started, task, **fields)
    started = time.monotonic()
    try:
        soft, hard = limits_for(claim, task)
        request = PendingRequest(claim, worker, hard, soft)
        if claim.headers is not None:
            request.request()  # undecodable headers fail the run here, before the body
        with running(request):
            with current.body(claim, soft, hard) if current else nullcontext():
                task.execute(args, kwargs)
    except HardTimeLimit as hit:
        fields["duration"] = time.monotonic() - started
        exceeded = hit.error()
        return Failed(claim, task, fields, exceeded, format_error(exceeded))
    except CancelRequested as cancel:
        fields["duration"] = time.monotonic() - started
        return Cancelled(claim, task, fields, cancel.requested_by)
    except Retry as retry:
        fields["duration"] = time.monotonic() - started
        error = format_error(retry.exc) if retry.exc else "retry requested"
        return Retried(claim, task, fields, retry, error)
    except BaseException as exc:
        fields["duration"] = time.monotonic() - started
        return Failed(claim, task, fields, exc, format_error(exc))
    fields["duration"] = time.monotonic() - started
    return Succeeded(claim, task, fields)


def format_error(error: BaseException) -> str:
    """Return the full traceback of ``error``, as ``traceback`` prints it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def while_handling(exception: BaseException, action: Callable[[], None]) -> None:
    """Call ``action`` with ``exception`` as the one being handled (``sys.exc_info()``).

    Signal receivers of a failure may log it with ``logger.exception()``, as they could
    when the worker sent the signal from its ``except`` clause.
    """
    traceback_before = exception.__traceback__
    try:
        raise exception
    except BaseException:
        action()
    finally:
        exception.__traceback__ = traceback_before
