"""Where the database can announce new tasks, every INSERT into the task table does.

The trigger's SQL is the database engine's (``Engine.create_wakeup_sql``; on PostgreSQL
a statement-level trigger that NOTIFYs the queues it wrote to, at commit). Databases
without such a channel get nothing; there, workers poll.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations

from taskq.backends import engine_for


def wakeup_trigger(create: bool) -> Callable[[Any, Any], None]:
    """Create (or drop) the database engine's wake-up trigger, where it has one."""

    def operation(apps: Any, schema_editor: Any) -> None:
        engine = engine_for(schema_editor.connection)
        sql = engine.create_wakeup_sql if create else engine.drop_wakeup_sql
        if sql:
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0003_index_failed_list"),
    ]

    operations = [
        migrations.RunPython(wakeup_trigger(True), wakeup_trigger(False), elidable=False),
    ]
