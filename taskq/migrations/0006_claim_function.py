"""Where the database's planner must be told how to read the claim, a claim function.

On PostgreSQL the claim is ``taskq_claim(worker, queues)`` and the idle worker's next-ETA
query ``taskq_next_due(queues, within)``, functions whose planner settings leave an index
read in order as the only plan (``Engine.claim_function_sql``; why, in
``taskq.backends.postgresql.claim_function_sql``). Other databases get nothing.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations

from taskq.backends import engine_for


def claim_function(create: bool) -> Callable[[Any, Any], None]:
    """Create (or drop) the database engine's claim function, where it has one."""

    def operation(apps: Any, schema_editor: Any) -> None:
        engine = engine_for(schema_editor.connection)
        sql = engine.claim_function_sql() if create else engine.drop_claim_function_sql
        if sql:
            schema_editor.execute(sql, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0005_task_cancel_requested_by"),
    ]

    operations = [
        migrations.RunPython(claim_function(True), claim_function(False), elidable=False),
    ]
