"""Enqueue rates: ``delay()`` one call at a time, and the bulk API.

``delay()`` runs in autocommit, one row and one commit per call, as a web request that
queues one task does. The bulk rate is ``taskq.enqueue.enqueue_many`` (the original has
no bulk API) inside one transaction, counted from the call to the commit.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from bench.target import Target


def delay_rate(target: Target, tasks: int) -> dict[str, Any]:
    target.clear()
    start = time.perf_counter()
    for key in range(tasks):
        target.delay(key)
    seconds = time.perf_counter() - start
    written = target.remaining()
    target.clear()
    return {
        "tasks": tasks,
        "written": written,
        "seconds": round(seconds, 3),
        "rate": tasks / seconds,
    }


def bulk_rate(target: Target, tasks: int) -> dict[str, Any]:
    from taskq.enqueue import Call, enqueue_many

    target.clear()
    calls = [Call(target.task_name, args=(key,)) for key in range(tasks)]
    start = time.perf_counter()
    with transaction.atomic():
        enqueue_many(calls)
    seconds = time.perf_counter() - start
    written = target.remaining()
    target.clear()
    return {
        "tasks": tasks,
        "written": written,
        "seconds": round(seconds, 3),
        "rate": tasks / seconds,
    }
