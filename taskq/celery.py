"""Celery's task API (``shared_task``, ``delay``, ``apply_async``, ``.s()``, retries).

The semantics follow Celery 5 where Celery has them; what taskq leaves out on purpose
(results, bound tasks, chains) is not here at all rather than half there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar, overload

from django.conf import settings as django_settings

from taskq import registry, serialization
from taskq.context import (
    Request,
    Retry,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    current_request,
    running,
)
from taskq.enqueue import Call, check_moment, enqueue
from taskq.models import Task
from taskq.retries import MaxRetriesExceededError, RetryPolicy

__all__ = [
    "AsyncResult",
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
#: The options ``shared_task`` accepts, with Celery's defaults.
TASK_OPTIONS: dict[str, Any] = {
    "name": None,
    "queue": None,
    "priority": 0,
    **dict.fromkeys(RETRY_OPTIONS),
    "expires": None,
    "acks_late": False,
    "time_limit": None,
    "soft_time_limit": None,
    "unique": False,
}
APPLY_OPTIONS = ("countdown", "eta", "expires", "queue", "priority", "unique_key")


class AsyncResult:
    """The handle ``delay`` returns. taskq keeps no results, so there is no ``get()``."""

    def __init__(self, id: int | None, created: bool = True) -> None:
        self.id = id
        self.created = created  # False: a task holding the unique key had this id

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def revoke(self, terminate: bool = False) -> bool:
        """Delete the task if no worker has started it; return whether it was deleted.

        With ``terminate=True`` a running task is interrupted too (its worker's heartbeat
        reads the request) and its row deleted; return whether a task was found to stop.
        """
        if self.id is None:
            return False
        deleted, _ = Task.objects.queued().filter(pk=self.id).delete()
        if deleted or not terminate:
            return bool(deleted)
        asked = Task.objects.started().filter(pk=self.id)
        return bool(asked.update(cancel_requested_by="revoke(terminate=True)"))


class EagerResult(AsyncResult):
    """The result of a task run inline with ``CELERY_TASK_ALWAYS_EAGER``."""

    def __init__(self, value: Any = None, exception: BaseException | None = None) -> None:
        super().__init__(None)
        self.result = value
        self.exception = exception

    def __repr__(self) -> str:
        return f"<EagerResult: {self.exception!r}>" if self.exception else "<EagerResult>"

    def successful(self) -> bool:
        return self.exception is None

    def revoke(self, terminate: bool = False) -> bool:
        return False


class TaskFunction(Generic[P, R]):
    """A function registered as a task; call it to run it here and now."""

    def __init__(self, run: Callable[P, R], **options: Any) -> None:
        unknown = set(options) - set(TASK_OPTIONS)
        if unknown:
            raise TypeError(
                f"shared_task() got unknown options {sorted(unknown)}; "
                f"taskq knows {sorted(TASK_OPTIONS)}"
            )
        merged = {**TASK_OPTIONS, **options}
        self.run = run
        self.name: str = merged["name"] or f"{run.__module__}.{run.__qualname__}"
        self.queue: str | None = merged["queue"]
        self.priority: int = merged["priority"]
        retry_options = {name: options[name] for name in RETRY_OPTIONS if name in options}
        for name in ("autoretry_for", "dont_autoretry_for"):
            if name in retry_options:
                retry_options[name] = tuple(retry_options[name])
        #: When the task runs again after an error, if ever.
        self.policy = RetryPolicy(**retry_options)
        self.expires: float | datetime | None = merged["expires"]
        #: Safe to run again: if its worker dies mid-run, the task is queued again.
        self.acks_late: bool = bool(merged["acks_late"])
        #: Seconds after which a run is interrupted and failed (``None``: the setting).
        self.time_limit: float | None = merged["time_limit"]
        #: Seconds after which ``SoftTimeLimitExceeded`` is raised in the body.
        self.soft_time_limit: float | None = merged["soft_time_limit"]
        self.unique: bool = bool(merged["unique"])  # the key: name and arguments
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

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.run(*args, **kwargs)

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
        unique_key: str | None = None,
    ) -> AsyncResult:
        """Queue a call, in the current transaction of the task table's database."""
        call = Call(
            name=self.name,
            args=() if args is None else args,
            kwargs={} if kwargs is None else kwargs,
            queue=self.queue if queue is None else queue,
            priority=self.priority if priority is None else priority,
            countdown=countdown,
            eta=eta,
            expires=self.expires if expires is None else expires,
            unique_key=self.unique if unique_key is None else unique_key,
        )
        if getattr(django_settings, "CELERY_TASK_ALWAYS_EAGER", False):
            call.to_row()  # the same checks a queued call gets
            return self.apply(call.args, call.kwargs)
        task = enqueue(call)
        return AsyncResult(task.pk, task.created)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """Return a signature: this task with some arguments, to send later."""
        return Signature(self, args, kwargs)

    signature = s

    # Running -------------------------------------------------------------------------

    def apply(self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> Any:
        """Run the task inline as a worker would, retries included, without waiting.

        Arguments take the same JSON round trip as a queued task. Exceptions propagate
        when ``CELERY_TASK_EAGER_PROPAGATES`` is set; otherwise they are logged.
        """
        args = serialization.loads(serialization.dumps_args(args))
        kwargs = serialization.loads(serialization.dumps_kwargs(kwargs or {}))
        retries = 0
        while True:
            try:
                with running(Request(id=None, name=self.name, retries=retries)):
                    return EagerResult(self.execute(args, kwargs))
            except Retry:
                retries += 1
            except Exception as exc:
                if getattr(django_settings, "CELERY_TASK_EAGER_PROPAGATES", False):
                    raise
                logger.exception("Eager task %s raised %r", self.name, exc)
                return EagerResult(exception=exc)

    def execute(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the body once, turning exceptions into retries per ``autoretry_for``."""
        try:
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
    ) -> Retry:
        """Ask for this task to run again later; always raises.

        Raises ``Retry``, or, once ``max_retries`` retries were made, ``exc`` itself
        (so the task fails with the original traceback) or ``MaxRetriesExceededError``.
        ``countdown`` wins over ``eta``; without either, ``default_retry_delay`` applies.
        Arguments cannot change: a call with other arguments is a new task.
        """
        request = current_request()
        if request is None or request.name != self.name:
            raise RuntimeError(f"{self.name}.retry() can only be called while it runs")
        raise self.policy.retry(
            request.retries,
            exc,
            countdown=countdown,
            eta=None if eta is None else check_moment("eta", eta),
            max_retries=max_retries,
            label=f"{self.name}[{request.id}]",
        )


class Signature:
    """A task with some arguments and options, to be sent later (Celery's ``.s()``)."""

    def __init__(
        self,
        task: TaskFunction[Any, Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options: dict[str, Any] = {}
        self.set(**(options or {}))

    def __repr__(self) -> str:
        return f"{self.task.name}(*{self.args!r}, **{self.kwargs!r})"

    def set(self, **options: Any) -> Signature:
        """Add sending options (queue, priority, countdown, eta, expires); return self."""
        unknown = set(options) - set(APPLY_OPTIONS)
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)}; use {list(APPLY_OPTIONS)}")
        self.options.update(options)
        return self

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task with these arguments appended and options merged in."""
        return self.task.apply_async(
            (*self.args, *(args or ())),
            {**self.kwargs, **(kwargs or {})},
            **{**self.options, **options},
        )


@overload
def shared_task(func: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def shared_task(**options: Any) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def shared_task(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a function as a task: ``@shared_task`` or ``@shared_task(**options)``."""

    def decorate(run: Callable[P, R]) -> TaskFunction[P, R]:
        task = TaskFunction(run, **options)
        registry.register(task)
        return task

    return decorate(func) if func is not None else decorate
