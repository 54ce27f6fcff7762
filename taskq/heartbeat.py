"""A worker's heartbeat: the proof, written every second, that its tasks are alive.

The heartbeat runs in a thread with its own database connection, so a long task or a
slow claim never delays it; a started task whose worker's heartbeat is stale is dirty.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.db import DatabaseError, connections

from taskq.clock import database_now
from taskq.models import Worker as WorkerRow

logger = logging.getLogger("taskq.worker")


@dataclass
class Outcomes:
    """Tasks this process finished; counted by the worker, written by the heartbeat."""

    succeeded: int = 0
    failed: int = 0


class Heartbeat(threading.Thread):
    """Write the worker row's heartbeat every interval, on the thread's own connection."""

    def __init__(self, using: str, worker_id: int, interval: float, outcomes: Outcomes) -> None:
        super().__init__(name="taskq-heartbeat", daemon=True)
        self.using = using
        self.worker_id = worker_id
        self.interval = interval
        self.stopped = threading.Event()
        self.outcomes = outcomes
        #: When (``time.monotonic()``) a heartbeat was last written, and whether the
        #: latest attempt was.
        self.last_beat = time.monotonic()
        self.healthy = True

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                self.beat()
            self.beat()  # the final counts
        finally:
            connections[self.using].close()

    def beat(self) -> None:
        try:
            written = (
                WorkerRow.objects.using(self.using)
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
        else:
            logger.warning("Heartbeat failed: worker row %s is gone", self.worker_id)

    def silent_for(self) -> float:
        """Return the seconds since the heartbeat was last written."""
        return time.monotonic() - self.last_beat

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)
