"""taskq's settings: typed defaults, read from Django settings on every access.

Nothing is cached, so ``override_settings`` works in tests. A value of the wrong type
is an ``ImproperlyConfigured`` that names the setting, the value and what was expected.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

_MISSING = object()


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value!r}.")
    return float(value)


class TaskqSettings:
    """Every ``TASKQ_*`` setting with its default. Read ``taskq.conf.settings.NAME``."""

    #: ``None`` (choose from the connection), a short name or a dotted path to a class.
    CLAIM_STRATEGY: str | None = None
    #: Modules the worker imports besides every installed app's ``tasks`` module.
    IMPORTS: tuple[str, ...] = ()
    #: Queue used when neither the task nor ``apply_async`` names one.
    DEFAULT_QUEUE: str = "default"
    #: Seconds between two heartbeats of a worker process.
    HEARTBEAT_INTERVAL: float = 1.0
    #: Seconds without a heartbeat after which a started task is shown as dirty.
    DIRTY_AFTER: float = 10.0
    #: Seconds an idle worker waits before it asks for a task again (jitter is added).
    POLL_INTERVAL: float = 0.1
    #: Longest wait, in seconds, between two attempts to reach a database that went away.
    RECONNECT_MAX_DELAY: float = 10.0
    #: Prepare the claim statements once per connection (PostgreSQL). Turn off behind a
    #: transaction-pooling PgBouncer older than 1.21.
    PREPARED_STATEMENTS: bool = True
    #: Bearer token that may read the metrics view (``taskq.urls``); ``None``: staff only.
    METRICS_TOKEN: str | None = None

    def __getattribute__(self, name: str) -> Any:
        if not name.isupper():
            return super().__getattribute__(name)
        default = super().__getattribute__(name)
        value = getattr(django_settings, f"TASKQ_{name}", _MISSING)
        if value is _MISSING:
            return default
        return _VALIDATORS[name](f"TASKQ_{name}", value)


def _claim_strategy(name: str, value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise ImproperlyConfigured(
            f"{name} must be None, a short name or a dotted path, not {value!r}."
        )
    return value


def _module_paths(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured(f"{name} must be a list of module paths, not {value!r}.")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ImproperlyConfigured(f"{name} holds {item!r}, which is not a module path.")
    return tuple(value)


def _queue_name(name: str, value: Any) -> str:
    from taskq.models import QUEUE_MAX_LENGTH

    if not isinstance(value, str) or not 0 < len(value) <= QUEUE_MAX_LENGTH:
        raise ImproperlyConfigured(
            f"{name} must be a queue name of 1 to {QUEUE_MAX_LENGTH} characters, not {value!r}."
        )
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}.")
    return value


def _token(name: str, value: Any) -> str | None:
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


_VALIDATORS = {
    "CLAIM_STRATEGY": _claim_strategy,
    "IMPORTS": _module_paths,
    "DEFAULT_QUEUE": _queue_name,
    "HEARTBEAT_INTERVAL": _seconds,
    "DIRTY_AFTER": _seconds,
    "POLL_INTERVAL": _seconds,
    "RECONNECT_MAX_DELAY": _seconds,
    "PREPARED_STATEMENTS": _flag,
    "METRICS_TOKEN": _token,
}


settings = TaskqSettings()
