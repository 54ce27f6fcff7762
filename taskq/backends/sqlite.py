"""SQLite: claims on a database file shared by several processes, and its clock.

SQLite has one writer at a time and no row locks. In WAL mode readers never wait for
the writer, and the busy timeout (Django's ``OPTIONS["timeout"]``, 5 s by default)
makes a writer wait its turn instead of failing at once. If the lock still cannot be
had, "database is locked" during a claim means only that nothing was claimed this
round: the worker polls again instead of dying, which is what killed the original's
extra workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends.base import Claim, delete_claimed_sql
from taskq.backends.claim import open_queues_sql, update_returning_sql
from taskq.backends.engine import Engine
from taskq.backends.errors import MIGRATE, ErrorKind, Verdict
from taskq.backends.optimistic import OptimisticStrategy
from taskq.models import CLAIM_INDEX, Task


def is_locked_error(error: OperationalError) -> bool:
    """Return whether ``error`` is SQLite's "database is locked" (or "busy")."""
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message


def clock_sql(use_tz: bool) -> str:
    """The clock Django stores datetimes in: UTC, or local time when ``USE_TZ`` is off
    ("localtime" follows ``TIME_ZONE``: Django sets the process's time zone)."""
    local = "" if use_tz else ", 'localtime'"
    return f"STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW'{local})"


class SQLiteEngine(Engine):
    """SQLite's engine: WAL on every new connection, a clock that follows ``TIME_ZONE``."""

    clock_follows_time_zone = True

    def judge_error(self, error: BaseException) -> Verdict:
        return judge_sqlite_error(self.connection, error)

    def in_open_transaction(self) -> bool:
        driver = self.connection.connection
        return driver is not None and bool(driver.in_transaction)

    def prepare_connection(self) -> None:
        """Switch a new connection's database file to WAL, so readers never block."""
        with self.connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")

    def clock_sql(self) -> str:
        return clock_sql(settings.USE_TZ)


@lru_cache
def _claim_sql(
    quote: Callable[[str], str], queue_count: int, use_tz: bool, held_count: int = 0
) -> str:
    """Return the claim as one ``UPDATE … RETURNING`` (SQLite ≥ 3.35).

    SQLite has one writer, so a single statement needs no compare-and-set nor row lock.
    ``INDEXED BY`` names the claim index: without statistics the planner prefers the
    (state, eta) index and sorts every due row, which at a million rows costs a hundred
    times more.
    """
    hint = f"INDEXED BY {quote(CLAIM_INDEX)}"
    also = open_queues_sql(quote, queue_count, true="1")
    return update_returning_sql(
        quote,
        clock_sql(use_tz),
        queue_count,
        false="0",
        hint=hint,
        also=also,
        held_count=held_count,
    )


@lru_cache
def _driver_sql(
    quote: Callable[[str], str], queue_count: int, use_tz: bool, held_count: int = 0
) -> tuple[str, str]:
    """The fenced delete and the claim with the driver's own placeholders."""
    delete = delete_claimed_sql(quote).replace("%s", "?")
    claim = _claim_sql(quote, queue_count, use_tz, held_count).replace("%s", "?").replace("%%", "%")
    return delete, claim


class SQLiteStrategy(OptimisticStrategy):
    """One ``UPDATE … RETURNING`` where SQLite has it, the optimistic claim before."""

    engine_class = SQLiteEngine

    def __init__(self, using: str) -> None:
        super().__init__(using)
        # RETURNING came with SQLite 3.35; before it, the optimistic claim.
        self.can_return_rows_from_update = bool(
            self.connection.features.can_return_columns_from_insert
        )

    #: Take the write lock at once: a transaction that reads first and then writes
    #: could not wait for the lock, it would fail.
    begin_sql = "BEGIN IMMEDIATE"

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        """The fenced delete and the claim in one ``BEGIN IMMEDIATE`` transaction, sent
        straight to the driver unless ``through_django()``."""
        connection = self.connection
        if not self.can_return_rows_from_update:
            return super().complete_and_claim(done, queues, worker_id)
        quote, use_tz, held = connection.ops.quote_name, settings.USE_TZ, self.held_back
        if self.through_django(connection):
            with self.transaction() as cursor:
                completed = self.delete_claimed(cursor, done)
                cursor.execute(
                    _claim_sql(quote, len(queues), use_tz, len(held)),
                    [worker_id, *queues, *held, *queues],
                )
                row = cursor.fetchone()
        else:
            delete, claim = _driver_sql(quote, len(queues), use_tz, len(held))
            with self.driver_transaction(connection) as cursor:
                cursor.execute(delete, (done.id, done.version, Task.State.STARTED))
                completed = cursor.rowcount == 1
                row = cursor.execute(claim, (worker_id, *queues, *held, *queues)).fetchone()
        return completed, None if row is None else Claim.from_row(row)

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        try:
            if not self.can_return_rows_from_update:
                return super().claim(queues, worker_id)
            held = self.held_back
            quote = self.connection.ops.quote_name
            sql = _claim_sql(quote, len(queues), settings.USE_TZ, len(held))
            with self.connection.cursor() as cursor:
                cursor.execute(sql, [worker_id, *queues, *held, *queues])
                row = cursor.fetchone()
            return None if row is None else Claim.from_row(row)
        except OperationalError as error:
            if is_locked_error(error):
                return None
            raise


# SQLite ---------------------------------------------------------------------------


def judge_sqlite_error(connection: BaseDatabaseWrapper, error: BaseException) -> Verdict:
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
