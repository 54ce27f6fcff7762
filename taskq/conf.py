"""taskq's settings: one declaration each, read from Django settings on every access.

Each ``TASKQ_*`` setting is declared once below, with its default, the validator that
turns a raw value into a typed one (or raises ``ImproperlyConfigured`` naming the
setting, the value and what was expected) and the line the README's settings table
shows; the system checks and a test of that table read the same declarations. Nothing
is cached, so ``override_settings`` works in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from taskq.names import QUEUE_MAX_LENGTH

T = TypeVar("T")
_MISSING = object()


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
        value = getattr(django_settings, self.name, _MISSING)
        if value is _MISSING:
            return self.default
        return self.validate(self.name, value)

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
    METRICS_TOKEN = Setting[str | None](
        None,
        token,
        "bearer token that lets a scraper read the Prometheus view without a staff login "
        "(see [Metrics and monitoring](#metrics-and-monitoring))",
    )

    @classmethod
    def declared(cls) -> list[Setting[Any]]:
        """Return every declared setting, in declaration order."""
        return [value for value in vars(cls).values() if isinstance(value, Setting)]


settings = TaskqSettings()
