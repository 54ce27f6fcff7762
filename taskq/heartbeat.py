"""A worker's heartbeat: the proof, written every second, that its tasks are alive.

The heartbeat runs in a thread with its own database connection, so a long task or a
slow claim never delays it; a started task whose worker's heartbeat is stale is dirty.
It also watches the running task (``taskq.timelimits.CurrentRun``): it passes on cancel
requests, and it is the backstop for a task that its time limit could not interrupt.
"""

from __future__ import annotations

import enum
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError, connections

from taskq import models
from taskq.clock import database_now
from taskq.conf import settings
from taskq.history import MinuteWriter
from taskq.hygiene import keep_referenced
from taskq.timelimits import CurrentRun

logger = logging.getLogger("taskq.worker")


@dataclass
class Outcomes:
    """Tasks this process finished; counted by the worker, written by the heartbeat.

    The totals go to the worker's row; the counts per queue not written yet go to the
    history (``taskq.history``), handed over under a lock since two threads share them.
    """

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    unwritten: dict[str, Counter[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, queue: str) -> None:
        """Count one task of ``queue`` that ended as ``kind`` ("succeeded", "failed",
        "retried" or "expired")."""
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.unwritten.setdefault(queue, Counter())[kind] += 1

    def take_unwritten(self) -> dict[str, Counter[str]]:
        """Return the counts per queue not written yet, and forget them."""
        with self.lock:
            taken, self.unwritten = self.unwritten, {}
        return taken

    def give_back(self, counts: dict[str, Counter[str]]) -> None:
        """Keep ``counts``, which could not be written, for the next beat."""
        with self.lock:
            for queue, by_kind in counts.items():
                self.unwritten.setdefault(queue, Counter()).update(by_kind)


class Heartbeat(threading.Thread):
    """Write the worker row's heartbeat every interval, on the thread's own connection."""

    def __init__(
        self,
        using: str,
        worker_id: int,
        interval: float,
        outcomes: Outcomes,
        current: CurrentRun | None = None,
    ) -> None:
        super().__init__(name="taskq-heartbeat", daemon=True)
        self.current = current
        self.using = using
        self.worker_id = worker_id
        self.interval = interval
        self.stopped = threading.Event()
        self.outcomes = outcomes
        #: When (``time.monotonic()``) a heartbeat was last written, and whether the
        #: latest attempt was.
        self.last_beat = time.monotonic()
        self.healthy = True
        #: This worker's part of the history; made at the first beat (it reads the
        #: worker's queues).
        self.history: MinuteWriter | None = None

    def run(self) -> None:
        # A child forked by a task must never finalize this thread's connection.
        keep_referenced(connections[self.using])
        # The time-limit timer's signal must reach the main thread, which runs the task.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        next_beat = time.monotonic() + self.interval
        try:
            while not self.stopped.wait(self.pause(next_beat)):
                if time.monotonic() >= next_beat:
                    self.beat()
                    next_beat = time.monotonic() + self.interval
                    self.watch_the_task()
                if self.current is not None:
                    self.current.take_over_if_stuck(self.using)
            self.beat()  # the final counts
        finally:
            connections[self.using].close()

    def pause(self, next_beat: float) -> float:
        """Seconds until the next beat, or sooner when a stuck task must be taken over."""
        pause = next_beat - time.monotonic()
        takeover = self.current.takeover_in() if self.current is not None else None
        if takeover is not None:
            pause = min(pause, takeover)
        return max(pause, 0.0)

    def watch_the_task(self) -> None:
        if self.current is None:
            return
        try:
            self.current.look_for_cancel(self.using)
        except Exception as error:  # the thread must not die: the next beat asks again
            logger.warning("Could not read the running task's cancel request: %s", error)

    def beat(self) -> None:
        try:
            written = (
                models.Worker.objects.using(self.using)
                .filter(pk=self.worker_id)
                .update(
                    heartbeat=database_now(),
                    succeeded=self.outcomes.succeeded,
                    failed=self.outcomes.failed,
                )
            )
        except Exception as error:  # the thread must not die: the worker relies on it
            self.healthy = False
            logger.warning("Heartbeat failed: %s", error)
            try:
                connections[self.using].close()
            except DatabaseError:
                pass
            return
        self.healthy = written == 1
        if self.healthy:
            self.last_beat = time.monotonic()
            self.write_history()
        else:
            logger.warning("Heartbeat failed: worker row %s is gone", self.worker_id)

    def write_history(self) -> None:
        """Add the outcomes counted since the last beat to the history; on an error,
        keep them for the next beat (the heartbeat itself is written already)."""
        unwritten = self.outcomes.take_unwritten()
        try:
            if self.history is None:
                row = models.Worker.objects.using(self.using).filter(pk=self.worker_id)
                queues = row.values_list("queues", flat=True).first() or ""
                self.history = MinuteWriter(self.using, queues.split(","))
            self.history.write(unwritten)
        except Exception as error:  # the thread must not die: the worker relies on it
            self.outcomes.give_back(unwritten)
            logger.warning("Could not write the queue's history: %s", error)

    def silent_for(self) -> float:
        """Return the seconds since the heartbeat was last written."""
        return time.monotonic() - self.last_beat

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)


class Gate(enum.Enum):
    """What the heartbeat allows the worker to do before its next claim."""

    #: The heartbeat is written: claim.
    OPEN = "open"
    #: The heartbeat is failing: a task run now would look dead to everyone else, so
    #: claim nothing and wait (the database may be down).
    SHUT = "shut"
    #: The database answers but takes no heartbeat: this worker is useless; exit.
    DEAD = "dead"


class HeartbeatGate:
    """Decide, before each claim, whether the heartbeat lets the worker claim.

    Once the database answers again the heartbeat gets two beats to recover before the
    worker gives up on it.
    """

    def __init__(self, heartbeat: Heartbeat, database_answers: Callable[[], bool]) -> None:
        self.heartbeat = heartbeat
        self.database_answers = database_answers
        #: When (``time.monotonic()``) the database first answered while the heartbeat
        #: was failing.
        self.answered_since: float | None = None

    def check(self) -> Gate:
        if self.heartbeat.healthy and self.heartbeat.is_alive():
            self.answered_since = None
            return Gate.OPEN
        silent = self.heartbeat.silent_for()
        if silent > settings.DIRTY_AFTER and self.database_answers():
            self.answered_since = self.answered_since or time.monotonic()
            if time.monotonic() - self.answered_since > 2 * settings.HEARTBEAT_INTERVAL:
                logger.error(
                    "No heartbeat written for %.1fs while the database answers; exiting", silent
                )
                return Gate.DEAD
        else:
            self.answered_since = None
        return Gate.SHUT
