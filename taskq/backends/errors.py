"""What a database error means: an outage to wait out, a moment of contention, or a refusal.

Django raises ``OperationalError`` both when the server is gone and when SQLite says
"no such table", and ``ProgrammingError`` both for a missing table on PostgreSQL and for
a closed SQLite connection. Waiting out a refusal never ends, and dying of an outage
loses a worker that would have recovered, so callers ask ``classify`` instead of
looking at the exception's class. Each database's engine (``Engine.judge_error``)
judges by what its driver gives: PostgreSQL's SQLSTATE, MySQL's error numbers, SQLite's
message text (its Python driver exposes no code before Python 3.11, and then only on
some errors).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import DatabaseError, InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper


class ErrorKind(enum.Enum):
    """What to do about a database error."""

    #: The database cannot be reached or dropped the connection: reconnect and retry,
    #: with back-off, for as long as it takes.
    OUTAGE = "outage"
    #: The database is there but momentarily busy (a lock held by another writer, a
    #: deadlock, a statement timeout): retry soon; this is not an outage.
    BUSY = "busy"
    #: The database answered and refused the statement (a missing table, a read-only
    #: database, too many parameters, a value too large): retrying changes nothing.
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Diagnosis:
    """An error's kind, and a one-line message for a human that says what to do."""

    kind: ErrorKind
    message: str


def classify(connection: BaseDatabaseWrapper, error: BaseException) -> ErrorKind:
    """Return whether ``error``, raised on ``connection``, is an outage, busy or permanent."""
    return diagnose(connection, error).kind


def describe(connection: BaseDatabaseWrapper, error: BaseException) -> str:
    """Return a one-line message about ``error`` that says what is wrong and what to do."""
    return diagnose(connection, error).message


def diagnose(connection: BaseDatabaseWrapper, error: BaseException) -> Diagnosis:
    """Return the kind of ``error`` (a ``DatabaseError`` raised on ``connection``) and a
    message naming the database alias, for logs and for ``CommandError``."""
    # An error no driver raised (Django's own, or one raised by hand) has no code and
    # no driver text to judge: its class decides.
    from taskq.backends import engine_for  # taskq.backends imports the engines, which use this

    if driver_error(error) is error:
        kind, advice = judge_by_class(error)
    else:
        kind, advice = engine_for(connection).judge_error(error)
    alias = connection.alias
    text = _first_line(error)
    if kind is ErrorKind.OUTAGE:
        message = f"database {alias!r} is unavailable: {text}"
    elif kind is ErrorKind.BUSY:
        message = f"database {alias!r} is busy: {text}"
    else:
        message = f"database {alias!r} refused the statement: {text}"
    return Diagnosis(kind, f"{message}; {advice}" if advice else message)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def driver_error(error: BaseException) -> BaseException:
    """The driver's own exception: Django re-raises it as its own class, as the cause."""
    cause = error.__cause__
    return cause if cause is not None and not isinstance(cause, DatabaseError) else error


Verdict = tuple[ErrorKind, str]
MIGRATE = "run `manage.py migrate`"


def judge_by_class(error: BaseException) -> Verdict:
    """A database taskq knows nothing particular about: Django's classes decide."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return ErrorKind.OUTAGE, ""
    return ErrorKind.PERMANENT, ""
