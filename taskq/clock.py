"""The database server's clock, the one clock every process agrees on.

Due times, expiry and heartbeats are compared with the database's current time, never
with the clock of the process asking, so a worker whose clock is minutes off neither
runs tasks early nor shows healthy peers as dirty.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now


class DatabaseNow(Now):
    """``Now()``, in the time zone Django stores datetimes in on every database.

    With ``USE_TZ = True`` that is UTC. With ``USE_TZ = False`` Django stores local
    times of ``TIME_ZONE``: SQLite's "localtime" follows it (Django sets the process's
    time zone), MySQL's ``CURRENT_TIMESTAMP`` follows the server's time zone, which must
    then be ``TIME_ZONE`` too.
    """

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        if settings.USE_TZ:
            return super().as_sqlite(compiler, connection, **extra_context)
        extra_context["template"] = (
            "STRFTIME('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%f', 'NOW', 'localtime')"
        )
        return self.as_sql(compiler, connection, **extra_context)

    def as_mysql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        # CURRENT_TIMESTAMP is in the session's time zone, Django stores UTC.
        if settings.USE_TZ and connection.timezone_name == "UTC":
            extra_context["template"] = "UTC_TIMESTAMP(6)"
            return self.as_sql(compiler, connection, **extra_context)
        return super().as_mysql(compiler, connection, **extra_context)


def database_now(offset_seconds: float = 0) -> Any:
    """Return an expression for the database's time now plus ``offset_seconds``."""
    if not offset_seconds:
        return DatabaseNow()
    return ExpressionWrapper(
        DatabaseNow() + timedelta(seconds=offset_seconds), output_field=DateTimeField()
    )
