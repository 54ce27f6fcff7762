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
