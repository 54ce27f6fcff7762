"""Turn a call into a task row, checking every input before anything is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from django.conf import settings as django_settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from taskq import discovery, serialization, unique
from taskq.backends import engine_for
from taskq.bulk_insert import BulkInsert, SingleInsert
from taskq.clock import database_now
from taskq.conf import settings
from taskq.models import Task
from taskq.names import NAME_MAX_LENGTH, PRIORITY_RANGE, check_queue


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


def check_arguments_size(name: str, size: int, limit: int) -> None:
    """Refuse a call whose stored arguments would take more than ``limit`` bytes.

    A row is read whole by every claim of it and by the admin; megabytes of arguments
    belong in a model or a file, with their key passed to the task.
    """
    if size > limit:
        raise ValueError(
            f"the arguments of {name} take {size} bytes as JSON, more than "
            f"TASKQ_MAX_ARGUMENTS_SIZE ({limit} bytes); pass a key to the data instead"
        )


class Checked(NamedTuple):
    """A call's values, checked and ready for a row.

    ``eta`` and ``expires`` are either a datetime to store as given or a number of
    seconds after the database's "now" (``eta`` is ``0.0`` when the call gave neither a
    countdown nor an eta: due as soon as the row exists).
    """

    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    eta: float | datetime
    expires: float | datetime | None


_NO_KWARGS = serialization.dumps_kwargs({})


@dataclass
class Call:
    """Everything a row needs, as the caller gave it; ``checked`` checks it all."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    countdown: float | None = None
    eta: datetime | None = None
    expires: float | datetime | None = None
    #: Celery's ``headers``: JSON values stored with the task (``request.headers``).
    headers: Mapping[str, Any] | None = None
    #: Seconds; ``None`` leaves the task's own limit (if any) in force.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    #: While a task with this key is queued or started, this call writes nothing;
    #: ``True``: the key is the task's name with its arguments (``taskq.unique.key_for``).
    unique_key: str | bool | None = None

    def key(self) -> str | None:
        """Return the call's unique key, or ``None``; raise ``TypeError``/``ValueError``
        for one that cannot be a key."""
        if self.unique_key is None or self.unique_key is False:
            return None
        if self.unique_key is True:
            return unique.key_for(self.name, self.args, self.kwargs)
        return unique.check_key(self.unique_key)

    def extras(self) -> dict[str, Any]:
        """Return the columns beyond ``Checked`` this call sets, checked: ``headers``
        (as typed JSON) and the time limits. Most calls set none."""
        extras: dict[str, Any] = {}
        if self.headers is not None:
            extras["headers"] = serialization.dumps_headers(self.headers)
        for name in ("time_limit", "soft_time_limit"):
            value = getattr(self, name)
            if value is not None:
                if _seconds(name, value) <= 0:
                    raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
                extras[name] = float(value)
        return extras

    def checked(
        self, default_queue: str | None = None, max_arguments_size: int | None = None
    ) -> Checked:
        """Return the row's values or raise ``TypeError``/``ValueError``.

        As in Celery, ``countdown`` wins over ``eta``; ``expires`` is seconds from now
        or a datetime. A due time in the past means "run as soon as possible". Times
        relative to "now" are returned as seconds: "now" is the database's clock
        (``taskq.clock``), never this process's. ``default_queue`` and
        ``max_arguments_size`` save reading ``TASKQ_DEFAULT_QUEUE`` and
        ``TASKQ_MAX_ARGUMENTS_SIZE`` once per call when the caller has read them already.
        """
        if not isinstance(self.name, str):
            raise TypeError(f"task name must be a str, not {self.name!r}")
        if len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(f"task name is longer than {NAME_MAX_LENGTH} characters")
        eta: float | datetime
        if self.countdown is not None:
            eta = _seconds("countdown", self.countdown)
            if eta < 0:
                raise ValueError(f"countdown must not be negative, not {self.countdown!r}")
        elif self.eta is not None:
            eta = check_moment("eta", self.eta)
        else:
            eta = 0.0
        expires: float | datetime | None
        if self.expires is None:
            expires = None
        elif isinstance(self.expires, datetime):
            expires = check_moment("expires", self.expires)
        else:
            expires = _seconds("expires", self.expires)
        if self.queue is not None:
            queue = self.queue
        elif default_queue is not None:
            queue = default_queue
        else:
            queue = settings.DEFAULT_QUEUE
        args = serialization.dumps_args(self.args)
        kwargs = (
            _NO_KWARGS
            if type(self.kwargs) is dict and not self.kwargs
            else serialization.dumps_kwargs(self.kwargs)
        )
        check_arguments_size(
            self.name,
            len(args) + len(kwargs),  # ASCII (json.dumps escapes the rest): chars are bytes
            settings.MAX_ARGUMENTS_SIZE if max_arguments_size is None else max_arguments_size,
        )
        return Checked(
            name=self.name,
            queue=check_queue(queue),
            priority=check_priority(self.priority),
            args=args,
            kwargs=kwargs,
            eta=eta,
            expires=expires,
        )

    def to_row(self) -> Task:
        """Return an unsaved ``Task`` or raise ``TypeError``/``ValueError``.

        The checks are ``checked``'s. Times relative to now become expressions of the
        database's clock, so a row saved with a countdown is due that long after the
        database wrote it, whatever this process's clock says.
        """
        values = self.checked()
        return Task(
            **self.extras(),
            name=values.name,
            queue=values.queue,
            priority=values.priority,
            args=values.args,
            kwargs=values.kwargs,
            eta=_moment(values.eta),
            expires=None if values.expires is None else _moment(values.expires),
        )


def _moment(value: float | datetime) -> Any:
    """A checked time as a value for the model: seconds become the database's clock."""
    return value if isinstance(value, datetime) else database_now(value)


def enqueue(call: Call) -> Task:
    """Write one task row in the current transaction and return it.

    A row due now or at a given moment, without expiry (most calls), is one prepared
    ``INSERT`` (``SingleInsert``); the rest go through the ORM. A call with a unique key
    whose key another task holds writes nothing and returns a ``Task`` with that task's
    ``pk`` and ``created = False`` (``write_unique``).
    """
    values = call.checked()
    discovery.warn_if_not_imported(call.name)
    unique_key = call.key()
    if unique_key is not None:
        return write_unique(call, unique_key, router.db_for_write(Task))
    countdown = not isinstance(values.eta, datetime) and values.eta != 0
    if countdown or values.expires is not None or call.extras():
        task = call.to_row()
        task.save(force_insert=True)
        return task
    using = router.db_for_write(Task)
    connection = connections[using]
    key = (using, django_settings.USE_TZ)
    insert = _single_inserts.get(connection)
    if insert is None or insert[0] != key:
        insert = _single_inserts[connection] = (key, SingleInsert(connection, Checked._fields))
    return insert[1].write(values, using)


def _without_extras(call: Call) -> Call:
    """Return ``call``, refusing what ``enqueue_many``'s statements do not write."""
    if call.headers is not None or call.time_limit is not None or call.soft_time_limit is not None:
        raise TypeError(
            "enqueue_many() does not write headers or time limits; use enqueue() for such calls"
        )
    return call


#: How often a refused unique insert is tried again when its key's holder is gone by
#: the time its id is read (it finished in between): each time means another task won.
UNIQUE_ATTEMPTS = 10


def write_unique(call: Call, key: str, using: str) -> Task:
    """Write ``call``'s row holding ``key``, unless a task holds it; return the row, or
    one with the holder's ``pk`` and ``created = False``.

    The database decides, with the unique index on ``unique_key_hash``: there is no
    read before the write, which concurrent callers could all pass. The insert runs in
    a savepoint, so a refusal leaves the caller's transaction usable. On PostgreSQL and
    MySQL a second insert of a key whose first insert is not committed yet waits for
    that transaction: it is refused if it commits, written if it rolls back.
    """
    digest = unique.digest(key)
    engine = engine_for(connections[using])
    for _ in range(UNIQUE_ATTEMPTS):
        task = call.to_row()
        task.unique_key, task.unique_key_hash = key, digest
        try:
            with transaction.atomic(using=using):
                task.save(force_insert=True, using=using)
            return task
        except IntegrityError:
            holder = engine.unique_key_holder(digest)
            if holder is None:
                continue
        existing = Task(pk=holder, name=call.name, unique_key=key, unique_key_hash=digest)
        existing.created = False
        existing._state.adding = False
        existing._state.db = using
        return existing
    raise IntegrityError(f"unique_key {key!r}: refused {UNIQUE_ATTEMPTS} times, held by none")


#: Per connection (so per thread), the statement ``enqueue`` sends, and what it was
#: built for.
_single_inserts: WeakKeyDictionary[Any, tuple[tuple[str, bool], SingleInsert]] = WeakKeyDictionary()


def enqueue_many(calls: Iterable[Call], *, batch_size: int = 1000, using: str | None = None) -> int:
    """Write many task rows in as few round trips as the database allows; return how many.

    Every call is checked before the first row is written: one bad call writes nothing.
    The rows are written in one transaction (the caller's, if there is one) on ``using``,
    by default the database Django's routers choose for writing tasks, at most
    ``batch_size`` rows per statement, without a ``Task`` instance per call. The
    database's clock is read once: every countdown and ``expires`` in seconds counts
    from that moment, and a call without a due time is due from it. On PostgreSQL the
    workers of each queue written to are woken when the transaction commits (by a
    trigger: see the migration ``0004_notify_trigger``).

    Calls with a unique key are written one by one after the others, each as
    ``enqueue`` writes it (``write_unique``), and a call whose key is held (by a task
    already queued, or by an earlier call of the same batch) writes nothing and is not
    counted.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    default_queue, max_size = settings.DEFAULT_QUEUE, settings.MAX_ARGUMENTS_SIZE
    checked: list[Checked] = []
    keyed: list[tuple[Call, str]] = []
    for call in calls:
        values = _without_extras(call).checked(default_queue, max_size)
        key = call.key()
        if key is None:
            checked.append(values)
        else:
            keyed.append((call, key))
    if not checked and not keyed:
        return 0
    alias = router.db_for_write(Task) if using is None else using
    written = len(checked)
    with transaction.atomic(using=alias, savepoint=False):
        if checked:
            BulkInsert(connections[alias], Checked._fields).write(checked, batch_size)
        for call, key in keyed:
            written += write_unique(call, key, alias).created
    return written
