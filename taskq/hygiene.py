"""The worker's database connections: kept across tasks, clean before every write.

Django closes a connection after each request when ``CONN_MAX_AGE = 0`` (a new
project's setting); a worker that did the same between tasks would reconnect (and on
PostgreSQL ``LISTEN`` again) around every task and run slower than the queue it
replaces. A worker process keeps its connections instead, drops one only when it is
broken, and holds at most two: its own and its heartbeat's.

A task runs on the worker's connection, so it can leave it in a state the worker must
not write in: a transaction or ``atomic()`` block left open, autocommit turned off.
Such a connection is thrown away (the server rolls the task's work back) and replaced
by a new one before the outcome is recorded.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from taskq.backends import engine_for
from taskq.conf import settings

#: Connections a forked child inherited: kept referenced so that they are never closed
#: (or finalized) in the child, which would end the parent's sessions on the server.
_inherited: list[Any] = []
_fork_hook_installed = False


def refresh() -> None:
    """Between two tasks: keep every connection (whatever ``CONN_MAX_AGE`` says,
    unless ``TASKQ_KEEP_CONNECTIONS`` is off), drop the ones that are broken, and forget
    their query logs (with ``DEBUG = True`` a worker must not grow): Django's
    ``reset_queries()``, in the same pass over the connections."""
    keep = settings.KEEP_CONNECTIONS
    for connection in connections.all(initialized_only=True):
        _refresh(connection, keep)


def _refresh(connection: BaseDatabaseWrapper, keep: bool) -> None:
    if keep:
        connection.close_at = None
    connection.close_if_unusable_or_obsolete()
    if connection.queries_log:
        connection.queries_log.clear()


def after_task() -> dict[str, str]:
    """After a task: replace every connection it left open (``left_open``) and
    ``refresh()`` the others, in one pass; return what was left open, by alias."""
    keep = settings.KEEP_CONNECTIONS
    left = {}
    for connection in connections.all(initialized_only=True):
        what = left_open(connection)
        if what is None:
            _refresh(connection, keep)
        else:
            left[connection.alias] = what
            replace(connection.alias)
    return left


def left_open(connection: BaseDatabaseWrapper) -> str | None:
    """Say what a task left open on ``connection``, or ``None`` if it is clean."""
    if connection.connection is None:
        return None
    if connection.in_atomic_block:
        return "an atomic() block"
    if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
        return "a transaction (autocommit was turned off)"
    if engine_for(connection).in_open_transaction():
        return "a transaction"
    return None


def replace(alias: str) -> None:
    """Throw connection ``alias`` away, rolling back whatever it holds, and put a new,
    unconnected one in its place."""
    connection: BaseDatabaseWrapper = connections[alias]
    try:
        if connection.connection is not None:
            connection.connection.close()
    except Exception:  # noqa: BLE001  a broken connection is what we are throwing away
        pass
    connection.connection = None
    connections[alias] = connections.create_connection(alias)


def protect_from_forks() -> None:
    """Make a child forked by a task start with fresh connections of its own.

    The inherited ones share their sockets with the parent: closing them in the child
    would end the parent's sessions, using them would interleave with the parent's.
    """
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_forget_inherited)
        _fork_hook_installed = True


def keep_referenced(connection: Any) -> None:
    """Keep ``connection`` (another thread's) from being finalized in a forked child."""
    _inherited.append(connection)


def _forget_inherited() -> None:
    for connection in connections.all(initialized_only=True):
        _inherited.append(connection)
        connections[connection.alias] = connections.create_connection(connection.alias)
