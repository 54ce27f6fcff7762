"""A worker's vacuum of the task table, for servers where nobody else vacuums it.

A queue table makes dead rows on every task (on PostgreSQL: the claimed version of the
row, then the row itself), and every claim walks past the dead entries of the claim
index until a vacuum removes them. Autovacuum does that where it runs (migration
``table_tuning`` has it start after a fixed number of dead rows); where it is off or
falls behind, ``TASKQ_VACUUM_DEAD_ROWS`` lets the workers do it: now and then
(``CHECK_EVERY``) a worker reads the table's dead rows from the server's statistics and,
from that many on, runs the engine's ``VACUUM`` between two tasks. It blocks no writer,
skips the table if another vacuum holds it, and never truncates the file (which would
lock out every claim); the worker runs no task meanwhile, so the threshold bounds how
long that takes. A transaction left open still pins what any vacuum may remove.
"""

from __future__ import annotations

import logging
import time

from django.db import connections

from taskq.backends import engine_for
from taskq.conf import settings
from taskq.models import Task

logger = logging.getLogger("taskq.worker")

#: Seconds between two looks at the task table's dead rows, per worker.
CHECK_EVERY = 60.0


def vacuum_if_needed(using: str) -> bool:
    """Vacuum the task table on ``using`` if it holds ``TASKQ_VACUUM_DEAD_ROWS`` dead rows
    or more and the database keeps dead rows; return whether it did."""
    threshold = settings.VACUUM_DEAD_ROWS
    if threshold is None:
        return False
    connection = connections[using]
    engine = engine_for(connection)
    table = Task._meta.db_table
    sql = engine.vacuum_sql(table)
    if not sql or connection.in_atomic_block:
        return False
    dead = engine.dead_rows(table)
    if dead is None or dead < threshold:
        return False
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(sql)
    logger.info("Vacuumed the task table (%d dead rows) in %.3fs", dead, time.monotonic() - started)
    return True
