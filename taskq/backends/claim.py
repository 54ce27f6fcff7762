"""The one claim, in SQL, for the strategies that write their statements by hand.

The claim is defined once, beside the model (``taskq.models``): ``TaskQuerySet.due``
says which rows are due, ``CLAIM_ORDER`` in which order they are taken,
``claim_changes`` what a claim writes and ``CLAIM_FIELDS`` what it returns. The ORM
strategies use those as they are; this module renders them as SQL, so that a
strategy's statement adds only what its database needs (a row lock, an index hint) and
a change to the definition reaches every statement. The contract suite compares every
strategy's claims with ``Task.objects.due(queues).order_by(*CLAIM_ORDER)``.

Every function returns text for Django's ``%s`` placeholders, with ``now`` (the
engine's ``clock_sql``) written in: the statements are built once and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import F, Value
from django.db.models.expressions import CombinedExpression

from taskq.models import CLAIM_FIELDS, CLAIM_ORDER, Queue, Task, claim_changes

Quote = Callable[[str], str]

#: Stand-ins for the values only the claim knows, while the definition is rendered.
_WORKER, _NOW = object(), object()


def _column(name: str) -> str:
    return str(Task._meta.get_field(name).column)  # type: ignore[union-attr]


def _value_sql(value: Any, quote: Quote, now: str) -> str:
    """One value of ``claim_changes`` as SQL: the kinds of value it uses, nothing else."""
    if value is _WORKER:
        return "%s"
    if value is _NOW:
        return now
    if (
        isinstance(value, CombinedExpression)
        and isinstance(value.lhs, F)
        and isinstance(value.rhs, Value)
    ):
        name = value.lhs.name  # type: ignore[attr-defined]
        return f"{quote(_column(name))} {value.connector} {value.rhs.value:d}"
    if isinstance(value, int):
        # A literal, not a parameter: the planner sees the state it writes and reads.
        return f"{value:d}"
    raise TypeError(f"claim_changes() holds {value!r}, which taskq.backends.claim cannot write")


def set_sql(quote: Quote, now: str) -> str:
    """The claim's ``SET`` list; its one placeholder is the worker's id."""
    changes = claim_changes(_WORKER, _NOW)
    return ", ".join(
        f"{quote(_column(name))} = {_value_sql(value, quote, now)}"
        for name, value in changes.items()
    )


def due_sql(quote: Quote, now: str, queue_count: int, held_count: int = 0) -> str:
    """``TaskQuerySet.due`` as a ``WHERE`` condition; its placeholders are the queues,
    then the ``held_count`` names held back (none: the condition of old, unchanged).

    ``state`` is a literal, or a partial claim index could not be used.
    """
    queue_test = _queue_list(queue_count)
    due = (
        f"{quote(_column('state'))} = {Task.State.QUEUED:d} "
        f"AND {quote(_column('queue'))} {queue_test} AND {quote(_column('eta'))} <= {now}"
    )
    if held_count:
        due += f" AND {quote(_column('name'))} NOT IN ({', '.join(['%s'] * held_count)})"
    return due


def _queue_list(queue_count: int) -> str:
    return "= %s" if queue_count == 1 else f"IN ({', '.join(['%s'] * queue_count)})"


def open_queues_sql(quote: Quote, queue_count: int, *, true: str) -> str:
    """ "None of the claim's queues is paused", as a condition; its placeholders are the
    queues again (``true``: the database's literal for it).

    It does not depend on the row, so it is evaluated once per statement (PostgreSQL:
    a one-time filter, the index is not even read when a queue is paused), and the
    table it reads has a row per queue: the claim costs (next to) nothing more.
    """
    queue = Queue._meta
    return (
        f"NOT EXISTS (SELECT 1 FROM {quote(queue.db_table)} "
        f"WHERE {quote('name')} {_queue_list(queue_count)} AND {quote('paused')} = {true})"
    )


def open_queues_share_locked_sql(quote: Quote, queue_count: int, *, lock: str) -> str:
    """The same test as a locking read that keeps a shared lock on every row it reads
    until the claim commits (``lock``: ``LOCK IN SHARE MODE``), so a pause (an
    exclusive row lock) waits for the claims already under way.

    An aggregate, not ``NOT EXISTS``: at READ COMMITTED InnoDB lets go at once of the
    locks on rows that fail a locking read's condition, and an unpaused row would.
    """
    queue = Queue._meta
    return (
        f"(SELECT COALESCE(MAX({quote('paused')}), 0) FROM {quote(queue.db_table)} "
        f"WHERE {quote('name')} {_queue_list(queue_count)} {lock}) = 0"
    )


def order_sql(quote: Quote) -> str:
    """``CLAIM_ORDER`` as an ``ORDER BY`` list."""
    return ", ".join(
        f"{quote(_column(name[1:]))} DESC" if name.startswith("-") else quote(_column(name))
        for name in CLAIM_ORDER
    )


def returning_sql(quote: Quote, now: str, false: str) -> str:
    """``CLAIM_FIELDS``, then whether the task has expired (``false`` if it has no
    expiry: the database's literal for it)."""
    fields = ", ".join(quote(_column(name)) for name in CLAIM_FIELDS)
    return f"{fields}, COALESCE({quote(_column('expires'))} <= {now}, {false})"


def update_returning_sql(
    quote: Quote,
    now: str,
    queue_count: int,
    *,
    false: str,
    hint: str = "",
    lock: str = "",
    also: str = "",
    held_count: int = 0,
) -> str:
    """The claim as one ``UPDATE … RETURNING``; parameters: the worker, then the queues,
    then the ``held_count`` task names held back (then those of ``also``, a further
    condition: ``open_queues_sql``).

    The row is chosen by a scalar sub-select (``WHERE id = (SELECT … LIMIT 1)``): an
    ``IN (…)`` could let a planner turn it into a join that updates more rows than the
    limit. ``hint`` follows the table in the sub-select, ``lock`` ends it.
    """
    table = quote(Task._meta.db_table)
    pk = quote(_column("id"))
    chosen = (
        f"SELECT {pk} FROM {table}{f' {hint}' if hint else ''} "
        f"WHERE {due_sql(quote, now, queue_count, held_count)}{f' AND {also}' if also else ''} "
        f"ORDER BY {order_sql(quote)} LIMIT 1{f' {lock}' if lock else ''}"
    )
    return (
        f"UPDATE {table} SET {set_sql(quote, now)} WHERE {pk} = ({chosen}) "
        f"RETURNING {returning_sql(quote, now, false)}"
    )
