"""The execution context of a running task, shared by both front doors.

The worker (and an eager call) makes a ``Request`` current while a task body runs;
``taskq.celery`` and ``taskq.django_tasks`` read it to know the row's id, its retry
count, the worker running it and what the row says about the call (queue, priority,
due time, headers, time limits). ``Retry`` is how a task body asks to run again; the
time-limit exceptions are how the worker stops a body that runs too long.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, Protocol

from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from taskq import serialization


class ClaimedRow(Protocol):
    """What ``Request.from_claim`` reads of a claim (``taskq.backends.base.Claim``)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def eta(self) -> Any: ...
    @property
    def expires(self) -> Any: ...
    @property
    def created_at(self) -> Any: ...
    @property
    def headers(self) -> str | None: ...
    @property
    def time_limit(self) -> float | None: ...
    @property
    def soft_time_limit(self) -> float | None: ...


@dataclass(frozen=True)
class Request:
    """What a running task may ask about its own execution (Celery's ``task.request``)."""

    #: The row's primary key; a fresh uuid string when run eagerly (as Celery does).
    id: int | str | None
    name: str
    retries: int
    #: Identity of the worker process running the task; ``None`` when run eagerly.
    worker: str | None = None
    queue: str | None = None
    priority: int = 0
    #: When the row was due (its ETA, moved by each retry).
    eta: datetime | None = None
    expires: datetime | None = None
    #: When the row was written (``enqueue()``'s time).
    enqueued_at: datetime | None = None
    #: The call's ``headers`` (``apply_async(headers=…)``); ``None`` when it had none.
    headers: dict[str, Any] | None = None
    #: Seconds this run may take: the call's ``time_limit`` option, else the task's.
    #: At the hard limit the worker fails the task with ``TimeLimitExceeded``.
    time_limit: float | None = None
    #: Seconds after which the worker raises ``SoftTimeLimitExceeded`` in the body.
    soft_time_limit: float | None = None
    is_eager: bool = False
    #: True only for the empty request ``task.request`` returns outside a run.
    called_directly: bool = False

    @classmethod
    def from_claim(
        cls,
        claim: ClaimedRow,
        worker: str,
        *,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> Request:
        """Return the request of a claimed row run by ``worker``, under the time limits
        the worker resolved (``taskq.timelimits.limits_for``).

        Times come back from some drivers as text (SQLite's ``RETURNING``); they are
        parsed here.
        """
        return cls(
            id=claim.id,
            name=claim.name,
            retries=claim.retries,
            worker=worker,
            queue=claim.queue,
            priority=claim.priority,
            eta=_moment(claim.eta),
            expires=_moment(claim.expires),
            enqueued_at=_moment(claim.created_at),
            headers=None if claim.headers is None else serialization.loads(claim.headers),
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )

    @property
    def task(self) -> str:
        """The task's name, under Celery's name for it."""
        return self.name

    @property
    def hostname(self) -> str | None:
        """The worker running the task (Celery's ``request.hostname``)."""
        return self.worker

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's ``request.delivery_info``: where the task came from."""
        return {
            "routing_key": self.queue,
            "priority": self.priority,
            "is_eager": self.is_eager,
        }

    @property
    def timelimit(self) -> tuple[float | None, float | None]:
        """Celery's ``request.timelimit``: ``(time_limit, soft_time_limit)``."""
        return (self.time_limit, self.soft_time_limit)


def _moment(value: Any) -> datetime | None:
    """Return a time read from a driver as Django's ORM would: SQLite's raw claim gives
    text or a naive datetime, which is UTC when ``USE_TZ`` is on."""
    if value is None or (type(value) is datetime and value.tzinfo is not None):
        return value  # what PostgreSQL and MariaDB give under USE_TZ: nothing to do
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is not None and django_settings.USE_TZ and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt_timezone.utc)
    return moment


#: What ``task.request`` is outside a run of the task: Celery's empty ``Context()``.
EMPTY_REQUEST = Request(id=None, name="", retries=0, called_directly=True)


class PendingRequest:
    """The request of a claimed run, made when the task first asks for it: most tasks
    never do, and making one (a frozen dataclass of a dozen fields, its three times
    converted from the driver's) costs more than the rest of starting the run."""

    __slots__ = ("claim", "worker", "time_limit", "soft_time_limit", "made")

    def __init__(
        self,
        claim: ClaimedRow,
        worker: str,
        time_limit: float | None,
        soft_time_limit: float | None,
    ) -> None:
        self.claim = claim
        self.worker = worker
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.made: Request | None = None

    def request(self) -> Request:
        if self.made is None:
            self.made = Request.from_claim(
                self.claim,
                self.worker,
                time_limit=self.time_limit,
                soft_time_limit=self.soft_time_limit,
            )
        return self.made


_current_request: contextvars.ContextVar[Request | PendingRequest | None] = contextvars.ContextVar(
    "taskq_request", default=None
)


def current_request() -> Request | None:
    """Return the request of the task running in this context, if any."""
    current = _current_request.get()
    return current.request() if isinstance(current, PendingRequest) else current


@contextmanager
def running(request: Request | PendingRequest) -> Iterator[None]:
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
    """Raised inside a task body at its soft time limit (Celery's
    ``billiard.exceptions.SoftTimeLimitExceeded``); the task may catch it to clean up.

    Uncaught, it fails the task, or retries it when ``autoretry_for`` names it.
    """


class TimeLimitExceeded(Exception):
    """The error a task is failed with when its hard time limit interrupted it.

    The body never sees this one (it is stopped by an exception it cannot catch with
    ``except Exception``); it is what the failed row's traceback names.
    """
