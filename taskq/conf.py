"""taskq's settings: one declaration each, read from Django settings on every access.

Each ``TASKQ_*`` setting is declared once below, with its default, the validator that
turns a raw value into a typed one (or raises ``ImproperlyConfigured`` naming the
setting, the value and what was expected) and the line the README's settings table
shows; the system checks and a test of that table read the same declarations.

A value is validated once and kept until Django says a setting changed
(``setting_changed``, which ``override_settings`` sends): the worker reads settings
around every task, and reading an unset name from Django's settings raises and catches
an ``AttributeError`` each time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from taskq.names import QUEUE_MAX_LENGTH
from taskq.schedules import Entry, parse_schedule

T = TypeVar("T")
_MISSING = object()
#: Validated values by setting name; emptied whenever a setting changes.
_values: dict[str, Any] = {}


def _forget_values(**kwargs: Any) -> None:
    _values.clear()


setting_changed.connect(_forget_values, dispatch_uid="taskq.conf")


class Setting(Generic[T]):
    """A ``TASKQ_*`` setting: ``taskq.conf.settings.NAME`` reads and validates it."""

    def __init__(self, default: T, validate: Callable[[str, Any], T], doc: str) -> None:
        self.default = default
        self.validate = validate
        #: The description the README's settings table gives, word for word.
        self.doc = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = f"TASKQ_{name}"

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | Setting[T]:
        if instance is None:
            return self
        try:
            return _values[self.name]
        except KeyError:
            pass
        value = getattr(django_settings, self.name, _MISSING)
        value = self.default if value is _MISSING else self.validate(self.name, value)
        _values[self.name] = value
        return value

    @property
    def default_text(self) -> str:
        """The default as the README writes it (strings in double quotes)."""
        return f'"{self.default}"' if isinstance(self.default, str) else repr(self.default)


# Validators: (setting name, raw value) -> typed value, or ImproperlyConfigured.


def seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value!r}.")
    return float(value)


def optional_seconds(name: str, value: Any) -> float | None:
    return None if value is None else seconds(name, value)


def byte_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{name} must be a positive number of bytes, not {value!r}.")
    return value


def claim_strategy(name: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise ImproperlyConfigured(
            f"{name} must be None, a short name or a dotted path, not {value!r}."
        )
    return value


def module_paths(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured(f"{name} must be a list of module paths, not {value!r}.")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ImproperlyConfigured(f"{name} holds {item!r}, which is not a module path.")
    return tuple(value)


def queue_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= QUEUE_MAX_LENGTH:
        raise ImproperlyConfigured(
            f"{name} must be a queue name of 1 to {QUEUE_MAX_LENGTH} characters, not {value!r}."
        )
    return value


def optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{name} must be None or a positive integer, not {value!r}.")
    return value


def optional_alias(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ImproperlyConfigured(f"{name} must be None or a database alias, not {value!r}.")


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}.")
    return value


def token(name: str, value: Any) -> str | None:
    # The message never shows the value: it is a secret.
    if value is None or (isinstance(value, str) and value and value.strip() == value):
        return value
    what = (
        "an empty or space-padded string"
        if isinstance(value, str)
        else f"a value of type {type(value).__name__}"
    )
    raise ImproperlyConfigured(
        f"{name} must be None or a non-empty string without surrounding spaces, not {what}."
    )


@dataclass(frozen=True)
class QueueLimits:
    """The limits ``TASKQ_QUEUES`` sets on one queue (``None``: no such limit)."""

    #: At most this many tasks of the queue active at once, across all workers.
    concurrency: int | None = None
    #: At most this many starts per second (``"10/m"`` is 1/6), by the database's clock.
    rate: float | None = None

    @property
    def interval(self) -> float | None:
        """Seconds between two starts of the queue: the rate's reciprocal."""
        return None if self.rate is None else 1 / self.rate


#: Celery's rate units: per second, minute, hour.
RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
QUEUE_LIMIT_KEYS = ("concurrency", "rate")


def parse_rate(value: Any) -> float | None:
    """Return starts per second for Celery's ``"N/s"``, ``"N/m"``, ``"N/h"`` (a bare
    number is per second), or ``None`` if ``value`` is none of them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        count, unit = float(value), "s"
    elif isinstance(value, str):
        text, _, unit = value.strip().partition("/")
        try:
            count = float(text)
        except ValueError:
            return None
        unit = unit.strip() or "s"
    else:
        return None
    if unit not in RATE_UNITS or not math.isfinite(count) or count <= 0:
        return None
    return count / RATE_UNITS[unit]


def queue_limits(name: str, value: Any) -> dict[str, QueueLimits]:
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a dict of queue name to limits, not {value!r}.")
    limits: dict[str, QueueLimits] = {}
    for queue, options in value.items():
        queue_name(f"{name} key", queue)
        where = f"{name}[{queue!r}]"
        if not isinstance(options, dict):
            raise ImproperlyConfigured(
                f"{where} must be a dict with keys {QUEUE_LIMIT_KEYS}, not {options!r}."
            )
        unknown = sorted(str(key) for key in options if key not in QUEUE_LIMIT_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown key(s) {', '.join(unknown)}; the keys are "
                f"{', '.join(QUEUE_LIMIT_KEYS)}."
            )
        concurrency = options.get("concurrency")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ImproperlyConfigured(
                f"{where}['concurrency'] must be a positive integer, not {concurrency!r}."
            )
        rate = options.get("rate")
        per_second = None if rate is None else parse_rate(rate)
        if rate is not None and per_second is None:
            raise ImproperlyConfigured(
                f'{where}[\'rate\'] must be a rate such as "10/s", "10/m" or "10/h", not {rate!r}.'
            )
        limits[queue] = QueueLimits(concurrency, per_second)
    return limits


class TaskqSettings:
    """Every ``TASKQ_*`` setting with its default. Read ``taskq.conf.settings.NAME``."""

    CLAIM_STRATEGY = Setting[str | None](
        None,
        claim_strategy,
        'how workers claim tasks: `None` (chosen from the connection), `"skip_locked"`, '
        '`"optimistic"` or a dotted path to a `taskq.backends.base.ClaimStrategy` subclass',
    )
    IMPORTS = Setting[tuple[str, ...]](
        (),
        module_paths,
        "modules the worker imports besides every installed app's `tasks` module",
    )
    DEFAULT_QUEUE = Setting[str](
        "default",
        queue_name,
        "queue of calls that name none, and of workers started without `-Q`",
    )
    HEARTBEAT_INTERVAL = Setting[float](
        1.0, seconds, "seconds between two heartbeats of a worker process"
    )
    DIRTY_AFTER = Setting[float](
        10.0,
        seconds,
        "seconds without a heartbeat after which a started task counts as dirty",
    )
    POLL_INTERVAL = Setting[float](
        0.1,
        seconds,
        "seconds an idle worker waits before it asks again (×0.5 to ×1.5 jitter; sooner if "
        "a task falls due meanwhile, or on PostgreSQL when a task is queued)",
    )
    RECONNECT_MAX_DELAY = Setting[float](
        10.0,
        seconds,
        "longest wait, in seconds, between two attempts to reach a database that went away",
    )
    KEEP_CONNECTIONS = Setting[bool](
        True,
        flag,
        "the worker keeps its database connections open from one task to the next, "
        "whatever `CONN_MAX_AGE` says (a broken one is dropped and reopened); set `False` "
        "to let `CONN_MAX_AGE` close them as it does after a request",
    )
    PREPARED_STATEMENTS = Setting[bool](
        True,
        flag,
        "PostgreSQL: the worker prepares its two claim statements once per connection "
        "(planning costs as much as running them); set `False` behind a transaction-pooling "
        "PgBouncer older than 1.21 (see [Behind PgBouncer](#behind-pgbouncer))",
    )
    LISTEN_DATABASE = Setting[str | None](
        None,
        optional_alias,
        "PostgreSQL: the `DATABASES` alias an idle worker `LISTEN`s on, when its own "
        "connection goes through a transaction pooler, which cannot carry `LISTEN`: one "
        "that reaches the same server directly (`None`: the worker's own connection)",
    )
    VACUUM_DEAD_ROWS = Setting[int | None](
        None,
        optional_count,
        "PostgreSQL: once a minute a worker reads the task table's dead rows, and from this "
        "many on it runs `VACUUM` of the table (skipped if another vacuum holds it); for "
        "servers where autovacuum is off or falls behind (`None`: never)",
    )
    TIME_LIMIT = Setting[float | None](
        None,
        optional_seconds,
        "seconds after which a running task is interrupted and failed with "
        "`TimeLimitExceeded`, for tasks without their own `time_limit` (`None`: no limit)",
    )
    SOFT_TIME_LIMIT = Setting[float | None](
        None,
        optional_seconds,
        "seconds after which `SoftTimeLimitExceeded` is raised inside a running task, for "
        "tasks without their own `soft_time_limit` (`None`: no limit)",
    )
    QUEUES = Setting[dict[str, QueueLimits]](
        {},
        queue_limits,
        'limits per queue, across all workers: `{"payments": {"concurrency": 2, "rate": '
        '"10/s"}}` (see [Flow control](#flow-control-pausing-and-limiting-queues))',
    )
    METRICS_TOKEN = Setting[str | None](
        None,
        token,
        "bearer token that lets a scraper read the Prometheus view without a staff login "
        "(see [Metrics and monitoring](#metrics-and-monitoring))",
    )
    MAX_ARGUMENTS_SIZE = Setting[int](
        1024 * 1024,
        byte_count,
        "largest size, in bytes, of a task's `args` and `kwargs` as stored JSON; a bigger call "
        "is a `ValueError` and nothing is written. A mebibyte keeps a row cheap to claim and to "
        "show in the admin: pass a key to big data, not the data",
    )

    SCHEDULE = Setting[dict[str, Entry]](
        {},
        parse_schedule,
        "tasks the workers queue at cron times or intervals, each slot once, by name: "
        '`{"name": {"task": …, "cron": "0 2 * * *" or "every": seconds, "args": [], '
        '"kwargs": {}, "queue": …, "priority": 0, "catch_up": "once" or "all"}}` '
        "(see [Schedules](#schedules))",
    )

    @classmethod
    def declared(cls) -> list[Setting[Any]]:
        """Return every declared setting, in declaration order."""
        return [value for value in vars(cls).values() if isinstance(value, Setting)]


settings = TaskqSettings()
