"""Turn a call into a task row, checking every input before anything is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from taskq import serialization
from taskq.clock import database_now
from taskq.conf import settings
from taskq.models import NAME_MAX_LENGTH, PRIORITY_RANGE, QUEUE_MAX_LENGTH, Task


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    return float(value)


def check_moment(name: str, value: Any) -> datetime:
    """Return ``value`` as a datetime the database accepts, or raise a clear error."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {value!r}")
    if django_settings.USE_TZ and timezone.is_naive(value):
        raise ValueError(
            f"{name}={value!r} is a naive datetime but USE_TZ is True; "
            "give it a tzinfo (for example datetime.timezone.utc)"
        )
    if not django_settings.USE_TZ and timezone.is_aware(value):
        return timezone.make_naive(value)
    return value


def check_queue(queue: Any) -> str:
    """Return ``queue`` if it is a usable queue name, else raise ``ValueError``."""
    if not isinstance(queue, str) or not 0 < len(queue) <= QUEUE_MAX_LENGTH:
        raise ValueError(
            f"queue must be a name of 1 to {QUEUE_MAX_LENGTH} characters, not {queue!r}"
        )
    return queue


def check_priority(priority: Any) -> int:
    """Return ``priority`` if it fits the priority column, else raise ``ValueError``."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {priority!r}")
    if priority not in PRIORITY_RANGE:
        raise ValueError(
            f"priority must be between {PRIORITY_RANGE.start} and "
            f"{PRIORITY_RANGE.stop - 1}, not {priority}"
        )
    return priority


@dataclass
class Call:
    """Everything a row needs, as the caller gave it; ``to_row`` checks it all."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    countdown: float | None = None
    eta: datetime | None = None
    expires: float | datetime | None = None

    def to_row(self) -> Task:
        """Return an unsaved ``Task`` or raise ``TypeError``/``ValueError``.

        As in Celery, ``countdown`` wins over ``eta``; ``expires`` is seconds from now
        or a datetime. A due time in the past means "run as soon as possible". "Now" is
        the database's clock (``taskq.clock``): a row saved with a countdown is due
        that long after the database wrote it, whatever this process's clock says.
        """
        if len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(f"task name is longer than {NAME_MAX_LENGTH} characters")
        eta: Any
        if self.countdown is not None:
            countdown = _seconds("countdown", self.countdown)
            if countdown < 0:
                raise ValueError(f"countdown must not be negative, not {self.countdown!r}")
            eta = database_now(countdown)
        elif self.eta is not None:
            eta = check_moment("eta", self.eta)
        else:
            eta = database_now()
        expires: Any
        if self.expires is None:
            expires = None
        elif isinstance(self.expires, datetime):
            expires = check_moment("expires", self.expires)
        else:
            expires = database_now(_seconds("expires", self.expires))
        return Task(
            name=self.name,
            queue=check_queue(settings.DEFAULT_QUEUE if self.queue is None else self.queue),
            priority=check_priority(self.priority),
            args=serialization.dumps_args(self.args),
            kwargs=serialization.dumps_kwargs(self.kwargs),
            eta=eta,
            expires=expires,
        )


def enqueue(call: Call) -> Task:
    """Write one task row in the current transaction and return it."""
    task = call.to_row()
    task.save(force_insert=True)
    return task


def enqueue_many(calls: Iterable[Call], *, batch_size: int = 1000) -> list[Task]:
    """Write many task rows in as few round trips as the database allows.

    Every call is checked before the first row is written: one bad call writes nothing.
    """
    rows = [call.to_row() for call in calls]
    return Task.objects.bulk_create(rows, batch_size=batch_size)
