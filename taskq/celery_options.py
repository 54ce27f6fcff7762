"""Every option Celery's ``shared_task``, ``apply_async`` and ``retry`` take, and what
taskq does with it: one table, read by ``taskq.celery`` to accept or refuse an option,
and rendered into the README's "Coming from Celery" table (a test keeps them equal).

The rule: an option taskq implements is ``SUPPORTED``; an option whose meaning taskq
keeps by design (``ignore_result``: taskq keeps no results anyway) is ``ACCEPTED`` and
changes nothing; every other option is ``REFUSED`` with a ``TypeError`` that names it and
says why taskq has no equivalent, so a Celery project learns at import time, not in
production, what it relied on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Decision = Literal["supported", "accepted", "refused"]
#: Where an option is given: ``@shared_task(...)``, ``apply_async(...)`` (also
#: ``Signature.set()``), or ``task.retry(...)`` (also ``retry_kwargs``).
Place = Literal["shared_task", "apply_async", "retry"]

SUPPORTED: Decision = "supported"
ACCEPTED: Decision = "accepted"
REFUSED: Decision = "refused"


@dataclass(frozen=True)
class Option:
    name: str
    places: tuple[Place, ...]
    decision: Decision
    #: What taskq does with it, or why it has no equivalent (the README's words).
    note: str


_T: tuple[Place, ...] = ("shared_task",)
_A: tuple[Place, ...] = ("apply_async",)
_R: tuple[Place, ...] = ("retry",)
_TA: tuple[Place, ...] = ("shared_task", "apply_async")
_AR: tuple[Place, ...] = ("apply_async", "retry")

_NO_BROKER = "taskq has no broker: a task is a row, and `queue` is the only routing"
_NO_CANVAS = (
    "taskq has no workflows: queue the next task at the end of this one (in the same transaction)"
)
_NO_RESULTS = "taskq keeps no results, so there is nothing to configure"

OPTIONS: tuple[Option, ...] = (
    # shared_task --------------------------------------------------------------------
    Option("name", _T, SUPPORTED, "the name stored in the row; default `<module>.<qualname>`"),
    Option(
        "bind",
        _T,
        SUPPORTED,
        "the function gets the task as `self`: `self.request`, `self.retry()`, `self.name`",
    ),
    Option(
        "base",
        _T,
        REFUSED,
        "taskq has no task classes: use `bind=True` for `self.request` and `self.retry()`, "
        "a plain function or decorator for shared code, and `taskq.signals` for "
        "`on_success`/`on_failure` hooks",
    ),
    Option("queue", _TA, SUPPORTED, "the queue of the task's calls"),
    Option("priority", _TA, SUPPORTED, "higher runs first; -32768 to 32767"),
    Option("expires", _TA, SUPPORTED, "seconds or a datetime; an expired task is dropped"),
    Option("max_retries", ("shared_task", "retry"), SUPPORTED, "default 3; `None`: forever"),
    Option("default_retry_delay", _T, SUPPORTED, "default 180 seconds"),
    Option("autoretry_for", _T, SUPPORTED, "exception classes that retry the task"),
    Option("dont_autoretry_for", _T, SUPPORTED, "exception classes that never retry it"),
    Option("retry_kwargs", _T, SUPPORTED, "`retry()` options of automatic retries"),
    Option("retry_backoff", _T, SUPPORTED, "`min(retry_backoff_max, factor * 2**retries)`"),
    Option("retry_backoff_max", _T, SUPPORTED, "default 600 seconds"),
    Option("retry_jitter", _T, SUPPORTED, "full jitter, default on"),
    Option("acks_late", _T, SUPPORTED, "a task whose worker died is queued again"),
    Option(
        "time_limit",
        _TA,
        SUPPORTED,
        "seconds; past it the task fails with `taskq.celery.TimeLimitExceeded`",
    ),
    Option(
        "soft_time_limit",
        _TA,
        SUPPORTED,
        "seconds; past it `taskq.celery.SoftTimeLimitExceeded` is raised in the task",
    ),
    Option(
        "throws",
        _T,
        SUPPORTED,
        "expected exceptions: the task fails, logged at INFO without a traceback",
    ),
    Option(
        "typing",
        _T,
        SUPPORTED,
        "default on: `delay()` checks the arguments against the function's signature",
    ),
    Option("ignore_result", _TA, ACCEPTED, _NO_RESULTS),
    Option("store_errors_even_if_ignored", _T, ACCEPTED, "a failed task's row is always kept"),
    Option("track_started", _T, ACCEPTED, "the start of every task is recorded (`started_at`)"),
    Option(
        "serializer",
        _TA,
        ACCEPTED,
        'only `"json"`: arguments are always typed JSON; any other is refused',
    ),
    Option("compression", _TA, ACCEPTED, "a row is not a message: there is nothing to compress"),
    Option(
        "rate_limit",
        _T,
        SUPPORTED,
        '`"10/s"`, `"10/m"`, `"10/h"` or a number (per second): starts of the task spaced '
        "across all workers, not per worker as in Celery (see [Per-task rate limits]"
        "(#per-task-rate-limits))",
    ),
    Option(
        "acks_on_failure_or_timeout",
        _T,
        REFUSED,
        "a failed task is always kept, in the Failed view, for a human to retry or delete",
    ),
    Option(
        "reject_on_worker_lost",
        _T,
        REFUSED,
        "`acks_late=True` alone re-queues a task whose worker died",
    ),
    Option("backend", _T, REFUSED, "taskq has no result backends"),
    Option("store_eager_result", _T, REFUSED, "taskq has no result backends"),
    Option("trail", _T, REFUSED, "taskq keeps no results, so no children to trail"),
    Option("send_events", _T, REFUSED, "taskq has no event stream; use `taskq.signals`"),
    Option("request_stack", _T, REFUSED, "taskq has no task classes"),
    Option("Request", _T, REFUSED, "taskq has no task classes"),
    Option("Strategy", _T, REFUSED, "taskq has no task classes"),
    Option("abstract", _T, REFUSED, "taskq has no task classes"),
    Option("lazy", _T, REFUSED, "taskq has no app object to finalize"),
    Option("filter", _T, REFUSED, "taskq has no task classes"),
    # apply_async --------------------------------------------------------------------
    Option("countdown", _AR, SUPPORTED, "seconds from now; wins over `eta` unless 0/None"),
    Option("eta", _AR, SUPPORTED, "a datetime; a naive one is UTC, as in Celery"),
    Option(
        "headers",
        _A,
        SUPPORTED,
        "JSON values stored with the task: `self.request.headers`, shown in the admin",
    ),
    Option(
        "task_id",
        _A,
        REFUSED,
        "the id is the row's primary key, given by the database; use `result.id`",
    ),
    Option("link", _A, REFUSED, _NO_CANVAS),
    Option("link_error", _A, REFUSED, _NO_CANVAS),
    Option("chain", _A, REFUSED, _NO_CANVAS),
    Option("group_id", _A, REFUSED, _NO_CANVAS),
    Option("add_to_parent", _A, REFUSED, "taskq keeps no results, so no parent to add to"),
    Option(
        "shadow",
        _A,
        REFUSED,
        "the row shows the task's registered name, which the worker runs",
    ),
    Option(
        "retry",
        _A,
        ACCEPTED,
        "enqueueing is an INSERT in your transaction: it succeeds or raises at once",
    ),
    Option(
        "retry_policy",
        _A,
        ACCEPTED,
        "enqueueing is an INSERT in your transaction: it succeeds or raises at once",
    ),
    Option("exchange", _A, REFUSED, _NO_BROKER),
    Option("routing_key", _A, REFUSED, _NO_BROKER),
    Option("producer", _A, REFUSED, _NO_BROKER),
    Option("connection", _A, REFUSED, _NO_BROKER),
    Option("router", _A, REFUSED, _NO_BROKER),
    Option("delivery_mode", _A, REFUSED, _NO_BROKER + " (rows are always durable)"),
    Option("mandatory", _A, REFUSED, _NO_BROKER),
    Option("expiration", _A, REFUSED, _NO_BROKER + "; use `expires`"),
    # retry -----------------------------------------------------------------------------
    Option("exc", _R, SUPPORTED, "the error recorded; raised itself once retries run out"),
    Option("throw", _R, SUPPORTED, "`True` only: `retry()` always raises"),
    Option(
        "args",
        _R,
        REFUSED,
        "a retry runs the same row again: queue a new call for other arguments",
    ),
    Option(
        "kwargs",
        _R,
        REFUSED,
        "a retry runs the same row again: queue a new call for other arguments",
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


#: taskq's own options, which Celery has not (so they are not in the Celery table).
OWN_OPTIONS: dict[Place, tuple[str, ...]] = {
    "shared_task": ("unique",),
    "apply_async": ("unique_key",),
}


def check(place: Place, names: Iterable[str], who: str) -> None:
    """Raise ``TypeError`` for the first option in ``names`` taskq does not take at
    ``place``, naming it and saying why."""
    for name in names:
        if name in OWN_OPTIONS.get(place, ()):
            continue
        option = BY_NAME.get(name)
        if (
            place == "retry"
            and option is not None
            and "apply_async" in option.places
            and "retry" not in option.places
        ):
            raise TypeError(
                f"{who} does not take {name!r}: a retry queues the same row again, "
                "with the options it was sent with"
            )
        if option is None or place not in option.places:
            raise TypeError(
                f"{who} got an unknown option {name!r}; Celery has no such {place} option "
                "either (see README: Coming from Celery)"
            )
        if option.decision == REFUSED:
            raise TypeError(f"{who} does not take {name!r}: {option.note}")


def check_serializer(serializer: Any) -> None:
    """Refuse a serializer other than JSON: arguments are always taskq's typed JSON."""
    if serializer is not None and serializer != "json":
        raise TypeError(
            f"serializer={serializer!r}: taskq stores arguments as typed JSON only "
            "(never pickle); use serializer='json' or leave it out"
        )


def known(place: Place) -> tuple[str, ...]:
    """Return the options taskq takes (supported or accepted, or its own) at ``place``."""
    celery = tuple(o.name for o in OPTIONS if place in o.places and o.decision != REFUSED)
    return celery + OWN_OPTIONS.get(place, ())


def markdown_table() -> str:
    """Return the README's table: one row per option, in this module's order."""
    lines = ["| option | where | taskq |", "| --- | --- | --- |"]
    for option in OPTIONS:
        places = ", ".join(f"`{place}`" for place in option.places)
        lines.append(f"| `{option.name}` | {places} | {option.decision}: {option.note} |")
    return "\n".join(lines)
