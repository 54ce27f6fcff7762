"""Where the database's planner must be told how to read the claim, claim functions.

On PostgreSQL the claim is ``taskq_claim(worker, queues, held)`` and the idle worker's
next-ETA query ``taskq_next_due(queues, within)``, functions whose planner settings
leave an index read in order as the only plan (``Engine.claim_functions_sql``; why, in
``taskq.backends.postgresql.claim_function_sql``). Other databases get nothing.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations

from taskq.backends import engine_for


def claim_functions(create: bool) -> Callable[[Any, Any], None]:
    """Create (or drop) the database engine's claim functions, where it has any."""

    def operation(apps: Any, schema_editor: Any) -> None:
        engine = engine_for(schema_editor.connection)
        sql = engine.claim_functions_sql() if create else engine.drop_claim_functions_sql
        if sql:
            schema_editor.execute(sql, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0013_task_worker_ident_and_minute_history"),
    ]

    operations = [
        migrations.RunPython(claim_functions(True), claim_functions(False), elidable=False),
    ]
