"""The write task's body alone: ``Written.objects.create`` in a loop, no queue around it.

Beside it, the same INSERT sent through the driver's cursor of the same connection, as
the bare loop sends it. Both commit each row (autocommit). The difference is what the
ORM costs a task that writes one row; the drain with ``bench.write`` pays it and the
bare loop does not, so it bounds from below what ``drain_write_K / bare_write_K`` can
reach. ``cpu_us`` is this process's CPU time per row, which a busy machine skews less
than the rate.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from bench.bare import WRITE
from bench.models import Written
from bench.target import Target, truncate


def _timed(count: int, write: Any) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for key in range(count):
        write(key)
    return count / (time.perf_counter() - wall), 1e6 * (time.process_time() - cpu) / count


def measure(target: Target, tasks: int) -> dict[str, Any]:
    truncate(Written._meta.db_table)
    sql = WRITE[connection.vendor].replace("?", "%s")
    connection.ensure_connection()
    driver = connection.connection

    def raw(key: int) -> None:
        cursor = driver.cursor()
        cursor.execute(sql.replace("%s", "?") if connection.vendor == "sqlite" else sql, [key])
        cursor.fetchone()
        cursor.close()

    orm_rate, orm_cpu = _timed(tasks, lambda key: Written.objects.create(key=key))
    raw_rate, raw_cpu = _timed(tasks, raw)
    truncate(Written._meta.db_table)
    return {
        "tasks": tasks,
        "rate": orm_rate,
        "cpu_us": orm_cpu,
        "driver_rate": raw_rate,
        "driver_cpu_us": raw_cpu,
    }
