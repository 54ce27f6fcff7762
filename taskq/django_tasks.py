"""taskq as a backend of Django's Tasks framework (Django >= 6.0).

``TASKS = {"default": {"BACKEND": "taskq.django_tasks.TaskqBackend"}}`` makes
``@django.tasks.task`` functions write a taskq row in the caller's transaction, and
``taskq_worker`` runs them like any other task: the same claim by priority and due
time, the same Failed view for a task that raised.

The worker never imports a path it reads from the database. Django calls the backend's
``validate_task`` when a ``@task`` is decorated, so that is where each task is entered
in taskq's registry, under its ``module_path``; a worker knows exactly the Django tasks
its autodiscovered modules (apps' ``tasks`` modules, ``TASKQ_IMPORTS``) define.

taskq keeps no results (a succeeded row is deleted), so ``supports_get_result`` is
false and ``get_result`` raises ``NotImplementedError`` with Django's own message.

In the worker, the ``TaskResult`` a task sees (``context.task_result`` and the
signals) is the one ``enqueue()`` returned: same id, ``enqueued_at`` (the row's
``created_at``), and the task as enqueued, with its ``using()`` options read back from
the row (priority, queue, and ``run_after``: the row's ETA when the task was deferred).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from traceback import format_exception
from typing import Any

from django.apps import apps
from django.core import checks
from django.dispatch import Signal
from django.utils import timezone
from django.utils.json import normalize_json

try:
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError as error:  # pragma: no cover  (Django < 6.0)
    raise ImportError(
        "taskq.django_tasks needs Django's Tasks framework (Django >= 6.0); "
        "use taskq.celery.shared_task on older versions"
    ) from error

from taskq import registry
from taskq.context import Request, Retry, current_request
from taskq.enqueue import Call, enqueue
from taskq.names import NAME_MAX_LENGTH, check_queue
from taskq.retries import RetryPolicy

__all__ = ["DjangoTask", "TaskqBackend"]

logger = logging.getLogger("taskq.django_tasks")

#: A header that says the row's ETA is the task's ``run_after`` (not "due now").
RUN_AFTER_HEADER = "django.run_after"

NO_RESULTS = (
    # Django's wording (django/tasks/backends/base.py, BaseTaskBackend.get_result),
    # then why.
    "This backend does not support retrieving or refreshing results. "
    "taskq keeps no task results: a task's row is deleted when it succeeds and kept "
    "only if it fails (see the Failed view of the admin). Store what a task produces "
    "in a model of your own."
)


def _send(signal: Signal, sender: type, result: TaskResult) -> None:
    """Send one of Django's task signals; a receiver that raises is logged, not fatal."""
    for receiver, response in signal.send_robust(sender, task_result=result):
        if isinstance(response, Exception):
            logger.error(
                "Receiver %r of a django.tasks signal raised %r for task %s",
                receiver,
                response,
                result.id,
                exc_info=response,
            )


class DjangoTask:
    """A ``django.tasks.Task`` as taskq's registry holds it: runnable by a worker.

    The worker calls ``execute`` inside ``taskq.context.running``, so the row's id, retry
    count and the worker's identity come from ``current_request()``.
    """

    #: Django's tasks are never run again by taskq on their own.
    policy = RetryPolicy(max_retries=0)
    acks_late = False

    def __init__(self, task: Task[..., Any]) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"<django task: {self.name}>"

    @property
    def name(self) -> str:
        return self.task.module_path

    @property
    def run(self) -> Any:
        return self.task.func

    def execute(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run the task once as Django's backends do: context, async, signals.

        ``task_started`` and ``task_finished`` are sent like Django's own backends send
        them; the outcome itself (delete or keep as failed) is the worker's to record,
        so an exception is re-raised after ``task_finished``.
        """
        request = current_request()
        retries = request.retries if request else 0
        started = timezone.now()
        result = TaskResult(
            task=self.as_enqueued(request),
            id="" if request is None or request.id is None else str(request.id),
            status=TaskResultStatus.RUNNING,
            enqueued_at=request.enqueued_at if request else None,
            started_at=started,
            last_attempted_at=started,
            finished_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            backend=self.task.backend,
            errors=[],
            # taskq does not record which worker ran earlier attempts; their entries
            # are empty, so ``attempts`` (the list's length) still counts them.
            worker_ids=[*([""] * retries), (request.worker if request else None) or ""],
        )
        sender = type(self.task.get_backend())
        _send(task_started, sender, result)
        try:
            if self.task.takes_context:
                value = self.task.call(
                    TaskContext(task_result=result), *result.args, **result.kwargs
                )
            else:
                value = self.task.call(*result.args, **result.kwargs)
            # As Django's ImmediateBackend: a value that is not JSON fails the task.
            object.__setattr__(result, "_return_value", normalize_json(value))
        except Retry:
            raise  # not finished: it runs again
        except BaseException as exc:
            cls = type(exc)
            result.errors.append(
                TaskError(
                    exception_class_path=f"{cls.__module__}.{cls.__qualname__}",
                    traceback="".join(format_exception(cls, exc, exc.__traceback__)),
                )
            )
            self._finish(result, TaskResultStatus.FAILED)
            _send(task_finished, sender, result)
            raise
        self._finish(result, TaskResultStatus.SUCCESSFUL)
        _send(task_finished, sender, result)

    def as_enqueued(self, request: Request | None) -> Task[..., Any]:
        """Return the task as it was enqueued: the decorated task with the row's
        priority, queue and (when it was deferred) ``run_after``."""
        if request is None:
            return self.task
        run_after = request.eta if (request.headers or {}).get(RUN_AFTER_HEADER) else None
        changes: dict[str, Any] = {}
        if request.priority != self.task.priority:
            changes["priority"] = request.priority
        if request.queue is not None and request.queue != self.task.queue_name:
            changes["queue_name"] = request.queue
        if run_after != self.task.run_after:
            changes["run_after"] = run_after
        # dataclasses.replace, not using(): a row read back is not validated again
        # (a queue may have left QUEUES since).
        return replace(self.task, **changes) if changes else self.task

    @staticmethod
    def _finish(result: TaskResult, status: TaskResultStatus) -> None:
        object.__setattr__(result, "status", status)
        object.__setattr__(result, "finished_at", timezone.now())

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
    ) -> TaskResult:
        """Enqueue with Celery's option names (for ``taskq_enqueue``), through Django.

        Going through ``Task.using().enqueue()`` keeps Django's checks (``QUEUES``,
        the priority range) and its ``task_enqueued`` signal.
        """
        if expires is not None:
            raise TypeError("Django tasks have no expiry; drop expires")
        run_after = eta
        if countdown is not None:
            if isinstance(countdown, bool) or not isinstance(countdown, (int, float)):
                raise TypeError(f"countdown must be a number of seconds, not {countdown!r}")
            if countdown < 0:
                raise ValueError(f"countdown must not be negative, not {countdown!r}")
            run_after = timezone.now() + timedelta(seconds=countdown)
        task = self.task.using(priority=priority, queue_name=queue, run_after=run_after)
        return task.enqueue(*(args or ()), **(kwargs or {}))


class TaskqBackend(BaseTaskBackend):
    """Queue Django tasks as taskq rows, in the caller's transaction."""

    supports_defer = True
    supports_priority = True
    supports_async_task = True
    supports_get_result = False

    def validate_task(self, task: Task[..., Any]) -> None:
        """Check ``task`` as Django does, then as taskq does, and register it.

        Called by Django for every ``@task`` (and every ``.using()`` copy), in the web
        process and in the worker alike; registering is what lets a worker run it.
        """
        super().validate_task(task)
        try:
            check_queue(task.queue_name)
        except ValueError as error:
            raise InvalidTask(str(error)) from None
        if len(task.module_path) > NAME_MAX_LENGTH:
            raise InvalidTask(
                f"Task path {task.module_path!r} is longer than {NAME_MAX_LENGTH} characters."
            )
        try:
            existing = registry.get(task.module_path)
        except registry.UnregisteredTask:
            existing = None
        # ``.using()`` copies share the function: the decorated task stays registered.
        if not (isinstance(existing, DjangoTask) and existing.run is task.func):
            try:
                registry.register(DjangoTask(task))
            except ValueError as error:
                raise InvalidTask(str(error)) from None

    def enqueue(
        self, task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult:
        """Write the task's row in the current transaction; return a READY result.

        The result's ``id`` is the row's primary key, as a string. Arguments must be
        what Django's Tasks framework accepts (JSON values); taskq's checks apply too.
        """
        self.validate_task(task)
        result = TaskResult(
            task=task,
            id="",
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=list(args),  # normalized to JSON values by TaskResult
            kwargs=dict(kwargs),
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        row = enqueue(
            Call(
                name=task.module_path,
                args=result.args,
                kwargs=result.kwargs,
                queue=task.queue_name,
                priority=task.priority,
                eta=task.run_after,
                headers=None if task.run_after is None else {RUN_AFTER_HEADER: True},
            )
        )
        object.__setattr__(result, "id", str(row.pk))
        object.__setattr__(result, "enqueued_at", row.created_at)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        raise NotImplementedError(NO_RESULTS)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = []
        if not apps.is_installed("taskq"):
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] uses taskq, but 'taskq' is not in INSTALLED_APPS.",
                    id="taskq.E010",
                )
            )
        if self.options:
            messages.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] has OPTIONS {sorted(self.options)}, but "
                    "TaskqBackend takes none; taskq's settings are the TASKQ_* settings.",
                    id="taskq.E011",
                )
            )
        return messages
