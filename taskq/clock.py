"""The database server's clock, the one clock every process agrees on.

Due times, expiry and heartbeats are compared with the database's current time, never
with the clock of the process asking, so a worker whose clock is minutes off neither
runs tasks early nor shows healthy peers as dirty.
"""

from __future__ import annotations

from datetime import timedelta
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
