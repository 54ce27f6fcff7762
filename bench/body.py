"""The write task's body alone, with no queue around it, three ways, each row committed
on its own (autocommit):

- ``rate`` / ``cpu_us``: ``bench.write``'s body, the INSERT through Django's cursor;
- ``driver_rate`` / ``driver_cpu_us``: the same INSERT through the driver of the same
  connection, as the bare loop sends it (``bench.bare.insert``);
- ``orm_rate`` / ``orm_cpu_us``: ``Written.objects.create``, what the ORM would add.

The first two differ by what Django's cursor wrapper costs; the drain with
``bench.write`` pays it and the bare loop does not, so it bounds from below what
``drain_write_K / bare_write_K`` can reach. ``cpu_us`` is this process's CPU time per
row, which a busy machine skews less than the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from bench import bare
from bench.models import Written
from bench.target import Target, truncate
from bench.tasks import WRITE_SQL


def _timed(count: int, write: Callable[[int], Any]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for key in range(count):
        write(key)
    return count / (time.perf_counter() - wall), 1e6 * (time.process_time() - cpu) / count


def measure(target: Target, tasks: int) -> dict[str, Any]:
    truncate(Written._meta.db_table)
    vendor = connection.vendor
    sql = WRITE_SQL[vendor]
    connection.ensure_connection()
    driver = connection.connection

    def through_django(key: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [key])
            cursor.fetchone()

    rate, cpu = _timed(tasks, through_django)
    driver_rate, driver_cpu = _timed(tasks, lambda key: bare.insert(vendor, driver, key))
    orm_rate, orm_cpu = _timed(tasks, lambda key: Written.objects.create(key=key))
    truncate(Written._meta.db_table)
    return {
        "tasks": tasks,
        "rate": rate,
        "cpu_us": cpu,
        "driver_rate": driver_rate,
        "driver_cpu_us": driver_cpu,
        "orm_rate": orm_rate,
        "orm_cpu_us": orm_cpu,
    }
