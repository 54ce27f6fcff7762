"""The floor: a plain driver loop sending taskq's per-task SQL, with no framework.

Each client (psycopg, MySQLdb or sqlite3, in a process of its own) repeats what a taskq
worker sends for a no-op task, statement for statement: the statements themselves are
rendered by taskq (``bench/statements.py``, in an agent) and handed to the clients, so
the floor cannot drift from the worker's SQL. The delete of the task that just
succeeded and the claim of the next one go together, one commit (one disk flush) per
task, as the worker sends them:

- PostgreSQL: one statement, the delete and a call of the claim function
  (``taskq_claim``), prepared as the worker prepares it.
- MariaDB: ``START TRANSACTION``, the fenced ``DELETE``, the claim's ``SELECT … FOR
  UPDATE SKIP LOCKED``, the fenced ``UPDATE``, ``COMMIT``, in READ COMMITTED as Django's
  connections are.
- SQLite: ``BEGIN IMMEDIATE``, the fenced ``DELETE``, taskq's one-statement claim,
  ``COMMIT``; WAL, a 20 s busy timeout and foreign keys on, as taskq's connections
  have.

With ``write`` each task also writes one row, the INSERT ``bench.write`` sends through
Django's connection, sent as Django sends it: on PostgreSQL with the values bound on the
client and never prepared (Django's psycopg cursor, unless ``server_side_binding`` is
on), elsewhere as the driver's cursor sends it. The row's key is the task's id. Two ways:

- ``write="own"`` (the floor the drain's ratio is taken against, ``bare_write_K``): the
  INSERT commits on its own, in autocommit, and then the delete and the next claim
  commit together, as above: two commits per task. That is what a queue's worker can
  do at best, because a task's statement is the task's business: it runs in the
  application's own transaction handling (autocommit, under Django's default), before
  the worker knows whether the task succeeded, and the task's row must be durable
  whatever happens to the worker's bookkeeping after it. It is also the issue's reading
  of the floor ("the same claim and the same INSERT, one commit each").
- ``write="django"`` (``bare_write_K_django``): the same two commits, with the INSERT
  sent through Django's connection (``django.db.connection.cursor()``, set up in the
  client process) exactly as the task sends it. Not a floor: it is the bare loop plus
  the one thing no queue can take off a task, the cost of Django's cursor around the
  task's own statement, so it shows how much of the gap to the floor is Django's.
- ``write="together"`` (``bare_write_K_one_commit``): the INSERT at the start of the
  step's transaction, one commit per task (PostgreSQL then needs ``BEGIN`` and
  ``COMMIT`` around its two statements). No queue that records a task's outcome after
  the task ran can do this without running every task inside a transaction the worker
  opened, which changes what a task's own ``atomic()`` and error handling mean; it is
  measured to show what the second commit costs.

Folding the INSERT into the step's statement would be faster still, but no queue can
fold a task's own statement into its claim, so neither floor does.

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
#: MariaDB's deadlock and lock wait timeout: contention, not failure.
MYSQL_CONTENTION = (1205, 1213)
#: The state of a claimed row (``Task.State.STARTED``), the fence of every delete.
STARTED = 1
#: The row ``bench.write`` writes (``bench/tasks.py``), with the driver's placeholders.
WRITE = {
    "postgresql": 'INSERT INTO "bench_written" ("key") VALUES (%s) RETURNING "bench_written"."id"',
    "mysql": "INSERT INTO `bench_written` (`key`) VALUES (%s) RETURNING `bench_written`.`id`",
    "sqlite": 'INSERT INTO "bench_written" ("key") VALUES (?) RETURNING "bench_written"."id"',
}

Claimed = tuple[int, int]  # (id, version) of the task this client holds


def now_param(vendor: str) -> Any:
    """Return now as the driver takes it for taskq's columns (naive UTC off PostgreSQL)."""
    now = datetime.now(timezone.utc)
    if vendor == "postgresql":
        return now
    if vendor == "mysql":
        return now.replace(tzinfo=None)
    return str(now.replace(tzinfo=None))


def step(
    vendor: str,
    connection: Any,
    sql: dict[str, Any],
    done: Claimed | None,
    worker_id: int,
    write: str | None = None,
) -> tuple[int, Claimed | None]:
    """Delete the task ``done`` and claim the next with taskq's statements ``sql``
    (``bench/statements.py``); return (rows deleted, the claim).

    With ``write``, first write the row task ``done`` writes: in a commit of its own
    (``"own"``) or in the same transaction (``"together"``).
    """
    if done is None:
        write = None
    if write == "own":
        insert(vendor, connection, done[0])  # type: ignore[index]
        write = None
    elif write == "django":
        insert_through_django(done[0])  # type: ignore[index]
        write = None
    together = write == "together"
    previous = done or (0, 0)
    if vendor == "postgresql":
        params = [*previous, worker_id, ["default"], []]
        if together:
            with connection.transaction():
                insert_as_django_does(connection, previous[0])
                row = connection.execute(sql["step"], params, prepare=True).fetchone()
        else:
            row = connection.execute(sql["step"], params, prepare=True).fetchone()
        return row[0], None if row[1] is None else (row[1], row[7])
    cursor = connection.cursor()
    if vendor == "mysql":
        while True:
            try:
                cursor.execute("START TRANSACTION")
                if together:
                    cursor.execute(WRITE[vendor], [previous[0]])
                    cursor.fetchone()
                deleted = cursor.execute(sql["delete"], [*previous, STARTED]) if done else 0
                cursor.execute(sql["select"], sql["select_params"])
                row = cursor.fetchone()
                if row is not None:
                    cursor.execute(sql["take"], [worker_id, row[0], row[6]])
                connection.commit()
                return int(deleted), None if row is None else (row[0], row[6] + 1)
            except connection.OperationalError as error:
                # A deadlock or lock wait timeout rolls the step back; taskq's worker
                # waits it out and claims again, and so does this loop.
                if error.args[0] not in MYSQL_CONTENTION:
                    raise
                connection.rollback()
    while True:  # SQLite: the whole step holds the write lock (BEGIN IMMEDIATE)
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            continue
        if together:
            cursor.execute(WRITE[vendor], [previous[0]]).fetchone()
        deleted = cursor.execute(sql["delete"], [*previous, STARTED]).rowcount if done else 0
        row = cursor.execute(sql["claim"], [worker_id, "default", "default"]).fetchone()
        cursor.execute("COMMIT")
        return deleted, None if row is None else (row[0], row[6])


def insert_as_django_does(connection: Any, key: int) -> None:
    """PostgreSQL: send the write through a client-binding cursor, as Django's does."""
    import psycopg

    psycopg.ClientCursor(connection).execute(WRITE["postgresql"], [key]).fetchone()


def insert_through_django(key: int) -> None:
    """Write the task's row as ``bench.write`` writes it: Django's cursor, autocommit."""
    from django.db import connection

    from bench.tasks import WRITE_SQL

    with connection.cursor() as cursor:
        cursor.execute(WRITE_SQL[connection.vendor], [key])
        cursor.fetchone()


def insert(vendor: str, connection: Any, key: int) -> None:
    """Write the task's row in a commit of its own (the driver's autocommit)."""
    if vendor == "postgresql":
        insert_as_django_does(connection, key)
        return
    cursor = connection.cursor()
    if vendor == "mysql":
        cursor.execute(WRITE[vendor], [key])  # autocommit: its own commit
        cursor.fetchone()
        return
    while True:  # autocommit: SQLite takes the write lock for the statement
        try:
            cursor.execute(WRITE[vendor], [key]).fetchone()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise


def client(
    vendor: str,
    sql: dict[str, Any],
    worker_id: int,
    write: str | None,
    barrier: Any,
    results: Any,
    environ: dict[str, str] | None,
) -> None:
    if write == "django":
        # This process forked from the orchestrator, which has no Django: set it up
        # here as an agent's is (its settings module, database, CONN_MAX_AGE).
        os.environ.update(environ or {})
        import django

        django.setup()
    connection = databases.connect(vendor, databases.TASKQ_NAME)
    if vendor == "mysql":
        # The session taskq's worker has: Django opens MySQL connections in READ
        # COMMITTED. MariaDB's own default, REPEATABLE READ, runs this loop about 20 %
        # faster (gap locks cost less than a read view per statement, here).
        connection.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    if vendor == "sqlite":
        # As Django opens SQLite connections: the claim's worker_id is checked against
        # taskq_worker, as the servers check it.
        connection.execute("PRAGMA foreign_keys = ON")
    finished = 0
    barrier.wait()
    try:
        deleted, claimed = step(vendor, connection, sql, None, worker_id)
        while claimed is not None:
            deleted, claimed = step(vendor, connection, sql, claimed, worker_id, write)
            finished += deleted
    except Exception as error:  # noqa: BLE001  reported by measure(), which would wait forever
        results.put(f"{type(error).__name__}: {error}")
        raise
    connection.close()
    results.put(finished)


def prepare(vendor: str, tasks: int) -> int:
    """Empty the tables, write ``tasks`` due rows and a worker row; return its id."""
    connection = databases.connect(vendor, databases.TASKQ_NAME)
    cursor = connection.cursor()
    cursor.execute(f"DELETE FROM {TABLE}")
    cursor.execute("DELETE FROM bench_written")
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


def written(vendor: str) -> int:
    connection = databases.connect(vendor, databases.TASKQ_NAME)
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM bench_written")
    count = int(cursor.fetchone()[0])
    connection.close()
    return count


def measure(
    vendor: str,
    sql: dict[str, Any],
    tasks: int,
    clients: int,
    write: str | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Drain ``tasks`` rows with ``clients`` clients sending taskq's statements ``sql``
    (``bench/statements.py``); ``write``: None, "own", "django" (with ``environ``, an
    agent's environment), "together"."""
    worker_id = prepare(vendor, tasks)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=client, args=(vendor, sql, worker_id, write, barrier, results, environ)
        )
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    start = time.perf_counter()
    answers = [results.get() for _ in processes]
    seconds = time.perf_counter() - start
    for process in processes:
        process.join()
    failures = [answer for answer in answers if isinstance(answer, str)]
    if failures:
        raise RuntimeError(f"a bare client failed: {failures[0]}")
    done = sum(answers)
    result = {
        "tasks": tasks,
        "clients": clients,
        "seconds": round(seconds, 3),
        "rate": done / seconds,
        "done": done,
    }
    if write:
        result["written"] = written(vendor)
    return result
