"""The registered tasks: the only functions a worker will ever run.

A task name read from the database is looked up here and nowhere else; it is never
imported, so a row written by hand cannot make a worker run arbitrary code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from taskq import discovery
from taskq.conf import settings
from taskq.retries import RetryPolicy


class RegisteredTask(Protocol):
    """What the worker and ``taskq_enqueue`` need of a registered task.

    ``taskq.celery.TaskFunction`` is one; ``taskq.django_tasks`` registers a wrapper
    around each ``django.tasks.Task`` that has the same shape.
    """

    @property
    def name(self) -> str: ...

    @property
    def policy(self) -> RetryPolicy: ...

    @property
    def acks_late(self) -> bool: ...

    @property
    def run(self) -> Callable[..., Any]: ...

    def execute(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any: ...

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
    ) -> Any: ...


_tasks: dict[str, RegisteredTask] = {}


class UnregisteredTask(LookupError):
    """A row names a task that no imported module registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unregistered task {name!r}")
        self.name = name


def register(task: RegisteredTask) -> None:
    """Register ``task`` under its name; a second, different function is an error."""
    existing = _tasks.get(task.name)
    if existing is not None and existing.run is not task.run:
        # Reloading a module (runserver, tests) registers an equal function again.
        same_origin = (existing.run.__module__, existing.run.__qualname__) == (
            task.run.__module__,
            task.run.__qualname__,
        )
        if not same_origin:
            raise ValueError(
                f"task name {task.name!r} is already used by "
                f"{existing.run.__module__}.{existing.run.__qualname__}"
            )
    _tasks[task.name] = task
    discovery.note_registered(task.name, task.run.__module__)


def get(name: str) -> RegisteredTask:
    """Return the registered task called ``name`` or raise ``UnregisteredTask``."""
    try:
        return _tasks[name]
    except KeyError:
        raise UnregisteredTask(name) from None


def names() -> list[str]:
    """Return the registered task names, sorted."""
    return sorted(_tasks)


def items() -> list[tuple[str, RegisteredTask]]:
    """Return (name, task) for every registered task, sorted by name."""
    return sorted(_tasks.items())


def rate_limits() -> dict[str, float]:
    """Return ``{name: starts per second}`` of the registered tasks with a
    ``rate_limit`` (a registered task without the attribute has none)."""
    limits = {name: getattr(task, "rate_limit", None) for name, task in _tasks.items()}
    return {name: rate for name, rate in sorted(limits.items()) if rate is not None}


def autodiscover() -> None:
    """Import every installed app's ``tasks`` module and each module in TASKQ_IMPORTS."""
    autodiscover_modules("tasks")
    for module in settings.IMPORTS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            # Only the listed module (or a package above it) missing is a setting's typo;
            # a missing import inside the module is the module's own error.
            if error.name is None or not (module + ".").startswith(error.name + "."):
                raise
            raise ImproperlyConfigured(
                f"TASKQ_IMPORTS names {module!r}, which cannot be imported: {error}"
            ) from error
