"""What a task name, a queue name and a priority may be: the columns' limits.

Enqueue, the settings, the worker's ``-Q`` and the models all check against these, so
a value that passes here fits the task table on every database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NAME_MAX_LENGTH = 200
QUEUE_MAX_LENGTH = 100
#: Priorities fit a SmallIntegerField on every database; higher runs first.
PRIORITY_RANGE = range(-32768, 32768)


def check_queue(queue: Any) -> str:
    """Return ``queue`` if it is a usable queue name, else raise ``ValueError``."""
    if not isinstance(queue, str) or not 0 < len(queue) <= QUEUE_MAX_LENGTH:
        raise ValueError(
            f"queue must be a name of 1 to {QUEUE_MAX_LENGTH} characters, not {queue!r}"
        )
    return queue


def check_queues(queues: Iterable[Any]) -> list[str]:
    """Return ``queues`` checked one by one, without duplicates, in their order.

    ``*`` is refused: a worker takes tasks of the queues it names, there is no wildcard.
    """
    checked: dict[str, None] = {}  # a dict keeps the order and finds duplicates at once
    for queue in queues:
        if queue == "*":
            raise ValueError(
                "queue '*' is not a wildcard: name every queue the worker should take, "
                "for example -Q default,mail"
            )
        checked[check_queue(queue)] = None
    if not checked:
        raise ValueError("no queue given")
    return list(checked)
