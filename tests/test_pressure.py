"""A queue next to a long transaction: slower, never wrong.

A session that wrote and then sits idle in its transaction pins the horizon below which
dead rows may be removed, on databases that keep dead rows (``Engine.keeps_dead_rows``:
PostgreSQL). While it does, every claim walks past more dead entries of the claim index.
The test holds such a transaction for ``HOLD`` seconds while two worker processes drain
a steady producer; then every task has run exactly once and the backlog drains. No
timing is asserted: the benchmark's ``pressure`` cell measures how much slower it gets.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from taskq import metrics
from taskq.backends import engine_for
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task, Worker
from taskq.vacuum import vacuum_if_needed
from test_matrix.testapp.tasks import record

pytestmark = pytest.mark.django_db(transaction=True)

HOLD = 10.0
#: Tasks queued a second, one commit each.
RATE = 40


@pytest.fixture
def engine():
    engine = engine_for(connection)
    if not engine.keeps_dead_rows:
        pytest.skip(f"{type(engine).__name__}: no dead rows, no horizon to pin")
    return engine


class IdleInTransaction(threading.Thread):
    """A session that writes a row in a transaction, then sits idle in it until told."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.holding = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        try:
            with transaction.atomic():
                now = timezone.now()
                Worker.objects.create(
                    ident="idle-in-transaction", host="t", pid=1, queues="", started_at=now,
                    heartbeat=now,
                )  # fmt: skip
                self.holding.set()
                self.release.wait(120)
                transaction.set_rollback(True)
        finally:
            connections.close_all()


def test_an_idle_transaction_loses_and_repeats_nothing(engine, workers, wait_until):
    processes = [workers.start() for _ in range(2)]
    for process in processes:
        workers.wait_until_registered(process)
    holder = IdleInTransaction()
    produced = 0

    def produce(seconds: float) -> None:
        nonlocal produced
        start, base = time.monotonic(), produced
        while time.monotonic() - start < seconds:
            while produced < base + (time.monotonic() - start) * RATE:
                record.delay(produced)
                produced += 1
            time.sleep(0.01)

    produce(1.0)
    holder.start()
    assert holder.holding.wait(30)
    produce(HOLD)
    during = metrics.table_health(connection.alias)
    holder.release.set()
    holder.join(30)
    wait_until(lambda: not Task.objects.exists(), timeout=180, message="the backlog did not drain")
    print(f"{produced} tasks; while the transaction was open: {during}")
    assert during["oldest_transaction_age"] is not None and during["dead_rows"] is not None
    lines = workers.records()
    assert sorted(lines, key=int) == [str(key) for key in range(produced)]
    for process in processes:
        assert process.poll() is None, "a worker died"


def test_a_worker_vacuums_the_task_table_from_the_dead_rows_it_is_told(engine, wait_until):
    table = Task._meta.db_table
    with transaction.atomic():
        enqueue_many([Call("test_matrix.testapp.tasks.noop", args=[i]) for i in range(500)])
    Task.objects.all().delete()
    wait_until(lambda: (engine.dead_rows(table) or 0) >= 500, message="no dead rows seen")
    assert not vacuum_if_needed(connection.alias)  # TASKQ_VACUUM_DEAD_ROWS = None: never
    with override_settings(TASKQ_VACUUM_DEAD_ROWS=10_000):
        assert not vacuum_if_needed(connection.alias)
    with override_settings(TASKQ_VACUUM_DEAD_ROWS=500):
        assert vacuum_if_needed(connection.alias)
    wait_until(lambda: (engine.dead_rows(table) or 0) < 500, message="the vacuum removed nothing")
