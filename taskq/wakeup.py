"""Wake-up hints: PostgreSQL's LISTEN/NOTIFY tells idle workers that a queue has work.

A hint, never a promise: a worker that misses one still finds the task at its next poll,
and a hint for a task someone else took costs one empty claim. ``NOTIFY`` is
transactional, so a worker hears about a row only once the row is committed; it is sent
at most once per transaction and queue (PostgreSQL would merge duplicates anyway, but
each one would cost a round trip). Other databases have no such channel: there, workers
poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

#: The channel every taskq worker listens on; the payload is a queue name.
CHANNEL = "taskq"

#: Per connection: the callback that marks the current transaction's hints, and the
#: queues hinted in it. The callback sits in Django's on-commit list, which is emptied
#: when the transaction commits or rolls back (and loses what a rolled-back savepoint
#: added), so "is it still there?" says whether the queues belong to this transaction.
_sent: WeakKeyDictionary[BaseDatabaseWrapper, tuple[Any, set[str]]] = WeakKeyDictionary()


def notify(using: str, queues: Iterable[str]) -> None:
    """Tell the workers of ``queues`` that a task was written on ``using``."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    wanted = set(queues)
    if connection.in_atomic_block:
        marker, sent = _sent.get(connection, (None, set()))
        if not any(entry[1] is marker for entry in connection.run_on_commit):
            marker, sent = (lambda: None), set()
            connection.on_commit(marker)
            _sent[connection] = (marker, sent)
        wanted -= sent
        sent |= wanted
    if not wanted:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, queue) FROM unnest(%s::text[]) AS queue",
            [CHANNEL, sorted(wanted)],
        )
