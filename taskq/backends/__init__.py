"""The per-database engines of taskq, and the claim strategies that run on them.

Everything that differs between databases lives in this package, one module per
database: its engine (``Engine`` in ``engine.py`` is the generic default; a database's
module subclasses it) owns the bulk insert of ``enqueue_many``, the count estimate, the
clock expression, the wake-up trigger and the capability flags callers ask instead of a
database's name; its claim strategies own the claim. This module is the only place in
taskq that asks which database a connection talks to (``engine_for``).

A claim is a *strategy*, not an engine, because it is a technique the project may
choose: ``TASKQ_CLAIM_STRATEGY`` is ``None`` (choose from the connection), a family name
(``"skip_locked"``, ``"optimistic"``: the most specific strategy of that family for the
database) or a dotted path to a ``ClaimStrategy`` subclass. The engine follows the
database whatever the strategy. (The package keeps the name ``backends`` it was
published under; ``taskq.django_tasks.TaskqBackend`` is another kind of backend, one of
Django's Tasks framework.)
"""

from __future__ import annotations

import difflib
from typing import Any
from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionProxy
from django.utils.module_loading import import_string

from taskq.backends.base import Claim, ClaimStrategy
from taskq.backends.engine import Engine
from taskq.backends.mysql import MySQLEngine, MySQLStrategy
from taskq.backends.optimistic import OptimisticStrategy
from taskq.backends.postgresql import PostgreSQLEngine, PostgreSQLStrategy
from taskq.backends.skip_locked import SkipLockedStrategy
from taskq.backends.sqlite import SQLiteEngine, SQLiteStrategy
from taskq.conf import settings

__all__ = [
    "FAMILIES",
    "Claim",
    "ClaimStrategy",
    "Engine",
    "engine_for",
    "get_strategy",
    "prepare_connection",
    "strategy_class",
    "task_database",
    "usable_strategies",
    "validate_strategy_setting",
]

#: Each database's engine, by Django's ``connection.vendor``; any other gets ``Engine``.
ENGINES: dict[str, type[Engine]] = {
    "postgresql": PostgreSQLEngine,
    "mysql": MySQLEngine,
    "sqlite": SQLiteEngine,
}
_engines: WeakKeyDictionary[BaseDatabaseWrapper, Engine] = WeakKeyDictionary()


def engine_for(connection: BaseDatabaseWrapper) -> Engine:
    """Return the engine of ``connection``'s database (one per connection object)."""
    if isinstance(connection, ConnectionProxy):  # django.db.connection
        connection = connections[connection.alias]
    try:
        return _engines[connection]
    except KeyError:
        engine = _engines[connection] = ENGINES.get(connection.vendor, Engine)(connection)
        return engine


#: Each family's strategies, most specific first; automatic choice tries them in order.
FAMILIES: dict[str, list[type[ClaimStrategy]]] = {
    "skip_locked": [PostgreSQLStrategy, MySQLStrategy, SkipLockedStrategy],
    "optimistic": [SQLiteStrategy, OptimisticStrategy],
}


def _choices() -> str:
    return ", ".join(["None", *(repr(name) for name in FAMILIES), "a dotted path"])


def _names_nothing(setting: Any) -> ImproperlyConfigured:
    near = difflib.get_close_matches(setting, FAMILIES, n=1) if isinstance(setting, str) else []
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return ImproperlyConfigured(
        f"TASKQ_CLAIM_STRATEGY={setting!r} is not one of {_choices()}{hint}"
    )


def validate_strategy_setting(setting: Any) -> type[ClaimStrategy] | None:
    """Return the class a dotted path names (``None`` for a family or auto), without
    connecting to any database; raise ``ImproperlyConfigured`` for a value that names
    nothing, suggesting the family it was probably meant to be."""
    if setting is None or setting in FAMILIES:
        return None
    if not isinstance(setting, str) or "." not in setting:
        raise _names_nothing(setting)
    return _import_strategy(setting)


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
    cls = validate_strategy_setting(setting)
    if cls is None:
        cls = _most_specific(FAMILIES[setting], connection)
        if cls is None:
            reason = FAMILIES[setting][-1].unsupported_reason(connection)
            raise ImproperlyConfigured(f"TASKQ_CLAIM_STRATEGY={setting!r} is refused: {reason}")
        return cls
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
    engine_for(connection).prepare_connection()
