"""The floor: a plain driver loop sending taskq's per-task SQL, with no framework.

Each client (psycopg, MySQLdb or sqlite3, in a process of its own) repeats what a taskq
worker sends for a no-op task, statement for statement, with the least transaction
wrapping the database allows:

- PostgreSQL: the strategy's ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)
  RETURNING …``, then the fenced ``DELETE``; each in autocommit, two commits a task.
- MariaDB: ``START TRANSACTION``, ``SELECT … FOR UPDATE SKIP LOCKED``, ``UPDATE``,
  ``COMMIT``, then the fenced ``DELETE`` in autocommit.
- SQLite: read the first due row, ``UPDATE … WHERE id AND version`` (a lost race reads
  again), then the fenced ``DELETE``; autocommit, WAL, a 20 s busy timeout, as
  taskq's connections have.

The rows are the drain's (queue ``default``, priority 0, due now) in taskq's own table
and indexes. Clients start together behind a barrier; the clock runs until the last
one finds nothing due.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from bench import databases, rows

TABLE = "taskq_task"
RETURNING = "id, name, queue, args, kwargs, retries, version, expires"

CLAIM = {
    "postgresql": (
        f"UPDATE {TABLE} SET state = 1, version = version + 1, worker_id = %s, started_at = %s "
        f"WHERE id = (SELECT id FROM {TABLE} WHERE state = 0 AND queue = %s AND eta <= %s "
        f"ORDER BY priority DESC, eta, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {RETURNING}"
    ),
    "mysql": (
        f"SELECT {RETURNING} FROM {TABLE} WHERE state = 0 AND queue IN (%s) AND eta <= %s "
        f"ORDER BY priority DESC, eta ASC, id ASC LIMIT 1 FOR UPDATE SKIP LOCKED"
    ),
    "sqlite": (
        f"SELECT {RETURNING} FROM {TABLE} WHERE state = 0 AND queue IN (?) AND eta <= ? "
        f"ORDER BY priority DESC, eta ASC, id ASC LIMIT 1"
    ),
}
TAKE = {
    "mysql": (
        f"UPDATE {TABLE} SET state = 1, version = version + 1, worker_id = %s, started_at = %s "
        f"WHERE id = %s"
    ),
    "sqlite": (
        f"UPDATE {TABLE} SET state = 1, version = version + 1, worker_id = ?, started_at = ? "
        f"WHERE id = ? AND state = 0 AND version = ?"
    ),
}
COMPLETE = f"DELETE FROM {TABLE} WHERE id = %s AND state = 1 AND version = %s"


def now_param(vendor: str) -> Any:
    """Return now as the driver takes it for taskq's columns (naive UTC off PostgreSQL)."""
    now = datetime.now(timezone.utc)
    if vendor == "postgresql":
        return now
    if vendor == "mysql":
        return now.replace(tzinfo=None)
    return str(now.replace(tzinfo=None))


def claim_one(vendor: str, connection: Any, worker_id: int) -> tuple[int, int] | None:
    """Claim the next due task; return ``(id, version)`` or ``None`` if nothing is due."""
    now = now_param(vendor)
    if vendor == "postgresql":
        row = connection.execute(CLAIM[vendor], [worker_id, now, "default", now]).fetchone()
        return None if row is None else (row[0], row[6])
    cursor = connection.cursor()
    if vendor == "mysql":
        cursor.execute("START TRANSACTION")
        cursor.execute(CLAIM[vendor], ["default", now])
        row = cursor.fetchone()
        if row is not None:
            cursor.execute(TAKE[vendor], [worker_id, now, row[0]])
        connection.commit()
        return None if row is None else (row[0], row[6] + 1)
    while True:  # SQLite: compare-and-set on the version, read again after a lost race
        try:
            row = cursor.execute(CLAIM[vendor], ["default", now]).fetchone()
            if row is None:
                return None
            cursor.execute(TAKE[vendor], [worker_id, now, row[0], row[6]])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            continue
        if cursor.rowcount == 1:
            return row[0], row[6] + 1


def complete(vendor: str, connection: Any, claimed: tuple[int, int]) -> int:
    sql = COMPLETE.replace("%s", "?") if vendor == "sqlite" else COMPLETE
    while True:
        try:
            cursor = connection.cursor()
            cursor.execute(sql, list(claimed))
            return int(cursor.rowcount)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise


def client(vendor: str, worker_id: int, barrier: Any, results: Any) -> None:
    connection = databases.connect(vendor, databases.TASKQ_NAME)
    done = 0
    barrier.wait()
    while (claimed := claim_one(vendor, connection, worker_id)) is not None:
        done += complete(vendor, connection, claimed)
    connection.close()
    results.put(done)


def prepare(vendor: str, tasks: int) -> int:
    """Empty the table, write ``tasks`` due rows and a worker row; return its id."""
    connection = databases.connect(vendor, databases.TASKQ_NAME)
    cursor = connection.cursor()
    cursor.execute(f"DELETE FROM {TABLE}")
    cursor.execute("DELETE FROM taskq_worker")
    cursor.execute(rows.insert_sql(vendor, TABLE, tasks, "due", mixed=False))
    p = "?" if vendor == "sqlite" else "%s"
    cursor.execute(
        "INSERT INTO taskq_worker (ident, host, pid, queues, started_at, heartbeat, succeeded, "
        f"failed) VALUES ({p}, 'bench', {p}, 'default', {p}, {p}, 0, 0)",
        [f"bare:{os.getpid()}:{time.time()}", os.getpid(), now_param(vendor), now_param(vendor)],
    )
    cursor.execute("SELECT id FROM taskq_worker WHERE host = 'bench' ORDER BY id DESC LIMIT 1")
    worker_id = int(cursor.fetchone()[0])
    connection.close()
    return worker_id


def measure(vendor: str, tasks: int, clients: int) -> dict[str, Any]:
    worker_id = prepare(vendor, tasks)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients + 1)
    results = context.Queue()
    processes = [
        context.Process(target=client, args=(vendor, worker_id, barrier, results))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    start = time.perf_counter()
    done = sum(results.get() for _ in processes)
    seconds = time.perf_counter() - start
    for process in processes:
        process.join()
    return {
        "tasks": tasks,
        "clients": clients,
        "seconds": round(seconds, 3),
        "rate": done / seconds,
        "done": done,
    }
