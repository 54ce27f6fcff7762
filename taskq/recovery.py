"""Automatic recovery of dirty tasks that are declared safe to run again (``acks_late``).

Every other dirty task waits for a human (the admin's "Retry now"): only the task's
author knows whether running it twice is harmless.
"""

from __future__ import annotations

import logging

from taskq import registry
from taskq.clock import database_now
from taskq.models import Task, dirty_q, last_worker_ident
from taskq.retries import RetryPolicy

logger = logging.getLogger("taskq.worker")


def requeue_dirty_acks_late(using: str) -> None:
    """Queue again, as one more retry, dirty tasks declared ``acks_late=True``.

    Each row is taken back with a compare-and-set on its version, so however many
    workers notice it, it is queued again exactly once. A lost worker counts as a retry
    against the task's ``max_retries``, as ``task.retry()`` counts it; past the limit the
    task is failed instead. Other dirty tasks wait for a human.
    """
    policies: dict[str, RetryPolicy] = {
        name: task.policy for name, task in registry.items() if task.acks_late
    }
    if not policies:
        return
    tasks = Task.objects.using(using)
    dirty = tasks.dirty().filter(name__in=policies)
    for pk, name, version, retries in dirty.values_list("pk", "name", "version", "retries"):
        # Still dirty: a worker that came back to life keeps its task.
        row = tasks.filter(dirty_q(), pk=pk, version=version, state=Task.State.STARTED)
        policy = policies[name]
        reason = f"its worker died while it ran (acks_late); attempt {retries + 1}"
        if policy.exhausted(retries):
            done = row.update(
                state=Task.State.FAILED,
                error=f"{reason}, and max_retries ({policy.max_retries}) was reached",
                failed_at=database_now(),
                worker_ident=last_worker_ident(),
            )
            verb = "failed"
        else:
            done = row.requeue(database_now(), error=reason, retried=True)
            verb = "queued again"
        if done:
            logger.warning("Dirty task %s[%s] %s: %s", name, pk, verb, reason)
