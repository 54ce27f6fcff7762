"""Where the database keeps dead rows, storage parameters for a queue's churn.

On PostgreSQL, autovacuum of the task table after a fixed number of dead rows instead
of a share of the table (``Engine.table_tuning_sql``; why, beside
``taskq.backends.postgresql.TABLE_TUNING``). Other databases get nothing.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations

from taskq.backends import engine_for


def table_tuning(apply: bool) -> Callable[[Any, Any], None]:
    """Apply (or take back) the database engine's tuning of the task table."""

    def operation(apps: Any, schema_editor: Any) -> None:
        engine = engine_for(schema_editor.connection)
        table = apps.get_model("taskq", "Task")._meta.db_table
        sql = engine.table_tuning_sql(table) if apply else engine.table_untuning_sql(table)
        if sql:
            schema_editor.execute(sql, params=None)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0011_failed_list_index_partial"),
    ]

    operations = [
        migrations.RunPython(table_tuning(True), table_tuning(False), elidable=False),
    ]
