"""Celery's task API (``shared_task``, ``delay``, ``apply_async``, ``.s()``, retries).

The semantics follow Celery 5 where Celery has them, so that a Celery project's task
code runs unchanged. Every option Celery has is in ``taskq.celery_options``: supported,
accepted because taskq keeps its meaning by design, or refused with the reason. What
taskq leaves out on purpose (results, task classes, workflows) is refused, not half there.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Generic, ParamSpec, TypeVar, overload

from django.conf import settings as django_settings
from django.utils import timezone

from taskq import celery_options, registry, serialization
from taskq.conf import parse_rate
from taskq.context import (
    EMPTY_REQUEST,
    Request,
    Retry,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    current_request,
    running,
)
from taskq.enqueue import Call, check_moment, enqueue
from taskq.results import AsyncResult, EagerResult, eager_id
from taskq.retries import MaxRetriesExceededError, RetryPolicy
from taskq.serialization import EncodeError
from taskq.signature import Signature

# EncodeError, SoftTimeLimitExceeded and TimeLimitExceeded are here because Celery code
# imports them from celery.exceptions (and kombu.exceptions); taskq's live where both
# front doors reach them.

__all__ = [
    "AsyncResult",
    "EagerResult",
    "EncodeError",
    "MaxRetriesExceededError",
    "Request",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "TaskFunction",
    "TimeLimitExceeded",
    "current_request",
    "shared_task",
]

logger = logging.getLogger("taskq.celery")

P = ParamSpec("P")
R = TypeVar("R")

#: The retry options ``shared_task`` accepts: the fields of ``RetryPolicy``.
RETRY_OPTIONS = tuple(RetryPolicy.__dataclass_fields__)
#: The options ``shared_task`` accepts.
TASK_OPTIONS = celery_options.known("shared_task")
#: The options ``apply_async`` and ``Signature.set()`` accept.
APPLY_OPTIONS = celery_options.known("apply_async")


def celery_moment(name: str, value: Any) -> Any:
    """Return ``value`` with Celery's reading of a naive datetime: UTC
    (``celery.utils.time.maybe_make_aware``, ``naive_as_utc=True``)."""
    if isinstance(value, datetime) and django_settings.USE_TZ and timezone.is_naive(value):
        return value.replace(tzinfo=dt_timezone.utc)
    return value


def _limits(time_limit: Any, soft_time_limit: Any) -> None:
    """Refuse a soft limit past the hard one, as Celery's ``apply_async`` does."""
    numbers = (int, float)
    if (
        isinstance(time_limit, numbers)
        and isinstance(soft_time_limit, numbers)
        and soft_time_limit > time_limit
    ):
        raise ValueError("soft_time_limit must be less than or equal to time_limit")


def _rate_limit(name: str, value: Any) -> float | None:
    """Celery's ``rate_limit`` in starts per second; a value Celery would not read is a
    ``ValueError`` when the task is defined, not a surprise in the worker."""
    if value is None:
        return None
    rate = parse_rate(value)
    if rate is None:
        raise ValueError(
            f"shared_task(rate_limit={value!r}) for {name!r}: a rate is a positive number of "
            'starts per second, or a string such as "10/s", "10/m" or "10/h"'
        )
    return rate


class TaskFunction(Generic[P, R]):
    """A function registered as a task; call it to run it here and now.

    It is also what a ``bind=True`` task receives as ``self``: ``self.request``,
    ``self.retry()``, ``self.name``, ``self.max_retries``, ``self.apply_async()``.
    """

    def __init__(self, run: Callable[..., R], **options: Any) -> None:
        celery_options.check("shared_task", options, "shared_task()")
        self.run = run
        self.name: str = options.get("name") or f"{run.__module__}.{run.__qualname__}"
        self.queue: str | None = options.get("queue")
        self.priority: int = options.get("priority", 0)
        #: The function takes the task as its first argument, ``self``.
        self.bind = bool(options.get("bind", False))
        retry_options = {name: options[name] for name in RETRY_OPTIONS if name in options}
        for name in ("autoretry_for", "dont_autoretry_for"):
            if name in retry_options:
                retry_options[name] = tuple(retry_options[name])
        if "retry_kwargs" in retry_options:
            celery_options.check("retry", retry_options["retry_kwargs"], "retry_kwargs")
        #: When the task runs again after an error, if ever.
        self.policy = RetryPolicy(**retry_options)
        self.expires: float | datetime | None = options.get("expires")
        #: Safe to run again: if its worker dies mid-run, the task is queued again.
        self.acks_late: bool = bool(options.get("acks_late", False))
        #: Seconds a run may take, unless a call says otherwise (enforced by the worker).
        self.time_limit: float | None = options.get("time_limit")
        self.soft_time_limit: float | None = options.get("soft_time_limit")
        Call(self.name, time_limit=self.time_limit, soft_time_limit=self.soft_time_limit).extras()
        _limits(self.time_limit, self.soft_time_limit)
        #: Starts per second across all workers (``None``: no limit); the worker's
        #: ``Flow`` spaces the starts by the database's clock.
        self.rate_limit: float | None = _rate_limit(self.name, options.get("rate_limit"))
        #: Expected exceptions: they fail the task, logged without a traceback.
        self.throws: tuple[type[BaseException], ...] = tuple(options.get("throws", ()))
        #: Check the arguments of every call against the function's signature.
        self.typing = bool(options.get("typing", True))
        celery_options.check_serializer(options.get("serializer"))
        # Accepted for Celery's sake; taskq keeps their meaning by design.
        self.ignore_result = bool(options.get("ignore_result", False))
        self.track_started = True
        #: Calls are unique by the task's name and arguments (``taskq.unique``).
        self.unique = bool(options.get("unique", False))
        self.__wrapped__ = run
        self.__doc__ = run.__doc__
        self.__name__ = getattr(run, "__name__", self.name)
        self.__module__ = run.__module__
        self.__qualname__ = getattr(run, "__qualname__", self.name)

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    @property
    def max_retries(self) -> int | None:
        return self.policy.max_retries

    @property
    def default_retry_delay(self) -> float:
        return self.policy.default_retry_delay

    @property
    def request(self) -> Request:
        """The running call's request; outside a run of this task, an empty one
        (``id`` ``None``, ``retries`` 0), as Celery's ``Task.request``."""
        request = current_request()
        if request is None or request.name != self.name:
            return EMPTY_REQUEST
        return request

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.bind:
            return self.run(self, *args, **kwargs)
        return self.run(*args, **kwargs)

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` if the function cannot take these arguments (Celery's
        ``typing``: ``celery/app/task.py``, ``Task.apply_async``, ``__header__``)."""
        if not self.typing:
            return
        try:
            signature = inspect.signature(self.run)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to check
            return
        if self.bind:
            parameters = list(signature.parameters.values())[1:]
            signature = signature.replace(parameters=parameters)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.name}() {error}") from None

    # Sending -------------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """Queue a call with these arguments; shortcut for ``apply_async``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | None = None,
        headers: Mapping[str, Any] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        unique_key: str | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Queue a call, in the current transaction of the task table's database.

        As in Celery (``celery/app/amqp.py``, ``as_task_v2``: ``if countdown:``), a
        falsy ``countdown`` leaves ``eta`` in force and a negative one means now; a
        naive ``eta`` or ``expires`` is UTC.
        """
        celery_options.check("apply_async", options, f"{self.name}.apply_async()")
        celery_options.check_serializer(options.get("serializer"))
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        self.check_arguments(args, kwargs)
        if not countdown:
            countdown = None
        elif isinstance(countdown, (int, float)) and not isinstance(countdown, bool):
            countdown = max(0.0, countdown)
        _limits(
            self.time_limit if time_limit is None else time_limit,
            self.soft_time_limit if soft_time_limit is None else soft_time_limit,
        )
        call = Call(
            name=self.name,
            args=args,
            kwargs=kwargs,
            queue=self.queue if queue is None else queue,
            priority=self.priority if priority is None else priority,
            countdown=countdown,
            eta=celery_moment("eta", eta),
            expires=celery_moment("expires", self.expires if expires is None else expires),
            headers=headers,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            unique_key=self.unique if unique_key is None else unique_key,
        )
        if getattr(django_settings, "CELERY_TASK_ALWAYS_EAGER", False):
            call.to_row()  # the same checks a queued call gets
            return self.apply(
                call.args,
                call.kwargs,
                headers=headers,
                queue=call.queue,
                priority=call.priority,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
            )
        task = enqueue(call)
        return AsyncResult(task.pk, task.created)

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
        **more_options: Any,
    ) -> Signature:
        """Return a signature: ``args`` and ``kwargs`` as given (not spread), and
        sending options, as Celery's ``task.signature(args, kwargs, **options)``."""
        return Signature(self, args or (), kwargs, {**(options or {}), **more_options}, immutable)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """Return a signature: this task with some arguments, to send later."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """Return an immutable signature: arguments given when sending are ignored."""
        return Signature(self, args, kwargs, immutable=True)

    # Running -------------------------------------------------------------------------

    def apply(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int = 0,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> EagerResult:
        """Run the task inline as a worker would, retries included, without waiting.

        Arguments take the same JSON round trip as a queued task. Exceptions propagate
        when ``CELERY_TASK_EAGER_PROPAGATES`` is set; otherwise they are logged and
        kept in the result. Time limits are carried in ``request`` but not enforced.
        """
        args = serialization.loads(serialization.dumps_args(args))
        kwargs = serialization.loads(serialization.dumps_kwargs(kwargs or {}))
        id = eager_id()
        retries = 0
        while True:
            request = Request(
                id=id,
                name=self.name,
                retries=retries,
                queue=queue,
                priority=priority,
                headers=None if headers is None else dict(headers),
                time_limit=self.time_limit if time_limit is None else time_limit,
                soft_time_limit=self.soft_time_limit
                if soft_time_limit is None
                else soft_time_limit,
                is_eager=True,
            )
            try:
                with running(request):
                    return EagerResult(id, self.execute(args, kwargs))
            except Retry:
                retries += 1
            except Exception as exc:
                if getattr(django_settings, "CELERY_TASK_EAGER_PROPAGATES", False):
                    raise
                if self.throws and isinstance(exc, self.throws):
                    logger.info("Eager task %s raised expected: %r", self.name, exc)
                else:
                    logger.exception("Eager task %s raised %r", self.name, exc)
                return EagerResult(id, exception=exc)

    def execute(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the body once, turning exceptions into retries per ``autoretry_for``."""
        try:
            if self.bind:
                return self.run(self, *args, **kwargs)
            return self.run(*args, **kwargs)
        except Retry:
            raise
        except BaseException as exc:
            if not self.policy.retries_automatically(exc):
                raise
            request = current_request()
            options = self.policy.automatic_retry_options(request.retries if request else 0)
            self.retry(exc=exc, **options)
            raise  # pragma: no cover  (retry always raises)

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
        *,
        throw: bool = True,
        args: Any = None,
        kwargs: Any = None,
        **options: Any,
    ) -> Retry:
        """Ask for this task to run again later; always raises.

        Raises ``Retry``, or, once ``max_retries`` retries were made, ``exc`` itself
        (so the task fails with the original traceback) or ``MaxRetriesExceededError``.
        A truthy ``countdown`` wins over ``eta``; without either, ``default_retry_delay``
        applies. Arguments cannot change: a call with other arguments is a new task.
        """
        refused = {"args": args, "kwargs": kwargs, **options}
        celery_options.check("retry", [k for k, v in refused.items() if v is not None], "retry()")
        if not throw:
            raise TypeError("retry(throw=False) is not supported: retry() always raises")
        request = current_request()
        if request is None or request.name != self.name:
            raise RuntimeError(f"{self.name}.retry() can only be called while it runs")
        if not countdown and eta is not None:
            countdown = None
        raise self.policy.retry(
            request.retries,
            exc,
            countdown=countdown,
            eta=None if eta is None else check_moment("eta", celery_moment("eta", eta)),
            max_retries=max_retries,
            label=f"{self.name}[{request.id}]",
        )


@overload
def shared_task(func: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def shared_task(**options: Any) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def shared_task(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a function as a task: ``@shared_task`` or ``@shared_task(**options)``."""

    def decorate(run: Callable[P, R]) -> TaskFunction[P, R]:
        task: TaskFunction[P, R] = TaskFunction(run, **options)
        registry.register(task)
        return task

    return decorate(func) if func is not None else decorate
