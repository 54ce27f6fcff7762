"""Which claim strategy a database connection gets.

``TASKQ_CLAIM_STRATEGY`` is ``None`` (choose from the connection), a family name
(``"skip_locked"``, ``"optimistic"``: the most specific strategy of that family for the
database) or a dotted path to a ``ClaimStrategy`` subclass. This package is the only
place in taskq that asks which database it is talking to.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.module_loading import import_string

from taskq.backends.base import Claim, ClaimStrategy
from taskq.backends.mysql import MySQLStrategy
from taskq.backends.optimistic import OptimisticStrategy
from taskq.backends.postgresql import PostgreSQLStrategy
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.backends.sqlite import SQLiteStrategy
from taskq.backends.sqlite import prepare_connection as prepare_sqlite_connection
from taskq.conf import settings

__all__ = [
    "Claim",
    "ClaimStrategy",
    "get_strategy",
    "prepare_connection",
    "strategy_class",
    "usable_strategies",
]

#: Each family's strategies, most specific first; automatic choice tries them in order.
FAMILIES: dict[str, list[type[ClaimStrategy]]] = {
    "skip_locked": [PostgreSQLStrategy, MySQLStrategy, SkipLockedStrategy],
    "optimistic": [SQLiteStrategy, OptimisticStrategy],
}


def _choices() -> str:
    return ", ".join(["None", *(repr(name) for name in FAMILIES), "a dotted path"])


def _import_strategy(path: str) -> type[ClaimStrategy]:
    try:
        cls = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"TASKQ_CLAIM_STRATEGY={path!r} is neither one of {_choices()} "
            f"nor an importable class: {error}"
        ) from error
    if not (isinstance(cls, type) and issubclass(cls, ClaimStrategy)):
        raise ImproperlyConfigured(
            f"TASKQ_CLAIM_STRATEGY={path!r} is not a subclass of taskq.backends.base.ClaimStrategy"
        )
    return cls


def _most_specific(
    family: list[type[ClaimStrategy]], connection: BaseDatabaseWrapper
) -> type[ClaimStrategy] | None:
    return next((cls for cls in family if cls.is_supported(connection)), None)


def strategy_class(connection: BaseDatabaseWrapper, setting: Any = None) -> type[ClaimStrategy]:
    """Return the strategy class ``setting`` names for ``connection``.

    Raise ``ImproperlyConfigured`` for a value that names nothing, and for a strategy
    the database cannot run, with the reason: never fall back silently.
    """
    if setting is None:
        for family in FAMILIES.values():
            cls = _most_specific(family, connection)
            if cls is not None:
                return cls
        raise ImproperlyConfigured(f"no claim strategy supports {connection.display_name}")
    if not isinstance(setting, str) or not setting:
        raise ImproperlyConfigured(f"TASKQ_CLAIM_STRATEGY={setting!r} is not one of {_choices()}")
    if setting in FAMILIES:
        cls = _most_specific(FAMILIES[setting], connection)
        if cls is None:
            reason = FAMILIES[setting][-1].unsupported_reason(connection)
            raise ImproperlyConfigured(f"TASKQ_CLAIM_STRATEGY={setting!r} is refused: {reason}")
        return cls
    if "." not in setting:
        raise ImproperlyConfigured(f"TASKQ_CLAIM_STRATEGY={setting!r} is not one of {_choices()}")
    cls = _import_strategy(setting)
    if not cls.is_supported(connection):
        raise ImproperlyConfigured(
            f"TASKQ_CLAIM_STRATEGY={setting!r} is refused: {cls.unsupported_reason(connection)}"
        )
    return cls


def task_database() -> str:
    """Return the alias the task table is written to (``DATABASE_ROUTERS`` apply)."""
    from taskq.models import Task

    return router.db_for_write(Task)


def get_strategy(using: str | None = None) -> ClaimStrategy:
    """Return the configured strategy for ``using`` (default: the task table's alias)."""
    using = using or task_database()
    return strategy_class(connections[using], settings.CLAIM_STRATEGY)(using)


def usable_strategies(connection: BaseDatabaseWrapper) -> list[type[ClaimStrategy]]:
    """Return every strategy class that can run on ``connection``, for tests and checks."""
    return [cls for family in FAMILIES.values() for cls in family if cls.is_supported(connection)]


def prepare_connection(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Set up a new connection for concurrent workers (``connection_created`` receiver)."""
    if connection.vendor == "sqlite":
        prepare_sqlite_connection(connection)
