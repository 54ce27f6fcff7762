"""What ``delay()`` returns: a handle on a queued row, or the outcome of an eager run.

taskq keeps no results, so a queued task's handle has only its ``id`` and ``revoke()``.
An eager run (``CELERY_TASK_ALWAYS_EAGER``) has its outcome at hand, and its result
behaves as Celery's ``EagerResult`` (``celery/result.py``) so that tests written for
Celery pass unchanged.
"""

from __future__ import annotations

import traceback as tb
import uuid
from typing import Any

from taskq.models import Task

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"


class AsyncResult:
    """The handle ``delay`` returns. taskq keeps no results, so there is no ``get()``."""

    def __init__(self, id: int | str | None, created: bool = True) -> None:
        self.id = id
        #: False when a task holding the same unique key was found: ``id`` is that one's.
        self.created = created

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def revoke(self, terminate: bool = False) -> bool:
        """Delete the task if no worker has started it; return whether it was deleted.

        With ``terminate=True`` a running task is interrupted too (its worker's heartbeat
        reads the request) and its row deleted; return whether a task was found to stop.
        """
        if not isinstance(self.id, int):
            return False
        deleted, _ = Task.objects.queued().filter(pk=self.id).delete()
        if deleted or not terminate:
            return bool(deleted)
        asked = Task.objects.started().filter(pk=self.id)
        return bool(asked.update(cancel_requested_by="revoke(terminate=True)"))


def eager_id() -> str:
    """Return the id of an eager run: a fresh uuid string, as Celery's ``apply()``."""
    return str(uuid.uuid4())


class EagerResult(AsyncResult):
    """The outcome of a task run inline: Celery's ``EagerResult``.

    ``state`` is ``SUCCESS`` or ``FAILURE``: retries run inline until one of them, so
    ``RETRY`` is never seen. On failure ``result`` is the exception, as in Celery;
    ``exception`` is taskq's older name for it.
    """

    def __init__(self, id: str, value: Any = None, exception: BaseException | None = None) -> None:
        super().__init__(id)
        self.exception = exception
        self.result: Any = exception if exception is not None else value
        self.state = FAILURE if exception is not None else SUCCESS
        #: The formatted traceback of the failure, as Celery's ``traceback``.
        self.traceback: str | None = (
            None if exception is None else "".join(tb.format_exception(exception))
        )

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"

    @property
    def status(self) -> str:
        return self.state

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return self.state == SUCCESS

    def failed(self) -> bool:
        return self.state == FAILURE

    def get(self, timeout: float | None = None, propagate: bool = True, **kwargs: Any) -> Any:
        """Return the value, or raise the exception (return it with ``propagate=False``)."""
        if self.exception is not None and propagate:
            raise self.exception
        return self.result

    wait = get

    def forget(self) -> None:
        pass

    def revoke(self, terminate: bool = False) -> bool:
        return False
