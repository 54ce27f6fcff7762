"""The interface every claim strategy implements.

A strategy answers one question for the worker, "which due task is mine now?", in
whatever SQL its database does best, and then fences every later write on that task
by the version its claim set. The writes after a claim are the same on every
database, so they live here; strategies override only ``claim`` (and, where one
statement can do both, ``complete_and_claim``). What a claim is (which rows, in which
order, what it writes) is defined once in ``taskq.models``; see ``taskq.backends.claim``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, ExpressionWrapper, Q

from taskq.alarm import Alarm
from taskq.backends.engine import Engine
from taskq.bounds import bounded_error
from taskq.clock import DatabaseNow, database_now
from taskq.models import CLAIM_FIELDS, Task, TaskQuerySet, failure_changes

__all__ = ["CLAIM_FIELDS", "Claim", "ClaimStrategy", "expired"]


def delete_claimed_sql(quote: Callable[[str], str]) -> str:
    """The delete of a claimed row, fenced by its version and state (parameters: id,
    version, ``Task.State.STARTED``)."""
    table = quote(Task._meta.db_table)
    return f"DELETE FROM {table} WHERE id = %s AND version = %s AND state = %s"


def expired() -> ExpressionWrapper:
    """Whether a row's expiry has passed, by the database's clock."""
    return ExpressionWrapper(Q(expires__lte=database_now()), output_field=BooleanField())


@dataclass(frozen=True)
class Claim:
    """A task this worker owns, as long as the row still has ``version``."""

    id: int
    name: str
    queue: str
    args: str
    kwargs: str
    retries: int
    version: int
    #: Its expiry had passed when it was claimed: drop it, do not run it.
    expired: bool
    priority: int = 0
    #: Times as the driver returned them (SQLite's ``RETURNING`` gives text).
    eta: Any = None
    expires: Any = None
    created_at: Any = None
    #: Typed JSON (``taskq.serialization``) or ``None``.
    headers: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any], *, updated: bool = False) -> Claim:
        """The claim of a row of ``CLAIM_FIELDS`` and ``expired()``; ``updated``: the
        row was read before the claim's update, which added one to its version."""
        id, name, queue, args, kwargs, retries, version, *more, is_expired = row
        priority, eta, expires, created_at, headers, time_limit, soft_time_limit = more
        return cls(
            id,
            name,
            queue,
            args,
            kwargs,
            retries,
            version + 1 if updated else version,
            bool(is_expired),
            priority,
            eta,
            expires,
            created_at,
            headers,
            time_limit,
            soft_time_limit,
        )


class ClaimStrategy:
    """Claims due tasks for one worker on one database alias."""

    #: The name ``TASKQ_CLAIM_STRATEGY`` knows this family of strategies by.
    family: ClassVar[str]
    #: The engine of the databases this strategy is written for (``Engine``: any).
    engine_class: ClassVar[type[Engine]] = Engine
    #: Does the claim take row locks, so that concurrent claimers never collide?
    uses_row_locks: ClassVar[bool] = False
    #: Is the claim one ``UPDATE … RETURNING`` round trip? (Set per instance where it
    #: depends on the database's version; the strategy's ``claim`` branches on it.)
    can_return_rows_from_update: bool = False
    #: Is the claim a server-side prepared statement?
    prepares_claims: bool = False
    #: Names of tasks with a ``rate_limit``: ``claim`` and ``complete_and_claim`` pass
    #: them over (the worker's ``Flow`` sets them and claims those tasks itself). Empty,
    #: the claim is the statement it always was.
    held_back: tuple[str, ...] = ()

    def __init__(self, using: str) -> None:
        self.using = using

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.using!r}>"

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    def unpaused(self, tasks: TaskQuerySet, queues: Sequence[str]) -> TaskQuerySet:
        """``tasks`` on condition that none of ``queues`` is paused: the claim's test,
        in the claim's own statement (see ``taskq.backends.flow``)."""
        from taskq.backends import engine_for  # the package imports this module

        test = engine_for(self.connection).open_queues_sql(len(queues))
        return cast(TaskQuerySet, tasks.extra(where=[test], params=list(queues)))

    @classmethod
    def is_supported(cls, connection: BaseDatabaseWrapper) -> bool:
        """Return whether this strategy works on ``connection``'s database: by default,
        whether the connection's engine is the one it is written for."""
        from taskq.backends import engine_for  # the package imports this module

        return isinstance(engine_for(connection), cls.engine_class)

    @classmethod
    def unsupported_reason(cls, connection: BaseDatabaseWrapper) -> str:
        """Say why ``is_supported(connection)`` is false, for the error a user sees."""
        return f"{cls.__name__} does not support {connection.display_name}"

    def claim(self, queues: Sequence[str], worker_id: int) -> Claim | None:
        """Claim the due task of ``queues`` with the highest priority, then the earliest
        ETA, for worker ``worker_id``; return it, or ``None`` when nothing is due.

        "Due" is judged by the database's clock (``taskq.clock``)."""
        raise NotImplementedError("subclasses of ClaimStrategy must provide a claim() method")

    def next_due_in(self, queues: Sequence[str], within: float) -> float | None:
        """Return the seconds, by the database's clock, until the earliest queued task
        of ``queues`` that falls due in the next ``within`` seconds; ``None`` if none.

        An idle worker sleeps exactly that long, so a task starts at its ETA, not up to
        a poll interval later. The window keeps the scan of the ``(state, eta)`` index
        short, however many tasks wait further in the future.
        """
        row = self.next_due_row(queues, within)
        if row is None:
            return None
        eta, now = row
        return max(0.0, (eta - now).total_seconds())

    def next_due_row(self, queues: Sequence[str], within: float) -> tuple[Any, Any] | None:
        """(eta, now) of the earliest task falling due within ``within`` seconds."""
        return cast("tuple[Any, Any] | None", self.next_due_query(queues, within).first())

    def next_due_query(self, queues: Sequence[str], within: float) -> Any:
        """The query of ``next_due_in``: (eta, now) of the queued tasks falling due in the
        next ``within`` seconds, earliest first (a queryset, for ``explain()``)."""
        return (
            Task.objects.using(self.using)
            .queued()
            .filter(queue__in=queues, eta__gt=database_now(), eta__lte=database_now(within))
            .annotate(now=DatabaseNow())
            .order_by("eta")
            .values_list("eta", "now")
        )

    def wait_for_work(self, queues: Sequence[str], timeout: float, interrupt: Alarm) -> None:
        """Return once ``timeout`` seconds have passed or ``interrupt`` rang; strategies
        whose database can announce new tasks return sooner, when ``queues`` may have
        one. Either way the worker then claims again: a wake-up is only a hint."""
        interrupt.wait(timeout)

    def complete_and_claim(
        self, done: Claim, queues: Sequence[str], worker_id: int
    ) -> tuple[bool, Claim | None]:
        """Delete the succeeded task ``done`` and claim the next one, in one transaction
        (so one commit, one disk flush); return ``complete``'s answer and the claim.

        Strategies whose database can do both in one statement override this.
        """
        with transaction.atomic(using=self.using):
            return self.complete(done), self.claim(queues, worker_id)

    #: The statement that opens a transaction by hand, for ``transaction()``.
    begin_sql: ClassVar[str] = "BEGIN"

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a transaction of its own, or in the caller's if one is open.

        Django's ``atomic()`` costs round trips on some databases (MySQL switches
        autocommit off and on around it) and Python time on all; a strategy that sends
        a few statements per task can open and commit the transaction itself.
        """
        connection = self.connection
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                yield cursor
                return
            with self.begun(cursor, DatabaseError):
                yield cursor

    @staticmethod
    def through_django(connection: BaseDatabaseWrapper) -> bool:
        """Whether the claim's statements on ``connection`` must go through Django's
        cursor: inside a caller's transaction, with the query log on (``DEBUG``), or
        with execute wrappers installed (instrumentation must see every statement)."""
        return bool(
            connection.in_atomic_block or connection.queries_logged or connection.execute_wrappers
        )

    @contextmanager
    def driver_transaction(self, connection: BaseDatabaseWrapper) -> Iterator[Any]:
        """The driver's own cursor on ``connection`` (the strategy's), in a transaction
        of its own (``begin_sql`` … ``COMMIT``), its errors raised as Django's. For the
        statements of every task where ``through_django()`` is false: Django's cursor
        wrapper costs more Python time per statement than the rest of the worker's
        bookkeeping."""
        connection.ensure_connection()
        with connection.wrap_database_errors, closing(connection.connection.cursor()) as cursor:
            with self.begun(cursor, cast(Any, connection).Database.Error):  # the driver's errors
                yield cursor

    @contextmanager
    def begun(self, cursor: Any, errors: type[BaseException]) -> Iterator[None]:
        """Run the block between ``begin_sql`` and ``COMMIT`` on ``cursor``, rolling back
        if it raises; a rollback that fails with ``errors`` (the connection is gone, and
        the transaction with it) leaves the block's exception to be raised."""
        cursor.execute(self.begin_sql)
        try:
            yield
        except BaseException:
            with suppress(errors):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    # The fenced writes after a claim. Each returns False when the claim was lost
    # (the row was re-queued or deleted by someone else), and then changes nothing.

    def _claimed(self, claim: Claim) -> Any:
        return Task.objects.using(self.using).filter(
            pk=claim.id, version=claim.version, state=Task.State.STARTED
        )

    def complete(self, claim: Claim) -> bool:
        """Delete the task: it succeeded, or it expired and must not run."""
        with self.connection.cursor() as cursor:
            return self.delete_claimed(cursor, claim)

    def delete_claimed(self, cursor: Any, claim: Claim) -> bool:
        """Delete the claimed row with ``cursor``, in plain SQL: a queryset's
        ``delete()`` costs more than the statement itself, on every task."""
        cursor.execute(
            delete_claimed_sql(self.connection.ops.quote_name),
            [claim.id, claim.version, Task.State.STARTED],
        )
        return cursor.rowcount == 1

    def retry(self, claim: Claim, eta: datetime | Any, error: str) -> bool:
        """Queue the task again for ``eta`` (a datetime or a database-clock expression),
        counting one more retry."""
        return self._claimed(claim).requeue(eta, error=error, retried=True) == 1

    def fail(self, claim: Claim, error: str) -> bool:
        """Mark the task failed, keeping ``error`` (a traceback, bounded in size) for a
        human to read; it gives up its unique key and keeps its worker's ident
        (``taskq.models.failure_changes``)."""
        return self._claimed(claim).update(**failure_changes(bounded_error(error))) == 1
