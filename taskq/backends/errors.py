"""What a database error means: an outage to wait out, a moment of contention, or a refusal.

Django raises ``OperationalError`` both when the server is gone and when SQLite says
"no such table", and ``ProgrammingError`` both for a missing table on PostgreSQL and for
a closed SQLite connection. Waiting out a refusal never ends, and dying of an outage
loses a worker that would have recovered, so callers ask ``classify`` instead of
looking at the exception's class. Each database family is judged by what its driver
gives: PostgreSQL's SQLSTATE, MySQL's error numbers, SQLite's message text (its Python
driver exposes no code before Python 3.11, and then only on some errors).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    judge = _JUDGES.get(connection.vendor, _judge_generic)
    if _driver_error(error) is error:
        judge = _judge_generic
    kind, advice = judge(connection, error)
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


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception: Django re-raises it as its own class, as the cause."""
    cause = error.__cause__
    return cause if cause is not None and not isinstance(cause, DatabaseError) else error


Verdict = tuple[ErrorKind, str]
MIGRATE = "run `manage.py migrate`"


def _judge_generic(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    """A database taskq knows nothing particular about: Django's classes decide."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return ErrorKind.OUTAGE, ""
    return ErrorKind.PERMANENT, ""


# SQLite ---------------------------------------------------------------------------


def _judge_sqlite(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    message = str(error).lower()
    if "database is locked" in message or "database is busy" in message:
        return ErrorKind.BUSY, "another process holds the write lock"
    if "database table is locked" in message:
        return ErrorKind.BUSY, "another connection holds the table"
    if "readonly database" in message or "read-only" in message:
        name = connection.settings_dict.get("NAME")
        return ErrorKind.PERMANENT, (
            f"the SQLite file {str(name)!r} cannot be written: give this process write "
            "access to it and to its directory (SQLite writes its journal there)"
        )
    if "no such table" in message or "no such column" in message or "has no column" in message:
        return ErrorKind.PERMANENT, MIGRATE
    if "too many sql variables" in message:
        return ErrorKind.PERMANENT, "the statement has more parameters than SQLite allows"
    if "closed database" in message or "disk i/o error" in message or "disk is full" in message:
        return ErrorKind.OUTAGE, ""
    if "unable to open database file" in message:
        name = connection.settings_dict.get("NAME")
        return ErrorKind.PERMANENT, f"check that the directory of {str(name)!r} exists"
    if isinstance(error, InterfaceError):
        return ErrorKind.OUTAGE, ""
    # "string or blob too big", "database disk image is malformed", ...
    return ErrorKind.PERMANENT, ""


# PostgreSQL -----------------------------------------------------------------------

#: SQLSTATEs (or their two-character classes) worth waiting out.
PG_OUTAGE = {"08", "53", "57P01", "57P02", "57P03", "58"}
#: SQLSTATEs of contention: retry soon.
PG_BUSY = {"40001", "40P01", "55P03", "57014"}
#: SQLSTATEs of a refusal that deserves a particular piece of advice.
PG_ADVICE = {
    "42P01": MIGRATE,  # undefined_table
    "42703": MIGRATE,  # undefined_column
    "3D000": "create the database, or fix NAME in DATABASES",  # invalid_catalog_name
    "25006": "the server or this session is read-only (a standby, or default_transaction_"
    "read_only): point DATABASES at the primary",
    "54000": "the statement is beyond what PostgreSQL allows (too many parameters or values)",
    "54001": "the statement is too complex for PostgreSQL",
    "22001": "a value is too long for its column",
    "42501": "the database user lacks a privilege on the task table",
}
#: What libpq or psycopg say, without a SQLSTATE, when the client refuses a statement.
PG_CLIENT_REFUSALS = ("number of parameters must be between", "query too large", "out of memory")


def _judge_postgresql(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    driver = _driver_error(error)
    sqlstate: Any = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    if not sqlstate:
        message = str(error).lower()
        if any(refusal in message for refusal in PG_CLIENT_REFUSALS):
            return ErrorKind.PERMANENT, "the statement is beyond what the driver can send"
        # No answer from the server: refused, reset or closed connections.
        if isinstance(error, (OperationalError, InterfaceError)):
            return ErrorKind.OUTAGE, ""
        return ErrorKind.PERMANENT, ""
    if sqlstate in PG_OUTAGE or sqlstate[:2] in PG_OUTAGE:
        return ErrorKind.OUTAGE, ""
    if sqlstate in PG_BUSY:
        return ErrorKind.BUSY, ""
    return ErrorKind.PERMANENT, PG_ADVICE.get(sqlstate, f"SQLSTATE {sqlstate}")


# MySQL and MariaDB ----------------------------------------------------------------

#: Server errors worth waiting out: shutdown in progress, too many connections, the
#: connection killed (MariaDB) or timed out by the server (MySQL 8).
MYSQL_OUTAGE = {1040, 1053, 1077, 1080, 1152, 1159, 1161, 1927, 4031}
#: Contention: lock wait timeout, deadlock, a statement interrupted or timed out.
MYSQL_BUSY = {1205, 1213, 1317, 3024, 1969}
MYSQL_ADVICE = {
    1146: MIGRATE,  # no such table
    1054: MIGRATE,  # unknown column
    1049: "create the database, or fix NAME in DATABASES",
    1290: "the server runs with --read-only: point DATABASES at the primary",
    1792: "the transaction is read-only: point DATABASES at the primary",
    1836: "the server is read-only: point DATABASES at the primary",
    1153: "a statement is larger than the server's max_allowed_packet",
    1406: "a value is too long for its column",
    1118: "a row is larger than the storage engine allows",
    1390: "the statement has more placeholders than the server allows",
    1142: "the database user lacks a privilege on the task table",
    1045: "the server refused the user or password in DATABASES",
}


def _judge_mysql(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
    driver = _driver_error(error)
    code = driver.args[0] if driver.args and isinstance(driver.args[0], int) else None
    if code is None:
        if isinstance(error, (OperationalError, InterfaceError)):
            return ErrorKind.OUTAGE, ""
        return ErrorKind.PERMANENT, ""
    # 2000-2999 are the client library's own errors: no connection, lost connection,
    # server gone away, commands out of sync. A new connection cures them.
    if 2000 <= code < 3000 or code in MYSQL_OUTAGE or code == 0:
        return ErrorKind.OUTAGE, ""
    if code in MYSQL_BUSY:
        return ErrorKind.BUSY, ""
    return ErrorKind.PERMANENT, MYSQL_ADVICE.get(code, f"error {code}")


_JUDGES: dict[str, Callable[[BaseDatabaseWrapper, BaseException], Verdict]] = {
    "sqlite": _judge_sqlite,
    "postgresql": _judge_postgresql,
    "mysql": _judge_mysql,
}
