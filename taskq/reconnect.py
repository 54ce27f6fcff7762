"""Waiting out a database that went away: exponential back-off with jitter.

Every worker of a fleet loses its database at the same moment; the jitter keeps them
from all knocking again at the same moment too.
"""

from __future__ import annotations

import logging
import random
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from taskq.alarm import Alarm
from taskq.conf import settings

logger = logging.getLogger("taskq.worker")

#: Errors that mean "the database is unreachable right now", worth waiting out.
CONNECTION_ERRORS = (OperationalError, InterfaceError)


class Backoff:
    """The wait before the next attempt to reach database ``using``: it doubles with
    each failure, up to ``TASKQ_RECONNECT_MAX_DELAY``, and starts over on success."""

    def __init__(self, using: str, alarm: Alarm) -> None:
        self.using = using
        self.alarm = alarm
        self.delay = 0.0

    def reset(self) -> None:
        """The database answered: the next outage starts with a short wait again."""
        self.delay = 0.0

    def wait(self, error: Exception, *, interruptible: bool = True) -> None:
        """Log ``error``, drop the broken connection and wait before the next attempt.

        A stop signal cuts the wait short, except while a finished task's outcome is
        still to be recorded (``interruptible=False``).
        """
        self.delay = min(settings.RECONNECT_MAX_DELAY, max(0.5, self.delay * 2))
        delay = random.uniform(self.delay / 2, self.delay)
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
            self.alarm.wait(delay)
        else:
            time.sleep(delay)
