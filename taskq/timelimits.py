"""Time limits and cancellation: interrupt a task's body, never the worker's bookkeeping.

The worker runs tasks in its main thread, and Python runs signal handlers there, so a
``SIGALRM`` (from ``setitimer`` at a limit, or sent by the heartbeat thread when someone
asked to cancel the task) raises inside the body: ``SoftTimeLimitExceeded`` at the soft
limit, which the task may catch, and at the hard limit or on a cancel an ``Interrupted``,
a ``BaseException`` so that a task's ``except Exception:`` cannot swallow it. The handler
raises only while the body runs (``CurrentRun.in_body``); the timer is disarmed as the
body ends, whatever happened, so claiming and recording are never interrupted.

Python cannot interrupt a C call that does not return to the interpreter. The heartbeat
thread is the backstop: it shares the ``CurrentRun``, and when a body still runs a grace
period after its hard limit (or after a cancel), it records the outcome itself, fenced
by the claim's version, on its own connection, and ends the process with
``EXIT_STUCK_TASK`` so that the supervisor starts a fresh worker.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; CPython has it
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from taskq.backends.base import Claim, ClaimStrategy
from taskq.conf import settings
from taskq.context import SoftTimeLimitExceeded, TimeLimitExceeded
from taskq.models import Task

logger = logging.getLogger("taskq.worker")

#: The exit status of a worker whose task could not be interrupted: start a fresh one.
EXIT_STUCK_TASK = 75
#: Seconds a body may go on after its hard limit or a cancel before the heartbeat gives
#: up on interrupting it and ends the process.
TAKEOVER_GRACE = 2.0
#: After the hard limit, the interrupt repeats this often (seconds), in case the body
#: caught it with a bare ``except:``.
REPEAT_INTERRUPT = 0.25


def handler_of(signum: int) -> Any:
    """``signal.getsignal`` without its conversion to ``signal.Handlers``, which raises
    and catches a ``ValueError`` for every Python handler; the worker asks after every
    task whether the task replaced its handlers."""
    return _signal.getsignal(signum)


def limits_for(claim: Claim, task: Any) -> tuple[float | None, float | None]:
    """Return the (soft, hard) time limits of this run, in seconds, ``None`` for none.

    The call's own options win (columns of the row, when the claim carries them), then
    the task's ``shared_task`` options, then ``TASKQ_SOFT_TIME_LIMIT`` and
    ``TASKQ_TIME_LIMIT``.
    """

    def first(name: str, default: float | None) -> float | None:
        # float(): SQLite's RETURNING can give a REAL with no fraction as an int.
        for value in (getattr(claim, name), getattr(task, name, None)):
            if value is not None:
                return float(value)
        return default

    return first("soft_time_limit", settings.SOFT_TIME_LIMIT), first(
        "time_limit", settings.TIME_LIMIT
    )


class Interrupted(BaseException):
    """Raised in a body to stop it; a ``BaseException``, so ``except Exception`` lets it by."""


class HardTimeLimit(Interrupted):
    """The run reached its hard time limit."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"hard time limit ({limit:g}s) exceeded")
        self.limit = limit

    def error(self) -> TimeLimitExceeded:
        """Return what the task is failed with, with the traceback of where it stopped."""
        exceeded = TimeLimitExceeded(f"Task exceeded its time limit of {self.limit:g}s")
        return exceeded.with_traceback(self.__traceback__)


class CancelRequested(Interrupted):
    """Someone asked to stop the run (``revoke(terminate=True)``, the admin's Cancel)."""

    def __init__(self, requested_by: str) -> None:
        super().__init__(f"cancelled by {requested_by}")
        self.requested_by = requested_by


class CurrentRun:
    """The body the main thread runs now, shared with the heartbeat thread.

    The main thread writes it as a body starts and ends; the signal handler only reads
    plain attributes (it runs in the main thread, between any two of its bytecodes, so
    it must take no lock); the heartbeat thread reads and writes under ``lock``, and the
    main thread takes ``lock`` as a body ends, so it waits there when the heartbeat has
    taken the task over and is ending the process.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claim: Claim | None = None
        self.in_body = False
        #: Whether this body can be interrupted by a signal (run in the main thread).
        self.interruptible = False
        self.started = 0.0
        self.soft: float | None = None
        self.hard: float | None = None
        self.soft_raised = False
        #: Who asked to cancel the body, and when (``time.monotonic()``) it was noticed.
        self.cancel_by: str | None = None
        self.cancel_noticed = 0.0
        #: Whether the ``SIGALRM`` timer is set (disarmed as the body ends).
        self.armed = False

    # The main thread ----------------------------------------------------------------

    @contextmanager
    def body(self, claim: Claim, soft: float | None, hard: float | None) -> Iterator[None]:
        """Run the block as ``claim``'s body, under the time limits ``soft`` and ``hard``
        (``limits_for``), and open to cancels."""
        interruptible = threading.current_thread() is threading.main_thread()
        with self.lock:
            self.claim = claim
            self.soft, self.hard = soft, hard
            self.soft_raised = False
            self.cancel_by = None
            self.interruptible = interruptible
            self.started = time.monotonic()
        if interruptible:
            self.install()
        try:
            self.in_body = True
            if interruptible:
                self.arm()
            yield
        finally:
            # A signal may land before in_body is cleared: the late interrupt is dropped,
            # the body has ended anyway, and the cleanup must run to its end.
            while True:
                try:
                    self.leave()
                    break
                except (Interrupted, SoftTimeLimitExceeded):
                    continue

    def install(self) -> None:
        """Make ``on_alarm`` the ``SIGALRM`` handler, unless it is already (a task may
        have put its own in place). It stays between bodies, where it drops a late
        signal: the default handler would end the process."""
        if handler_of(signal.SIGALRM) != self.on_alarm:
            signal.signal(signal.SIGALRM, self.on_alarm)

    def leave(self) -> None:
        self.in_body = False
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.armed = False
        with self.lock:
            # From here on the heartbeat sends no signal.
            self.claim = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def arm(self) -> None:
        """Set the timer for the next limit still to come, if any."""
        elapsed = self.elapsed()
        if self.soft is not None and not self.soft_raised and self.soft < (self.hard or 1e300):
            self.set_timer(max(self.soft - elapsed, 1e-3))
        elif self.hard is not None:
            self.set_timer(max(self.hard - elapsed, 1e-3))

    def set_timer(self, seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        self.armed = True

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self.in_body:
            return  # a late signal: the body has ended
        if self.cancel_by is not None:
            raise CancelRequested(self.cancel_by)
        elapsed = self.elapsed()
        if self.hard is not None and elapsed >= self.hard - 1e-3:
            self.set_timer(REPEAT_INTERRUPT)
            raise HardTimeLimit(self.hard)
        if self.soft is not None and not self.soft_raised and elapsed >= self.soft - 1e-3:
            self.soft_raised = True
            self.arm()
            raise SoftTimeLimitExceeded(f"soft time limit ({self.soft:g}s) exceeded")
        self.arm()  # woken early (the clocks differ slightly): wait for the rest

    # The heartbeat thread -----------------------------------------------------------

    def look_for_cancel(self, using: str) -> None:
        """Interrupt the body if its row asks for a cancel; once per heartbeat.

        One primary-key read on the heartbeat's own connection, only while a body runs.
        """
        claim = self.claim
        if claim is None or self.cancel_by is not None:
            return
        requested_by = (
            Task.objects.using(using)
            .filter(pk=claim.id, version=claim.version)
            .values_list("cancel_requested_by", flat=True)
            .first()
        )
        if not requested_by:
            return
        with self.lock:
            if self.claim is not claim or not self.in_body:
                return
            self.cancel_by = requested_by
            self.cancel_noticed = time.monotonic()
            if self.interruptible:
                main = threading.main_thread().ident
                assert main is not None
                signal.pthread_kill(main, signal.SIGALRM)

    def takeover_in(self) -> float | None:
        """Return the seconds until the heartbeat must take the body over, if it runs."""
        if self.claim is None:
            return None
        moments = [self.started + self.hard] if self.hard is not None else []
        if self.cancel_by is not None:
            moments.append(self.cancel_noticed)
        if not moments:
            return None
        return min(moments) + TAKEOVER_GRACE - time.monotonic()

    def take_over_if_stuck(self, using: str) -> None:
        """Record the outcome of a body that ignored its interrupt, then end the process."""
        due = self.takeover_in()
        if due is None or due > 0:
            return
        with self.lock:  # held until the process ends: the body must not record it too
            claim = self.claim
            if claim is None or not self.in_body:
                return
            label = f"{claim.name}[{claim.id}]"
            strategy = ClaimStrategy(using)  # the fenced writes, on this thread's connection
            try:
                if self.cancel_by is not None:
                    logger.error(
                        "Task %s cancelled by %s did not stop; deleted, and the worker exits "
                        "with status %d",
                        label,
                        self.cancel_by,
                        EXIT_STUCK_TASK,
                    )
                    strategy.complete(claim)
                else:
                    assert self.hard is not None
                    error = HardTimeLimit(self.hard).error()
                    logger.error(
                        "Task %s failed: %r; it could not be interrupted, and the worker exits "
                        "with status %d",
                        label,
                        error,
                        EXIT_STUCK_TASK,
                    )
                    strategy.fail(claim, f"{type(error).__name__}: {error} (uninterruptible)\n")
            except Exception as failure:  # the task stays started and turns dirty
                logger.error("Could not record the outcome of task %s: %s", label, failure)
            finally:
                logging.shutdown()
                os._exit(EXIT_STUCK_TASK)
