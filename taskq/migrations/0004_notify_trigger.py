"""PostgreSQL: every INSERT into the task table NOTIFYs the queues it wrote to.

A statement-level trigger sees all rows of the statement at once (a ``COPY`` of ten
thousand rows sends one notification per queue), and PostgreSQL delivers identical
notifications of one transaction once, at commit. The application sends nothing: no
extra round trip per enqueue, and rows written by other programs wake workers too.
Other databases have no such channel; there, workers poll.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations

CREATE = """
CREATE FUNCTION taskq_notify_queues() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskq', queue) FROM (SELECT DISTINCT queue FROM new_rows) AS written;
    RETURN NULL;
END
$$;
CREATE TRIGGER taskq_task_notify AFTER INSERT ON taskq_task
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION taskq_notify_queues();
"""
DROP = """
DROP TRIGGER IF EXISTS taskq_task_notify ON taskq_task;
DROP FUNCTION IF EXISTS taskq_notify_queues();
"""


def run_on_postgresql(sql: str) -> Callable[[Any, Any], None]:
    def operation(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0003_index_failed_list"),
    ]

    operations = [
        migrations.RunPython(run_on_postgresql(CREATE), run_on_postgresql(DROP), elidable=False),
    ]
