"""The database server's clock, the one clock every process agrees on.

Due times, expiry and heartbeats are compared with the database's current time, never
with the clock of the process asking, so a worker whose clock is minutes off neither
runs tasks early nor shows healthy peers as dirty.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import DateTimeField, ExpressionWrapper, Func


class DatabaseNow(Func):
    """The database's time now, in the time zone Django stores datetimes in.

    With ``USE_TZ = True`` that is UTC; with ``USE_TZ = False``, local times of
    ``TIME_ZONE``. Which SQL says so differs per database: the engine of the connection
    (``taskq.backends``, ``Engine.clock_sql``) writes it.
    """

    template = "CURRENT_TIMESTAMP"
    output_field = DateTimeField()

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        from taskq.backends import engine_for  # taskq.backends imports this module

        return engine_for(connection).clock_sql(), ()


def database_now(offset_seconds: float = 0) -> Any:
    """Return an expression for the database's time now plus ``offset_seconds``."""
    if not offset_seconds:
        return DatabaseNow()
    return ExpressionWrapper(
        DatabaseNow() + timedelta(seconds=offset_seconds), output_field=DateTimeField()
    )


def read_database_now(using: str) -> datetime:
    """Return the database's time now as a Python datetime (one ``SELECT``), converted
    the way Django converts a ``DateTimeField`` read from that database."""
    from django.db import connections
    from django.db.models.sql import Query

    expression = DatabaseNow()
    compiler = Query(None).get_compiler(using=using)
    sql, params = compiler.compile(expression)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        row = cursor.fetchone()
    converters = compiler.get_converters([expression])
    (value,) = next(iter(compiler.apply_converters([row], converters)))
    return value
