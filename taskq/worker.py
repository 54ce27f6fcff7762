"""The worker: one process, one task at a time, coordinated only by the database.

A worker registers a row in the worker table and beats its heartbeat from a background
thread with its own connection; then it asks its claim strategy for the next due task,
runs it (``taskq.execution``) and records the outcome with a write fenced by the
claim's version. It never prefetches, and a task it cannot finish recording stays
started, so it shows as dirty instead of vanishing.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from types import FrameType
from typing import Any, NoReturn

from django.db import DatabaseError, connections

import taskq
from taskq import hygiene, logs, models, registry, signals, vacuum
from taskq.alarm import Alarm
from taskq.backends import Claim, ClaimStrategy, get_strategy, task_database
from taskq.backends.errors import ErrorKind, diagnose
from taskq.backends.flow import Flow
from taskq.bounds import short_repr
from taskq.clock import database_now
from taskq.conf import settings
from taskq.execution import (
    Cancelled,
    Expired,
    Failed,
    Outcome,
    Rejected,
    Retried,
    Succeeded,
    format_error,
    run_claimed,
    while_handling,
)
from taskq.heartbeat import Gate, Heartbeat, HeartbeatGate, Outcomes
from taskq.reconnect import CONNECTION_ERRORS, Backoff
from taskq.recovery import requeue_dirty_acks_late
from taskq.schedules import Scheduler
from taskq.timelimits import CurrentRun, handler_of

__all__ = ["CONNECTION_ERRORS", "EXIT_DATABASE_REFUSED", "Worker", "format_error"]

logger = logging.getLogger("taskq.worker")

#: The exit status of a worker whose database answered and refused it (no table, a
#: read-only file…): waiting would never end, so it says why and exits.
EXIT_DATABASE_REFUSED = 3
#: Longest pause, in seconds, before retrying a statement that met a busy database.
BUSY_PAUSE = 0.05
#: Added to a sleep until an ETA, so that the claim after it finds the task due.
ETA_MARGIN = 0.002
#: Silence after which a dead worker's row is deleted (if no dirty task refers to it).
FORGET_WORKERS_AFTER = timedelta(hours=1)


class DatabaseRefused(Exception):
    """The database answered and refused what the worker needs: it cannot go on."""


class TransactionLeftOpen(Exception):
    """A task returned inside a transaction; the worker rolled it back."""


class Nothing(enum.Enum):
    """Why a claim brought no task."""

    #: Nothing due, or a claim that lost its races: idle, then claim again.
    DUE = "nothing due"
    #: The database did not answer; the worker waited for it and claims again.
    ANSWERED = "no answer"


class Every:
    """A chore the worker does at most once per ``interval()`` seconds."""

    def __init__(self, interval: Callable[[], float]) -> None:
        self.interval = interval
        self.next_at = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next_at:
            return False
        self.next_at = now + self.interval()
        return True


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
        #: The worker's process: a child forked by a task is not the worker.
        self.pid = os.getpid()
        self.ident = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(4)}"
        self.handles_signals = False
        self.strategy: ClaimStrategy
        self.flow: Flow
        self.heartbeat: Heartbeat
        self.gate: HeartbeatGate
        self.row: models.Worker | None = None
        self.stopping = False
        #: Rung by a stop signal; every wait of the worker's main thread listens to it.
        self.wake = Alarm()
        self.backoff = Backoff(self.using, self.wake)
        self.recovery = Every(lambda: settings.DIRTY_AFTER / 2)
        self.scheduler = Scheduler(self.using)  # TASKQ_SCHEDULE's slots (taskq.schedules)
        self.vacuuming = Every(lambda: vacuum.CHECK_EVERY)
        self.processed = 0
        #: The connections were refreshed after the last task (``maintain`` need not).
        self.refreshed = False
        #: How the tasks this process ran ended, for the stop line ("succeeded": 3, ...).
        self.endings: Counter[str] = Counter()
        self.outcomes = Outcomes()
        #: A success whose delete goes with the next claim, in one round trip.
        self.unrecorded: Succeeded | None = None
        #: A claim may have committed without this worker hearing the answer.
        self.claim_in_doubt = False
        #: So may the delete of ``unrecorded`` that went with it.
        self.success_in_doubt = False
        #: The running task's body, under its time limits (taskq.timelimits).
        self.current = CurrentRun()

    # Life cycle -----------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> int:
        """Work until stopped, ``--burst`` finds nothing due or ``max_tasks`` ran.

        ``handle_signals=False`` leaves SIGTERM and SIGINT alone, for running a worker
        inside another program (a test, a notebook).
        """
        try:
            if handle_signals:
                self.install_signal_handlers()
            strategy = self.connect()
            if strategy is None:
                return 0
            self.strategy = strategy
            self.flow = Flow(strategy, self.queues)  # pauses and TASKQ_QUEUES limits
            self.row = self.register()
            if self.row is None:
                return 0
            return self.work()
        except DatabaseRefused as refused:
            logger.error("Worker %s cannot go on: %s", self.ident, refused)
            return EXIT_DATABASE_REFUSED
        finally:
            self.wake.close()

    def work(self) -> int:
        """Beat the heartbeat while the loop runs; return the loop's exit code."""
        assert self.row is not None
        self.heartbeat = Heartbeat(
            self.using, self.row.pk, settings.HEARTBEAT_INTERVAL, self.outcomes, self.current
        )
        self.gate = HeartbeatGate(self.heartbeat, self.database_answers)
        hygiene.protect_from_forks()
        self.heartbeat.start()
        logger.info(
            "taskq %s worker %s started: database %r (%s), claim strategy %s (%s), "
            "queues %s, %d registered tasks",
            taskq.__version__,
            self.ident,
            self.using,
            connections[self.using].display_name,
            self.strategy.family,
            type(self.strategy).__name__,
            ",".join(self.queues),
            len(registry.names()),
            extra={"worker": self.ident, "database": self.using, "queues": self.queues},
        )
        try:
            exit_code = self.loop()
            self.record_unrecorded()
        finally:
            self.heartbeat.stop()
            self.unregister()
        logger.info(
            "Worker %s stopped after %d tasks: %s",
            self.ident,
            self.processed,
            logs.endings_text(self.endings),
            extra={"worker": self.ident, **logs.endings_fields(self.endings)},
        )
        return exit_code

    def install_signal_handlers(self) -> None:
        self.handles_signals = True
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)

    def reinstall_signal_handlers(self) -> None:
        """Take SIGTERM and SIGINT back from a task that replaced their handlers."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            if handler_of(signum) != self.on_signal:
                logger.warning(
                    "A task replaced the handler of signal %s; the worker takes it back", signum
                )
                signal.signal(signum, self.on_signal)

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
            except DatabaseError as error:
                self.on_database_error(error)
        return None

    def register(self) -> models.Worker | None:
        """Write this process's worker row, waiting for the database if it is down."""
        while not self.stopping:
            try:
                self.forget_dead_workers()
                self.flow.prepare()
                row = models.Worker.objects.using(self.using).create(
                    ident=self.ident,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    queues=",".join(self.queues),
                    started_at=database_now(),
                    heartbeat=database_now(),
                )
                row.refresh_from_db(fields=["started_at", "heartbeat"])
                return row
            except DatabaseError as error:
                self.on_database_error(error)
        return None

    def forget_dead_workers(self) -> None:
        """Delete rows of workers that died long ago, unless a dirty task names them.

        A killed worker cannot remove its own row; without this the table only grows.
        """
        models.Worker.objects.using(self.using).filter(
            heartbeat__lt=database_now(-FORGET_WORKERS_AFTER.total_seconds())
        ).exclude(tasks__state=models.Task.State.STARTED).delete()

    def unregister(self) -> None:
        try:
            models.Worker.objects.using(self.using).filter(pk=self.row.pk).delete()  # type: ignore[union-attr]
        except DatabaseError as error:
            logger.warning("Could not remove worker row %s: %s", self.ident, error)

    # The loop -------------------------------------------------------------------------

    def loop(self) -> int:
        """Gate, maintain, claim, run, record, until told to stop; return the process's
        exit code."""
        while not self.stopping:
            if self.max_tasks is not None and self.processed >= self.max_tasks:
                return 0
            gate = self.gate.check()
            if gate is Gate.DEAD:
                return 1
            if gate is Gate.SHUT:
                self.wake.wait(settings.HEARTBEAT_INTERVAL)
                continue
            if not self.maintain():
                continue
            claim = self.claim()
            if claim is Nothing.ANSWERED:
                continue
            if claim is Nothing.DUE:
                # A claim can come back empty because it lost races (optimistic) or met
                # a locked SQLite file; --burst exits only when nothing is due at all.
                if self.burst and not self.anything_due():
                    return 0
                self.idle()
                continue
            outcome = run_claimed(claim, self.ident, self.current)
            if os.getpid() != self.pid:
                self.exit_forked_child(outcome)
            self.record(self.after_task(outcome))
            self.processed += 1
        return 0

    def maintain(self) -> bool:
        """Between two tasks: drop unusable connections, forget the query log, put back
        claims whose answer was lost, and now and then queue again the dirty tasks that
        are safe to run again (and, with ``TASKQ_VACUUM_DEAD_ROWS``, vacuum the task
        table: ``taskq.vacuum``). Return whether the database answered."""
        if self.refreshed:  # by after_task(), in the same pass as its own check
            self.refreshed = False
        else:
            hygiene.refresh()  # also forgets the query logs (DEBUG=True must not grow memory)
        try:
            if self.recovery.due():
                requeue_dirty_acks_late(self.using)
            if self.vacuuming.due():
                vacuum.vacuum_if_needed(self.using)  # only with TASKQ_VACUUM_DEAD_ROWS
            if self.claim_in_doubt:
                self.release_unstarted_claims()
            self.scheduler.maintain()
        except DatabaseError as error:
            self.on_database_error(error)
            return False
        return True

    def claim(self) -> Claim | Nothing:
        """Claim the next due task, deleting the task that just succeeded in the same
        round trip where there is one."""
        assert self.row is not None
        try:
            if self.unrecorded is not None:
                claim = self.record_success_and_claim()
            else:
                claim = self.flow.claim(self.row.pk)
        except DatabaseError as error:
            if self.on_database_error(error) is ErrorKind.OUTAGE:
                # The claim may have committed before the connection died.
                self.claim_in_doubt = True
                self.success_in_doubt = self.unrecorded is not None
            return Nothing.ANSWERED
        self.backoff.reset()
        if claim is None:
            return Nothing.DUE
        logger.debug(
            "Claimed %s[%s] from queue %s, attempt %d",
            claim.name,
            claim.id,
            claim.queue,
            claim.retries + 1,
            extra=logs.claim_fields(claim),
        )
        return claim

    def idle(self) -> None:
        """Wait for work: a poll interval (with jitter), or until the next ETA if that
        comes sooner, or until the database announces a task."""
        timeout = settings.POLL_INTERVAL * random.uniform(0.5, 1.5)
        timeout = self.flow.idle_timeout(timeout)
        try:
            soon = self.strategy.next_due_in(self.queues, timeout)
            if soon is not None:
                timeout = soon + ETA_MARGIN
            timeout = self.scheduler.wait_limit(timeout)
            logger.debug(
                "Nothing due in %s; waiting up to %.3fs%s",
                ",".join(self.queues),
                timeout,
                " (the next ETA)" if soon is not None else "",
            )
            self.strategy.wait_for_work(self.queues, timeout, self.wake)
        except DatabaseError as error:
            self.on_database_error(error)

    def on_database_error(self, error: DatabaseError, *, interruptible: bool = True) -> ErrorKind:
        """Wait out an outage (back-off) or a busy database (a short pause); raise
        ``DatabaseRefused`` for a refusal, which no wait would change. Return the kind."""
        diagnosis = diagnose(connections[self.using], error)
        if diagnosis.kind is ErrorKind.PERMANENT:
            raise DatabaseRefused(diagnosis.message) from error
        if diagnosis.kind is ErrorKind.BUSY:
            logger.debug("Database %r busy (%s); retrying", self.using, diagnosis.message)
            pause = random.uniform(BUSY_PAUSE / 5, BUSY_PAUSE)
            if interruptible:
                self.wake.wait(pause)
            else:
                time.sleep(pause)
        else:
            self.backoff.wait(error, interruptible=interruptible)
        return diagnosis.kind

    def database_answers(self) -> bool:
        """Return whether the database answers a trivial query on this connection."""
        try:
            with connections[self.using].cursor() as cursor:
                cursor.execute("SELECT 1")
            return True
        except CONNECTION_ERRORS:
            connections[self.using].close()
            return False

    def release_unstarted_claims(self) -> None:
        """Queue again the rows this worker claimed without hearing the answer.

        When the connection dies between a claim's commit and its reply, the row is
        started in this worker's name but the task never ran: this worker runs one task
        at a time and is between tasks now, so putting it back is safe.
        """
        assert self.row is not None
        unrecorded = [self.unrecorded.claim.id] if self.unrecorded else []
        released = (
            models.Task.objects.using(self.using)
            .filter(state=models.Task.State.STARTED, worker_id=self.row.pk)
            .exclude(pk__in=unrecorded)
            .requeue()
        )
        self.claim_in_doubt = False
        if released:
            logger.warning("Queued again %d task(s) claimed before the connection died", released)

    def anything_due(self) -> bool:
        try:
            return models.Task.objects.using(self.using).due(self.flow.claimable()).exists()
        except DatabaseError as error:
            self.on_database_error(error)
            return True  # not known; the loop asks again

    def after_task(self, outcome: Outcome) -> Outcome:
        """Undo what the task did to the worker: take back the stop signals, and throw
        away a connection the task left inside a transaction (the server rolls the
        task's work back). Such a task fails, whatever it returned, saying so."""
        if self.handles_signals:
            self.reinstall_signal_handlers()
        left = hygiene.after_task()
        self.refreshed = True
        if not left:
            return outcome
        reason = "; ".join(f"{what} on database {alias!r}" for alias, what in left.items())
        error = TransactionLeftOpen(
            f"the task returned with {reason} still open; its uncommitted work was rolled back"
        )
        text = format_error(error)
        if isinstance(outcome, Failed):
            text = f"{outcome.error}\n{text}"
        return Failed(outcome.claim, outcome.task, outcome.fields, error, text)

    def exit_forked_child(self, outcome: Outcome) -> NoReturn:
        """End a child that a task forked and that returned into the worker's loop,
        without touching the worker's rows, connections or heartbeat."""
        code = 0
        if isinstance(outcome, Failed):
            exit_code = getattr(outcome.exception, "code", 1)
            code = exit_code if isinstance(exit_code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    # Recording outcomes ---------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        """Log ``outcome``, write it (fenced by the claim's version) and signal it.

        A success is written with the next claim (``record_success_and_claim``)."""
        fields, label, claim = outcome.fields, outcome.label, outcome.claim
        self.endings[logs.ending(outcome)] += 1
        match outcome:
            case Succeeded():
                logger.info("Task %s succeeded in %.3fs", label, fields["duration"], extra=fields)
                self.outcomes.count("succeeded", claim.queue)
                self.unrecorded = outcome
            case Expired():
                logger.info("Task %s expired; dropped", label, extra=fields)
                self.write(self.strategy.complete, claim)
                self.outcomes.count("expired", claim.queue)
            case Retried(retry=retry, error=error):
                logger.info(
                    "Task %s will retry %s after %s (ran %.3fs): %s",
                    label,
                    retry.schedule,
                    logs.attempt_text(fields["attempt"], outcome.task),
                    fields["duration"],
                    "retry requested" if retry.exc is None else repr(retry.exc),
                    extra=logs.attempt_fields(fields, outcome.task),
                )
                eta = retry.eta if retry.eta is not None else database_now(retry.countdown or 0)
                self.write(self.strategy.retry, claim, eta, error)
                self.outcomes.count("retried", claim.queue)
                signals.send(
                    signals.task_retried,
                    outcome.task,
                    **fields,
                    exception=retry.exc,
                    eta=retry.when,
                )
            case Failed(exception=exception, error=error):
                # An exception the task declares in ``throws`` is expected: logged at
                # INFO without its traceback, as Celery logs it.
                expected = isinstance(exception, getattr(outcome.task, "throws", ()))
                logger.log(
                    logging.INFO if expected else logging.ERROR,
                    "Task %s failed in %.3fs: %s (%s)",
                    label,
                    fields["duration"],
                    short_repr(exception),
                    logs.attempt_text(fields["attempt"], outcome.task),
                    exc_info=None if expected else exception,
                    extra=logs.attempt_fields(fields, outcome.task),
                )
                self.fail(outcome, exception, error)
            case Cancelled(requested_by=requested_by):
                logger.warning(
                    "Task %s cancelled by %s after %.3fs; deleted",
                    label,
                    requested_by,
                    fields["duration"],
                    extra=fields,
                )
                self.write(self.strategy.complete, claim)
            case Rejected(exception=exception, error=error):
                logger.error(
                    "Task %s failed: %s (%s)",
                    label,
                    logs.rejection_text(exception, error),
                    logs.attempt_text(fields["attempt"], outcome.task),
                    extra=logs.attempt_fields(fields, outcome.task),
                )
                self.fail(outcome, exception, error)

    def fail(self, outcome: Outcome, exception: BaseException, error: str) -> None:
        self.outcomes.count("failed", outcome.claim.queue)
        self.write(self.strategy.fail, outcome.claim, error)
        failed = {**outcome.fields, "exception": exception, "traceback": error}
        # Receivers may log it with logger.exception(), as in an except clause.
        while_handling(exception, lambda: signals.send(signals.task_failed, outcome.task, **failed))

    def record_success_and_claim(self) -> Claim | None:
        """Delete the task that just succeeded and claim the next one, together."""
        assert self.row is not None and self.unrecorded is not None
        done = self.unrecorded
        completed, claim = self.flow.complete_and_claim(done.claim, self.row.pk)
        self.unrecorded = None
        logger.debug(
            "Deleted %s, which succeeded, with the next claim", done.label, extra=done.fields
        )
        if not completed and self.success_in_doubt:
            # The first attempt may have deleted the row before its answer was lost.
            completed = not models.Task.objects.using(self.using).filter(pk=done.claim.id).exists()
        self.success_in_doubt = False
        self.after_success(done, completed)
        return claim

    def record_unrecorded(self) -> None:
        """Delete the task that just succeeded, when no next claim follows (exit)."""
        if self.unrecorded is not None:
            done, self.unrecorded = self.unrecorded, None
            self.write(self.strategy.complete, done.claim)
            signals.send(signals.task_succeeded, done.task, **done.fields)

    def after_success(self, done: Succeeded, completed: bool) -> None:
        if not completed:
            self.warn_lost_claim(done.claim)
        signals.send(signals.task_succeeded, done.task, **done.fields)

    def warn_lost_claim(self, claim: Claim) -> None:
        logger.warning(
            "Task %s[%s] was re-queued or deleted while it ran; this worker lost its claim "
            "and leaves the row alone",
            claim.name,
            claim.id,
        )

    def write(self, write: Callable[..., bool], claim: Claim, *args: Any) -> None:
        """Record an outcome, waiting for the database as long as it takes.

        Every write is fenced by the claim's version, so repeating one is safe. The
        worker claims nothing else meanwhile: a task whose outcome is not recorded yet
        must never be mistaken for a claim that was lost. A second signal still exits
        at once, leaving the task dirty.
        """
        shortened = False
        self.refreshed = False  # the next maintain() looks at the connection again
        while True:
            try:
                if not write(claim, *args):
                    self.warn_lost_claim(claim)
                else:
                    logs.log_write(logger, write, claim)
                return
            except DatabaseError as error:
                try:
                    self.on_database_error(error, interruptible=False)
                except DatabaseRefused as refused:
                    # An outcome the database refuses (too large, say) is replaced by a
                    # short one, once; the task is recorded either way.
                    if shortened or not (args and isinstance(args[-1], str)):
                        raise
                    logger.error("Task %s[%s]: %s", claim.name, claim.id, refused)
                    args = (*args[:-1], f"taskq could not store this outcome: {refused}")
                    shortened = True
