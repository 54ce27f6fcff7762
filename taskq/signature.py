"""Celery's signatures: a task with some arguments and options, to be sent later.

taskq has no workflows, so a signature is only ever sent (``delay``, ``apply_async``) or
called; its argument merging is Celery's (``celery/canvas.py``, ``Signature._merge``):
arguments given when sending go *before* the signature's own, keyword arguments given
then win, and an immutable signature (``.si()``) ignores them both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskq import celery_options

if TYPE_CHECKING:
    from taskq.celery import TaskFunction
    from taskq.results import AsyncResult


class Signature:
    """A task with some arguments and options, to be sent later (Celery's ``.s()``)."""

    def __init__(
        self,
        task: TaskFunction[Any, Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        immutable: bool = False,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options: dict[str, Any] = {}
        self.immutable = immutable
        self.set(**(options or {}))

    def __repr__(self) -> str:
        return f"{self.task.name}(*{self.args!r}, **{self.kwargs!r})"

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Add sending options (queue, priority, countdown, eta, expires, headers, time
        limits…); return self."""
        celery_options.check("apply_async", options, "Signature.set()")
        celery_options.check_serializer(options.get("serializer"))
        if immutable is not None:
            self.immutable = immutable
        self.options.update(options)
        return self

    def merged(
        self, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Return the arguments of a call with these partial arguments, as Celery's
        ``Signature._merge``: ``tuple(args) + tuple(self.args)``."""
        if self.immutable:
            return self.args, dict(self.kwargs)
        return (*(args or ()), *self.args), {**self.kwargs, **(kwargs or {})}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now, as Celery's ``signature()`` does."""
        args, kwargs = self.merged(args, kwargs)
        return self.task(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task with these arguments merged in and these options on top."""
        args, kwargs = self.merged(args, kwargs)
        return self.task.apply_async(args, kwargs, **{**self.options, **options})

    def clone(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """Return a copy with these partial arguments and options merged in."""
        args, kwargs = self.merged(args, kwargs)
        return Signature(self.task, args, kwargs, {**self.options, **options}, self.immutable)
