"""Schedules (``TASKQ_SCHEDULE``): tasks queued at cron times or fixed intervals, by the
workers themselves, each slot exactly once however many workers run.

There is no scheduler process. Every worker, between tasks and at most about once a
second (``Scheduler.maintain``), reads the schedule table (one row per entry: its name
and the last slot queued) and the database's clock. For an entry whose next slot has
come it moves the row from the slot it read to the new one with a compare-and-set
``UPDATE … WHERE name = %s AND last_slot = %s`` and, only if that updated the row,
writes the task, in the same transaction: of racing workers one wins and the others
update nothing; a worker that dies between the two statements commits neither, and the
next worker to look queues the slot. Slots are judged by the database's clock, so a
worker whose clock is off queues nothing early.

Slots: a cron entry's are the times its five-field expression matches in ``TIME_ZONE``
(parsed by ``cronsim``: the extra ``taskq[cron]``); an interval entry's are the
multiples of its seconds since the Unix epoch, so every worker agrees on them without
being told when the schedule began. A new entry starts from the latest slot that has
passed, without queuing it. Slots missed while no worker ran are queued once, as the
latest of them (``"catch_up": "all"``: each of them). The task's row has the slot as
its ``eta``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from taskq import serialization
from taskq.names import NAME_MAX_LENGTH, PRIORITY_RANGE, QUEUE_MAX_LENGTH

logger = logging.getLogger("taskq.schedules")

#: What an entry may say.
ENTRY_KEYS = ("task", "cron", "every", "args", "kwargs", "queue", "priority", "catch_up")
#: ``"once"``: missed slots are queued as one task, for the latest; ``"all"``: each one.
CATCH_UP = ("once", "all")
#: The longest entry name (the schedule table's column).
ENTRY_NAME_MAX_LENGTH = 200
#: The longest a worker waits between two looks at the schedule table.
CHECK_EVERY = 1.0
#: Added to a wait until a slot, so that the look after it finds the slot due.
SLOT_MARGIN = 0.005
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def _cronsim() -> Any:
    try:
        import cronsim
    except ImportError:
        return None
    return cronsim


@dataclass(frozen=True)
class Entry:
    """One checked entry of ``TASKQ_SCHEDULE``; its times are aware datetimes."""

    name: str
    task: str
    cron: str | None = None
    every: int | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    catch_up: str = "once"

    @property
    def when(self) -> str:
        """The entry's times, for a human."""
        return f"cron {self.cron}" if self.cron is not None else f"every {self.every}s"

    def next_after(self, slot: datetime) -> datetime:
        """Return the first slot after ``slot``."""
        if self.every is not None:
            return slot + timedelta(seconds=self.every)
        local = slot.astimezone(timezone.get_default_timezone())
        return _as_utc(next(_cronsim().CronSim(self.cron, local)))

    def latest_until(self, now: datetime) -> datetime:
        """Return the latest slot at or before ``now``."""
        if self.every is not None:
            count = math.floor((now - EPOCH).total_seconds() / self.every)
            return EPOCH + timedelta(seconds=count * self.every)
        local = now.astimezone(timezone.get_default_timezone())
        # Backwards from just after ``now``'s whole second: that second counts too.
        start = local.replace(microsecond=0) + timedelta(microseconds=1)
        return _as_utc(next(_cronsim().CronSim(self.cron, start, reverse=True)))

    def slots_after(self, slot: datetime, now: datetime) -> list[datetime]:
        """Return the slots after ``slot`` up to ``now``, that ``catch_up`` queues."""
        if self.catch_up == "once":
            return [self.latest_until(now)]
        slots = [self.next_after(slot)]
        while (following := self.next_after(slots[-1])) <= now:
            slots.append(following)
        return slots


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(dt_timezone.utc)


def parse_schedule(name: str, value: Any) -> dict[str, Entry]:
    """The validator of ``TASKQ_SCHEDULE``: return its entries by name, or raise
    ``ImproperlyConfigured`` naming the entry and what is wrong with it.

    Whether each task is registered is a system check of its own
    (``taskq.checks.check_schedule``): tasks are imported after settings are read.
    """
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name} must be a dict of entries by name, not {value!r}.")
    return {key: _parse_entry(f"{name}[{key!r}]", key, raw) for key, raw in value.items()}


def _parse_entry(label: str, key: Any, raw: Any) -> Entry:
    def bad(what: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{label} {what}.")

    if not isinstance(key, str) or not 0 < len(key) <= ENTRY_NAME_MAX_LENGTH:
        raise bad(f"needs a name of 1 to {ENTRY_NAME_MAX_LENGTH} characters")
    if not isinstance(raw, Mapping):
        raise bad(f"must be a dict with the keys {list(ENTRY_KEYS)}, not {raw!r}")
    unknown = sorted(set(raw) - set(ENTRY_KEYS))
    if unknown:
        raise bad(f"has unknown keys {unknown}; an entry knows {list(ENTRY_KEYS)}")
    task = raw.get("task")
    if not isinstance(task, str) or not 0 < len(task) <= NAME_MAX_LENGTH:
        raise bad(f"must name its task with 'task' (a registered task's name), not {task!r}")
    if ("cron" in raw) == ("every" in raw):
        raise bad("needs exactly one of 'cron' (five cron fields) and 'every' (seconds)")
    cron, every = raw.get("cron"), raw.get("every")
    if cron is not None:
        _check_cron(bad, cron)
    if "every" in raw and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise bad(f"'every' must be a whole number of seconds, at least 1, not {every!r}")
    args, kwargs = raw.get("args", []), raw.get("kwargs", {})
    try:
        serialization.dumps_args(args)
        serialization.dumps_kwargs(kwargs)
    except TypeError as error:
        raise bad(f"has arguments taskq cannot store: {error}") from None
    queue = raw.get("queue")
    if queue is not None and (not isinstance(queue, str) or not 0 < len(queue) <= QUEUE_MAX_LENGTH):
        raise bad(f"'queue' must be a queue name of 1 to {QUEUE_MAX_LENGTH} characters")
    priority = raw.get("priority", 0)
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or priority not in PRIORITY_RANGE
    ):
        raise bad(
            f"'priority' must be an int between {PRIORITY_RANGE.start} and "
            f"{PRIORITY_RANGE.stop - 1}, not {priority!r}"
        )
    catch_up = raw.get("catch_up", "once")
    if catch_up not in CATCH_UP:
        raise bad(f"'catch_up' must be one of {list(CATCH_UP)}, not {catch_up!r}")
    return Entry(key, task, cron, every, tuple(args), dict(kwargs), queue, priority, catch_up)


def _check_cron(bad: Any, cron: Any) -> None:
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise bad(
            f"'cron' must be five fields (minute hour day-of-month month day-of-week), not {cron!r}"
        )
    cronsim = _cronsim()
    if cronsim is None:
        raise bad(
            "uses 'cron', which needs the cronsim package: "
            "pip install 'django-taskq-portable[cron]'"
        )
    try:
        cronsim.CronSim(cron, timezone.now())
    except cronsim.CronSimError as error:
        raise bad(f"has a bad 'cron' expression {cron!r}: {error}") from None


def _stored(moment: datetime) -> datetime:
    """A slot as the database stores it (naive local time without ``USE_TZ``)."""
    return moment if django_settings.USE_TZ else timezone.make_naive(moment)


def _aware(moment: datetime) -> datetime:
    """A datetime read from the database, as an aware one."""
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Scheduler:
    """A worker's share of the schedules: queue every slot that has come."""

    def __init__(self, using: str) -> None:
        self.using = using
        #: When (``time.monotonic()``) to look at the schedule table next.
        self.next_look = 0.0
        #: Whether the last look found entries (the idle wait need not read settings).
        self.active = False

    def wait_limit(self, timeout: float) -> float:
        """Return ``timeout``, shortened to end at the next look: an idle worker wakes
        for the next slot."""
        if not self.active:
            return timeout
        return max(0.0, min(timeout, self.next_look - time.monotonic()))

    def entries(self) -> dict[str, Entry]:
        from taskq.conf import settings  # taskq.conf imports this module

        return settings.SCHEDULE

    def maintain(self) -> None:
        """Queue what is due, if it is time to look; plan the next look for the next
        slot, or in ``CHECK_EVERY`` seconds if that comes sooner."""
        if time.monotonic() < self.next_look:
            return
        entries = self.entries()
        self.active = bool(entries)
        if not entries:
            self.next_look = time.monotonic() + CHECK_EVERY
            return
        wait = queue_due(entries, self.using)
        self.next_look = time.monotonic() + min(CHECK_EVERY, wait + SLOT_MARGIN)


def queue_due(entries: Mapping[str, Entry], using: str) -> float:
    """Queue the task of each entry whose next slot has come, by the database's clock;
    return the seconds until the earliest next slot."""
    from taskq.bulk_insert import database_clock
    from taskq.models import Schedule

    rows = Schedule.objects.using(using)
    last = dict(rows.filter(name__in=list(entries)).values_list("name", "last_slot"))
    now = _aware(database_clock(connections[using]))
    waits = []
    for name, entry in entries.items():
        if name not in last:
            slot = _start(entry, now, using)
        else:
            slot = _queue_if_due(entry, _aware(last[name]), now, using)
        waits.append((entry.next_after(slot) - now).total_seconds())
    return max(0.0, min(waits))


def _start(entry: Entry, now: datetime, using: str) -> datetime:
    """Write a new entry's row, from the latest slot that passed (not queued)."""
    from taskq.models import Schedule

    slot = entry.latest_until(now)
    try:
        with transaction.atomic(using=using):
            Schedule.objects.using(using).create(name=entry.name, last_slot=_stored(slot))
    except IntegrityError:
        pass  # another worker wrote it first; the next look reads it
    return slot


def _queue_if_due(entry: Entry, last: datetime, now: datetime, using: str) -> datetime:
    """Queue the slots after ``last`` that have come, unless another worker did;
    return the last slot queued (by anyone), or ``last`` if none was due."""
    from taskq.enqueue import Call, enqueue_many
    from taskq.models import Schedule

    if entry.next_after(last) > now:
        return last
    slots = entry.slots_after(last, now)
    with transaction.atomic(using=using):
        won = (
            Schedule.objects.using(using)
            .filter(name=entry.name, last_slot=_stored(last))
            .update(last_slot=_stored(slots[-1]))
        )
        if won:
            calls = [
                Call(
                    entry.task,
                    args=entry.args,
                    kwargs=entry.kwargs,
                    queue=entry.queue,
                    priority=entry.priority,
                    eta=_stored(slot),
                )
                for slot in slots
            ]
            enqueue_many(calls, using=using)
    if won:
        logger.info(
            "Schedule %s: queued %s for %s", entry.name, entry.task, ", ".join(map(str, slots))
        )
    return slots[-1]


@dataclass(frozen=True)
class Status:
    """An entry as the admin and ``taskq_stats`` show it."""

    entry: Entry
    #: The last slot queued (``None``: no worker has seen the entry yet).
    last_slot: datetime | None
    #: The slot a worker queues next.
    next_slot: datetime


def status(using: str) -> list[Status]:
    """Return every entry of ``TASKQ_SCHEDULE`` with its last and next slot, by name."""
    from taskq.bulk_insert import database_clock
    from taskq.conf import settings
    from taskq.models import Schedule

    entries = settings.SCHEDULE
    if not entries:
        return []
    rows = Schedule.objects.using(using).filter(name__in=list(entries))
    last = {name: _aware(slot) for name, slot in rows.values_list("name", "last_slot")}
    now = _aware(database_clock(connections[using]))
    statuses = []
    for name, entry in sorted(entries.items()):
        slot = last.get(name)
        following = entry.next_after(slot if slot is not None else entry.latest_until(now))
        if slot is not None and following <= now:
            following = entry.slots_after(slot, now)[0]  # due: queued at the next look
        statuses.append(Status(entry, slot, following))
    return statuses
