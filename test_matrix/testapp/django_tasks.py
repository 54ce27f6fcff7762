"""@django.tasks.task functions (Django >= 6.0) that the tests queue through taskq."""

import asyncio
import json

from django.tasks import task

from test_matrix.testapp.tasks import _record


@task
def record(key):
    _record(f"django {key}")


@task(priority=7, queue_name="mail")
def mail(to):
    _record(f"mail {to}")


@task(takes_context=True)
def with_context(context, key):
    result = context.task_result
    _record(
        json.dumps(
            {
                "key": key,
                "id": result.id,
                "attempt": context.attempt,
                "status": str(result.status),
                "backend": result.backend,
                "worker_ids": result.worker_ids,
                "name": result.task.name,
            }
        )
    )


@task
async def async_record(key):
    await asyncio.sleep(0)
    _record(f"async {key}")


@task
def explode(message="boom"):
    raise RuntimeError(message)


@task(takes_context=True)
def describe(context):
    """Record the TaskResult the worker gives the task, to compare with enqueue()'s."""
    result = context.task_result
    _record(
        json.dumps(
            {
                "id": result.id,
                "enqueued_at": result.enqueued_at and result.enqueued_at.isoformat(),
                "priority": result.task.priority,
                "queue_name": result.task.queue_name,
                "run_after": result.task.run_after and result.task.run_after.isoformat(),
            }
        )
    )


@task
def answer():
    return 42


@task
def pair():
    return (1, 2)


@task
def not_json():
    return {1, 2}
