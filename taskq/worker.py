"""The worker: one process, one task at a time, coordinated only by the database.

A worker registers a row in the worker table and beats its heartbeat from a background
thread with its own connection; then it asks its claim strategy for the next due task,
runs it and records the outcome with a write fenced by the claim's version. It never
prefetches, and a task it cannot finish recording stays started, so it shows as dirty
instead of vanishing.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
    reset_queries,
)

from taskq import registry, serialization, signals
from taskq.alarm import Alarm
from taskq.backends import Claim, ClaimStrategy, get_strategy, task_database
from taskq.clock import database_now
from taskq.conf import settings
from taskq.context import Request, Retry, running
from taskq.heartbeat import Heartbeat, Outcomes
from taskq.models import Task as TaskRow
from taskq.models import Worker as WorkerRow
from taskq.recovery import requeue_dirty_acks_late

logger = logging.getLogger("taskq.worker")

#: Errors that mean "the database is unreachable right now", worth waiting out.
CONNECTION_ERRORS = (OperationalError, InterfaceError)
#: Added to a sleep until an ETA, so that the claim after it finds the task due.
ETA_MARGIN = 0.002
#: Silence after which a dead worker's row is deleted (if no dirty task refers to it).
FORGET_WORKERS_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Success:
    """A task that returned, whose row is still to be deleted."""

    claim: Claim
    task: Any
    fields: dict[str, Any]


class Worker:
    """Claim and run due tasks of ``queues`` until told to stop."""

    def __init__(
        self,
        queues: Sequence[str],
        *,
        burst: bool = False,
        max_tasks: int | None = None,
        using: str | None = None,
    ) -> None:
        registry.autodiscover()
        self.using = using or task_database()
        self.queues = list(queues)
        self.burst = burst
        self.max_tasks = max_tasks
        self.ident = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.strategy: ClaimStrategy
        self.heartbeat: Heartbeat
        self.row: WorkerRow | None = None
        self.stopping = False
        #: Rung by a stop signal; every wait of the worker's main thread listens to it.
        self.wake = Alarm()
        self.processed = 0
        self.claim_unanswered = False
        #: When the database first answered while the heartbeat was failing.
        self.answered_since: float | None = None
        self.succeeded: Success | None = None
        self.next_recovery = 0.0
        self.outcomes = Outcomes()
        self.reconnect_delay = 0.0

    # Life cycle -----------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> int:
        """Work until stopped, ``--burst`` finds nothing due or ``max_tasks`` ran.

        ``handle_signals=False`` leaves SIGTERM and SIGINT alone, for running a worker
        inside another program (a test, a notebook).
        """
        if handle_signals:
            self.install_signal_handlers()
        strategy = self.connect()
        if strategy is None:
            return 0
        self.strategy = strategy
        self.row = self.register()
        if self.row is None:
            return 0
        self.heartbeat = Heartbeat(
            self.using, self.row.pk, settings.HEARTBEAT_INTERVAL, self.outcomes
        )
        self.heartbeat.start()
        logger.info(
            "Worker %s started: queues %s, claim strategy %s",
            self.ident,
            ",".join(self.queues),
            type(self.strategy).__name__,
        )
        try:
            exit_code = self.loop()
            self.record_success()
        finally:
            self.heartbeat.stop()
            self.unregister()
            self.wake.close()
        logger.info("Worker %s stopped after %d tasks", self.ident, self.processed)
        return exit_code

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            logger.warning("Second signal %s: exiting now; a running task stays dirty", signum)
            os._exit(128 + signum)
        logger.info("Signal %s: finishing the current task, then exiting", signum)
        self.stopping = True
        self.wake.ring()

    def connect(self) -> ClaimStrategy | None:
        """Return the claim strategy, waiting for the database if it is down.

        A strategy the database cannot run raises ``ImproperlyConfigured`` here, before
        any task is touched.
        """
        while not self.stopping:
            try:
                return get_strategy(self.using)
            except CONNECTION_ERRORS as error:
                self.wait_for_database(error)
        return None

    def register(self) -> WorkerRow | None:
        """Write this process's worker row, waiting for the database if it is down."""
        while not self.stopping:
            try:
                self.forget_dead_workers()
                row = WorkerRow.objects.using(self.using).create(
                    ident=self.ident,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    queues=",".join(self.queues),
                    started_at=database_now(),
                    heartbeat=database_now(),
                )
                row.refresh_from_db(fields=["started_at", "heartbeat"])
                return row
            except CONNECTION_ERRORS as error:
                self.wait_for_database(error)
        return None

    def forget_dead_workers(self) -> None:
        """Delete rows of workers that died long ago, unless a dirty task names them.

        A killed worker cannot remove its own row; without this the table only grows.
        """
        WorkerRow.objects.using(self.using).filter(
            heartbeat__lt=database_now(-FORGET_WORKERS_AFTER.total_seconds())
        ).exclude(tasks__state=TaskRow.State.STARTED).delete()

    def unregister(self) -> None:
        try:
            WorkerRow.objects.using(self.using).filter(pk=self.row.pk).delete()  # type: ignore[union-attr]
        except DatabaseError as error:
            logger.warning("Could not remove worker row %s: %s", self.ident, error)

    def wait_for_database(self, error: Exception, *, interruptible: bool = True) -> None:
        """Log, drop the broken connection and back off (exponentially, with jitter).

        A stop signal cuts the wait short, except while a finished task's outcome is
        still to be recorded (``interruptible=False``).
        """
        self.reconnect_delay = min(settings.RECONNECT_MAX_DELAY, max(0.5, self.reconnect_delay * 2))
        delay = random.uniform(self.reconnect_delay / 2, self.reconnect_delay)
        logger.warning(
            "Database %r unavailable (%s); retrying in %.1fs",
            self.using,
            str(error).strip() or type(error).__name__,
            delay,
        )
        try:
            connections[self.using].close()
        except DatabaseError:
            pass
        if interruptible:
            self.wake.wait(delay)
        else:
            time.sleep(delay)

    # The loop -------------------------------------------------------------------------

    def loop(self) -> int:
        """Claim and run tasks; return the process's exit code."""
        assert self.row is not None
        while not self.stopping:
            if self.max_tasks is not None and self.processed >= self.max_tasks:
                return 0
            if not (self.heartbeat.healthy and self.heartbeat.is_alive()):
                # Tasks run now would look dead to everyone else: claim nothing. If the
                # database is down, wait for it; if it answers but takes no heartbeat,
                # this worker is useless: say so and exit.
                silent = self.heartbeat.silent_for()
                if silent > settings.DIRTY_AFTER and self.database_answers():
                    # Give the heartbeat two beats to recover once the database is back.
                    self.answered_since = self.answered_since or time.monotonic()
                    if time.monotonic() - self.answered_since > 2 * settings.HEARTBEAT_INTERVAL:
                        logger.error(
                            "No heartbeat written for %.1fs while the database answers; exiting",
                            silent,
                        )
                        return 1
                else:
                    self.answered_since = None
                self.wake.wait(settings.HEARTBEAT_INTERVAL)
                continue
            self.answered_since = None
            close_old_connections()
            reset_queries()  # DEBUG=True must not grow the worker's memory
            try:
                if time.monotonic() >= self.next_recovery:
                    self.next_recovery = time.monotonic() + settings.DIRTY_AFTER / 2
                    requeue_dirty_acks_late(self.using)
                if self.claim_unanswered:
                    self.release_unstarted_claims()
                if self.succeeded is not None:
                    claim = self.record_success_and_claim()
                else:
                    claim = self.strategy.claim(self.queues, self.row.pk)
            except CONNECTION_ERRORS as error:
                # The claim may have committed before the connection died.
                self.claim_unanswered = True
                self.wait_for_database(error)
                continue
            self.reconnect_delay = 0.0
            if claim is None:
                # A claim can come back empty because it lost races (optimistic) or met
                # a locked SQLite file; --burst exits only when nothing is due at all.
                if self.burst and not self.anything_due():
                    return 0
                self.idle()
                continue
            self.process(claim)
            self.processed += 1
        return 0

    def idle(self) -> None:
        """Wait for work: a poll interval (with jitter), or until the next ETA if that
        comes sooner, or until the database announces a task."""
        timeout = settings.POLL_INTERVAL * random.uniform(0.5, 1.5)
        try:
            soon = self.strategy.next_due_in(self.queues, timeout)
            if soon is not None:
                timeout = soon + ETA_MARGIN
            self.strategy.wait_for_work(self.queues, timeout, self.wake)
        except CONNECTION_ERRORS as error:
            self.wait_for_database(error)

    def database_answers(self) -> bool:
        """Return whether the database answers a trivial query on this connection."""
        try:
            with connections[self.using].cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except CONNECTION_ERRORS:
            connections[self.using].close()
            return False

    def record_success_and_claim(self) -> Claim | None:
        """Delete the task that just succeeded and claim the next one, together."""
        assert self.row is not None and self.succeeded is not None
        done = self.succeeded
        completed, claim = self.strategy.complete_and_claim(done.claim, self.queues, self.row.pk)
        self.succeeded = None
        self.after_success(done, completed)
        return claim

    def record_success(self) -> None:
        """Delete the task that just succeeded, when no next claim follows (exit)."""
        if self.succeeded is not None:
            done, self.succeeded = self.succeeded, None
            self.finish(self.strategy.complete, done.claim)
            signals.send(signals.task_succeeded, done.task, **done.fields)

    def after_success(self, done: Success, completed: bool) -> None:
        if not completed:
            self.warn_lost_claim(done.claim)
        signals.send(signals.task_succeeded, done.task, **done.fields)

    def release_unstarted_claims(self) -> None:
        """Queue again the rows this worker claimed without hearing the answer.

        When the connection dies between a claim's commit and its reply, the row is
        started in this worker's name but the task never ran: this worker runs one task
        at a time and is between tasks now, so putting it back is safe.
        """
        assert self.row is not None
        unrecorded = [self.succeeded.claim.id] if self.succeeded else []
        released = (
            TaskRow.objects.using(self.using)
            .filter(state=TaskRow.State.STARTED, worker_id=self.row.pk)
            .exclude(pk__in=unrecorded)
            .requeue()
        )
        self.claim_unanswered = False
        if released:
            logger.warning("Queued again %d task(s) claimed before the connection died", released)

    def anything_due(self) -> bool:
        try:
            return TaskRow.objects.using(self.using).due(self.queues).exists()
        except CONNECTION_ERRORS:
            return True  # not known; the loop will wait for the database

    def process(self, claim: Claim) -> None:
        """Run one claimed task and record its outcome."""
        fields: dict[str, Any] = {
            "task_id": claim.id,
            "task_name": claim.name,
            "queue": claim.queue,
            "attempt": claim.retries + 1,
        }
        label = f"{claim.name}[{claim.id}]"
        if claim.expired:
            logger.info("Task %s expired; dropped", label, extra=fields)
            self.finish(self.strategy.complete, claim)
            return
        try:
            task = registry.get(claim.name)
            args = serialization.loads(claim.args)
            kwargs = serialization.loads(claim.kwargs)
        except registry.UnregisteredTask as unregistered:
            self.reject(claim, str(unregistered), fields, unregistered, None)
            return
        except ValueError as undecodable:
            reason = f"cannot decode the arguments of {label}: {undecodable!r}"
            self.reject(claim, reason, fields, undecodable, task)
            return

        logger.info("Task %s started", label, extra=fields)
        signals.send(signals.task_started, task, **fields)
        started = time.monotonic()
        try:
            request = Request.from_claim(claim, task, worker=self.ident)
            with running(request):
                task.execute(args, kwargs)
        except Retry as retry:
            fields["duration"] = time.monotonic() - started
            logger.info(
                "Task %s will retry %s (ran %.3fs)",
                label,
                retry.schedule,
                fields["duration"],
                extra=fields,
            )
            error = format_error(retry.exc) if retry.exc else "retry requested"
            eta = retry.eta if retry.eta is not None else database_now(retry.countdown or 0)
            self.finish(self.strategy.retry, claim, eta, error)
            signals.send(signals.task_retried, task, **fields, exception=retry.exc, eta=retry.when)
        except BaseException as exc:  # a task's SystemExit must not end the worker
            fields["duration"] = time.monotonic() - started
            logger.error(
                "Task %s failed in %.3fs: %r", label, fields["duration"], exc, extra=fields
            )
            self.outcomes.failed += 1
            error = format_error(exc)
            self.finish(self.strategy.fail, claim, error)
            signals.send(signals.task_failed, task, **fields, exception=exc, traceback=error)
        else:
            fields["duration"] = time.monotonic() - started
            logger.info("Task %s succeeded in %.3fs", label, fields["duration"], extra=fields)
            self.outcomes.succeeded += 1
            # Recorded with the next claim, in one round trip where the database allows.
            self.succeeded = Success(claim, task, fields)

    def reject(
        self,
        claim: Claim,
        reason: str,
        fields: dict[str, Any],
        exception: Exception,
        task: registry.RegisteredTask | None,
    ) -> None:
        """Fail a task that cannot even start, saying why; nothing of it was run."""
        fields = {**fields, "duration": 0.0}
        logger.error("Task %s[%s] failed: %s", claim.name, claim.id, reason, extra=fields)
        self.outcomes.failed += 1
        self.finish(self.strategy.fail, claim, reason)
        signals.send(signals.task_failed, task, **fields, exception=exception, traceback=reason)

    def warn_lost_claim(self, claim: Claim) -> None:
        logger.warning(
            "Task %s[%s] was re-queued or deleted while it ran; this worker lost its claim "
            "and leaves the row alone",
            claim.name,
            claim.id,
        )

    def finish(self, write: Callable[..., bool], claim: Claim, *args: Any) -> None:
        """Record an outcome, waiting for the database as long as it takes.

        Every write is fenced by the claim's version, so repeating one is safe. The
        worker claims nothing else meanwhile: a task whose outcome is not recorded yet
        must never be mistaken for a claim that was lost. A second signal still exits
        at once, leaving the task dirty.
        """
        while True:
            try:
                if not write(claim, *args):
                    self.warn_lost_claim(claim)
                return
            except CONNECTION_ERRORS as error:
                self.wait_for_database(error, interruptible=False)


def format_error(error: BaseException) -> str:
    """Return the full traceback of ``error``, as ``traceback`` prints it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
