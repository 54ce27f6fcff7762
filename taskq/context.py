"""The execution context of a running task, shared by both front doors.

The worker (and an eager call) makes a ``Request`` current while a task body runs;
``taskq.celery`` and ``taskq.django_tasks`` read it to know the row's id, its retry
count and the worker running it. ``Retry`` is how a task body asks to run again;
``SoftTimeLimitExceeded`` and ``TimeLimitExceeded`` are how a time limit shows in it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone


@dataclass(frozen=True)
class Request:
    """What a running task may ask about its own execution."""

    id: int | None
    name: str
    retries: int
    #: Identity of the worker process running the task; ``None`` when run eagerly.
    worker: str | None = None


_current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "taskq_request", default=None
)


def current_request() -> Request | None:
    """Return the request of the task running in this context, if any."""
    return _current_request.get()


@contextmanager
def running(request: Request) -> Iterator[None]:
    """Make ``request`` the current request while the task body runs."""
    token = _current_request.set(request)
    try:
        yield
    finally:
        _current_request.reset(token)


class Retry(Exception):
    """Raised by ``task.retry()``: run the task again ``countdown`` seconds from now
    (by the database's clock, when a worker records it) or at ``eta``."""

    def __init__(
        self,
        exc: BaseException | None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
    ) -> None:
        if (countdown is None) == (eta is None):
            raise TypeError("Retry needs exactly one of countdown and eta")
        #: "in 5s" or "at <eta>", for log lines.
        self.schedule = f"in {countdown:g}s" if eta is None else f"at {eta.isoformat()}"
        super().__init__(f"Retry {self.schedule}" + (f": {exc!r}" if exc else ""))
        self.exc = exc
        self.countdown = countdown
        self.eta = eta

    @property
    def when(self) -> datetime:
        """The moment of the next run, by this process's clock (for logs and signals)."""
        if self.eta is not None:
            return self.eta
        return timezone.now() + timedelta(seconds=self.countdown or 0)


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task body at its soft time limit; the task may catch it to clean up.

    Uncaught, it fails the task, or retries it when ``autoretry_for`` names it.
    """


class TimeLimitExceeded(Exception):
    """The error a task is failed with when its hard time limit interrupted it.

    The body never sees this one (it is stopped by an exception it cannot catch with
    ``except Exception``); it is what the failed row's traceback names.
    """
