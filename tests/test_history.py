"""The history: outcomes per queue and minute written by the heartbeats, the backlog
sampled once a minute, old minutes pruned; ``metrics.history`` and ``taskq_stats``."""

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from taskq import history, metrics
from taskq.clock import read_database_now
from taskq.enqueue import Call, enqueue_many
from taskq.models import Minute, Task
from test_matrix.testapp.tasks import fail, record, retry_once


def totals(**filters):
    rows = Minute.objects.filter(**filters)
    return {kind: sum(getattr(row, kind) for row in rows) for kind in history.KINDS}


@pytest.mark.django_db(transaction=True)
def test_two_workers_count_every_outcome_once_per_queue(workers):
    """Two worker processes add to the same minutes' rows: no count is lost or doubled."""
    enqueue_many(Call("test_matrix.testapp.tasks.record", args=(i,)) for i in range(40))
    enqueue_many(Call("test_matrix.testapp.tasks.fail", queue="mail") for _ in range(5))
    for i in range(3):
        retry_once.apply_async((f"r{i}",), queue="mail")
    record.apply_async(("late",), expires=timezone.now() - dt.timedelta(seconds=1))
    runs = [workers.start("--burst", "--queues", "default,mail") for _ in range(2)]
    for process in runs:
        assert process.wait(timeout=120) == 0
    assert not Task.objects.exclude(state=Task.State.FAILED).exists()
    assert totals(queue="default") == {"succeeded": 40, "failed": 0, "retried": 0, "expired": 1}
    assert totals(queue="mail") == {"succeeded": 3, "failed": 5, "retried": 3, "expired": 0}
    assert Minute.objects.filter(queue="mail").exists()
    assert sum(entry["succeeded"] for entry in metrics.history(10)) == 43


@pytest.mark.django_db(transaction=True)
def test_an_insert_that_loses_the_race_adds_to_the_winners_row(monkeypatch):
    """Another worker creates the minute's row between our update and our insert."""
    minute = history.minute_of(read_database_now(DEFAULT_DB_ALIAS))
    sample = history.sample_backlog

    def the_other_worker_writes_first(using, queue):
        Minute.objects.create(queue=queue, minute=minute, succeeded=2, pending=1)
        return sample(using, queue)

    monkeypatch.setattr(history, "sample_backlog", the_other_worker_writes_first)
    created = history.add_to_minute(DEFAULT_DB_ALIAS, "default", minute, {"succeeded": 3})
    assert created is False
    (row,) = Minute.objects.all()
    assert (row.succeeded, row.failed, row.pending) == (5, 0, 1)


@pytest.mark.django_db
def test_the_first_write_of_a_minute_samples_the_backlog_and_prunes_old_rows():
    now = read_database_now(DEFAULT_DB_ALIAS)
    old = Minute.objects.create(
        queue="default", minute=history.minute_of(now) - dt.timedelta(hours=25)
    )
    kept = Minute.objects.create(
        queue="default", minute=history.minute_of(now) - dt.timedelta(hours=23)
    )
    enqueue_many(
        Call("test_matrix.testapp.tasks.record", eta=timezone.now() - dt.timedelta(seconds=90 + i))
        for i in range(4)
    )
    record.apply_async(("future",), countdown=3600)
    record.apply_async(("other queue",), queue="mail")
    minute = history.minute_of(now)
    assert history.add_to_minute(DEFAULT_DB_ALIAS, "default", minute, {"failed": 1}) is True
    row = Minute.objects.get(queue="default", minute=minute)
    assert (row.pending, row.failed) == (4, 1)
    assert 90 <= row.oldest_pending_age < 600
    assert not Minute.objects.filter(pk=old.pk).exists()
    assert Minute.objects.filter(pk=kept.pk).exists()
    # A second write adds to the row and samples nothing again.
    Task.objects.all().delete()
    assert history.add_to_minute(DEFAULT_DB_ALIAS, "default", minute, {"failed": 2}) is False
    row.refresh_from_db()
    assert (row.pending, row.failed) == (4, 3)


@pytest.mark.django_db
def test_series_fills_the_minutes_no_worker_wrote_and_sums_the_queues():
    end = history.minute_of(read_database_now(DEFAULT_DB_ALIAS))
    Minute.objects.create(queue="default", minute=end, succeeded=3, pending=2, oldest_pending_age=5)
    Minute.objects.create(queue="mail", minute=end, failed=1, pending=7, oldest_pending_age=9)
    Minute.objects.create(queue="mail", minute=end - dt.timedelta(minutes=2), retried=4)
    Minute.objects.create(queue="mail", minute=end - dt.timedelta(minutes=20), retried=100)
    entries = history.series(5)
    assert [e["minute"] for e in entries] == [end - dt.timedelta(minutes=4 - i) for i in range(5)]
    assert entries[-1] == {
        "minute": end,
        "succeeded": 3,
        "failed": 1,
        "retried": 0,
        "expired": 0,
        "pending": 9,
        "oldest_pending_age": 9.0,
    }
    assert entries[-3]["retried"] == 4 and entries[-3]["pending"] == 0
    assert entries[0]["pending"] is None and entries[0]["succeeded"] == 0
    assert [e["failed"] for e in history.series(5, queue="default")] == [0] * 5
    assert json.loads(json.dumps(metrics.history(5)))[-1]["minute"] == end.isoformat()


@pytest.mark.django_db
def test_taskq_stats_prints_the_last_minutes():
    end = history.minute_of(read_database_now(DEFAULT_DB_ALIAS))
    Minute.objects.create(queue="default", minute=end, succeeded=12, failed=3, pending=4)
    out = io.StringIO()
    call_command("taskq_stats", "--history", "3", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "minute", "succeeded", "failed", "retried", "expired", "pending", "oldest"
    ]  # fmt: skip
    assert len(lines) == 4
    assert lines[-1].split()[1:] == ["12", "3", "0", "0", "4", "—"]
    assert lines[1].split()[1:] == ["0", "0", "0", "0", "—", "—"]
    out = io.StringIO()
    call_command("taskq_stats", "--history", "2", "--json", stdout=out)
    assert json.loads(out.getvalue())[-1]["succeeded"] == 12


def test_failing_keeps_the_ident_of_the_worker_that_ran_it(transactional_db):
    """After its worker row is deleted, a failed task still names that worker."""
    from taskq.backends import get_strategy
    from taskq.models import Worker

    now = timezone.now()
    worker = Worker.objects.create(
        ident="web-9:77:cafe", host="web-9", pid=77, queues="default", started_at=now, heartbeat=now
    )
    fail.delay("x")
    strategy = get_strategy(DEFAULT_DB_ALIAS)
    claim = strategy.claim(["default"], worker.pk)
    assert strategy.fail(claim, "Traceback …\nValueError: x")
    worker.delete()
    task = Task.objects.get(pk=claim.id)
    assert (task.worker_id, task.worker_ident) == (None, "web-9:77:cafe")
    # Queued again by hand, it still says who ran it last.
    Task.objects.filter(pk=task.pk).retry()
    assert Task.objects.get(pk=task.pk).worker_ident == "web-9:77:cafe"
