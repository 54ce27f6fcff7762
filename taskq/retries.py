"""The retry policy: given a task's options, an error and its retry count, when does it
run again, if ever?

Celery's rules, in one place: ``task.retry()``, ``autoretry_for`` and the acks_late
recovery of a task whose worker died all ask a ``RetryPolicy``. Past the limit a retry
is refused: the task fails with the original exception, or with
``MaxRetriesExceededError`` when there is none.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskq.context import Retry


class MaxRetriesExceededError(Exception):
    """``task.retry()`` without ``exc`` was called once too often."""


def backoff_countdown(factor: int, retries: int, maximum: int, full_jitter: bool) -> int:
    """Return Celery's exponential back-off: ``min(maximum, factor * 2**retries)``.

    With full jitter the delay is drawn uniformly from 0 to that value.
    """
    countdown = min(maximum, factor * 2**retries)
    if full_jitter:
        countdown = random.randrange(countdown + 1)
    return max(0, countdown)


@dataclass(frozen=True)
class RetryPolicy:
    """A task's retry options, with Celery's defaults."""

    #: Retries allowed after the first run; ``None``: no limit.
    max_retries: int | None = 3
    #: Seconds until the next run when ``retry()`` names no time.
    default_retry_delay: float = 180
    #: Exceptions that retry the task by themselves, unless also in ``dont_autoretry_for``.
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    #: Arguments of the ``retry()`` an automatic retry makes (``countdown``, ``max_retries``…).
    retry_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Exponential back-off for automatic retries: ``True`` (factor 1) or the factor.
    retry_backoff: bool | int = False
    retry_backoff_max: int = 600
    retry_jitter: bool = True

    def limit(self, max_retries: int | None = None) -> int | None:
        """Return the retry limit in force: ``max_retries`` if given, else the task's."""
        return self.max_retries if max_retries is None else max_retries

    def exhausted(self, retries: int, max_retries: int | None = None) -> bool:
        """Return whether a task that was retried ``retries`` times may not retry again."""
        limit = self.limit(max_retries)
        return limit is not None and retries >= limit

    def retry(
        self,
        retries: int,
        exc: BaseException | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
        label: str = "the task",
    ) -> Retry:
        """Return the ``Retry`` that runs the task again, or raise once out of retries.

        Out of retries, ``exc`` itself is raised (so the task fails with the original
        traceback), or ``MaxRetriesExceededError`` without one. ``countdown`` wins over
        ``eta``; without either, ``default_retry_delay`` applies.
        """
        if self.exhausted(retries, max_retries):
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {label}: max retries ({self.limit(max_retries)}) exceeded"
            )
        if countdown is not None:
            return Retry(exc, countdown=countdown)
        if eta is not None:
            return Retry(exc, eta=eta)
        return Retry(exc, countdown=self.default_retry_delay or 0)

    def retries_automatically(self, exc: BaseException) -> bool:
        """Return whether ``exc`` retries the task by itself (``autoretry_for``)."""
        return isinstance(exc, self.autoretry_for) and not (
            self.dont_autoretry_for and isinstance(exc, self.dont_autoretry_for)
        )

    def automatic_retry_options(self, retries: int) -> dict[str, Any]:
        """Return the ``retry()`` arguments of an automatic retry: ``retry_kwargs``,
        with the back-off's countdown when ``retry_backoff`` is on."""
        options = dict(self.retry_kwargs)
        if self.retry_backoff:
            options["countdown"] = backoff_countdown(
                factor=int(max(1.0, self.retry_backoff)),
                retries=retries,
                maximum=self.retry_backoff_max,
                full_jitter=self.retry_jitter,
            )
        return options
