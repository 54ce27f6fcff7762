"""metrics.snapshot(): the five groups, per queue and per task name."""

import datetime as dt

import pytest
from django.utils import timezone

from taskq import metrics
from taskq.conf import settings
from taskq.models import Task, Worker
from test_matrix.testapp.tasks import fail, noop, record

pytestmark = pytest.mark.django_db(transaction=True)


def make_worker(ident, heartbeat_age):
    now = timezone.now()
    return Worker.objects.create(
        ident=ident,
        host="h",
        pid=1,
        queues="default",
        started_at=now,
        heartbeat=now - dt.timedelta(seconds=heartbeat_age),
    )


def start(result, worker):
    Task.objects.filter(pk=result.id).update(state=Task.State.STARTED, worker=worker)


def test_snapshot_counts_every_group_per_queue_and_name():
    alive = make_worker("alive", heartbeat_age=0)
    gone = make_worker("gone", heartbeat_age=settings.DIRTY_AFTER + 5)
    old = timezone.now() - dt.timedelta(seconds=30)
    noop.apply_async(eta=old)  # pending, the oldest
    noop.delay()  # pending
    record.apply_async((1,), queue="mail")  # pending
    record.apply_async((2,), countdown=600)  # future
    start(noop.delay(), alive)  # active
    start(noop.apply_async(queue="mail"), gone)  # dirty: stale heartbeat
    start(record.delay(3), None)  # dirty: no worker at all
    failed = fail.delay()
    Task.objects.filter(pk=failed.id).update(state=Task.State.FAILED)

    snap = metrics.snapshot()

    groups = {name: snap[name] for name in metrics.GROUPS}
    assert groups == {"failed": 1, "dirty": 2, "active": 1, "pending": 3, "future": 1}
    assert snap["queues"]["mail"] == {
        "failed": 0,
        "dirty": 1,
        "active": 0,
        "pending": 1,
        "future": 0,
    }
    noop_counts = snap["tasks"]["test_matrix.testapp.tasks.noop"]
    assert noop_counts == {"failed": 0, "dirty": 1, "active": 1, "pending": 2, "future": 0}
    assert snap["tasks"]["test_matrix.testapp.tasks.fail"]["failed"] == 1
    assert 30 <= snap["oldest_pending_age"] < 60
    assert snap["workers"] == 1
    # The querysets behind the admin agree with the snapshot.
    assert Task.objects.dirty().count() == 2
    assert Task.objects.active().count() == 1
    assert Task.objects.pending().count() == 3
    assert Task.objects.future().count() == 1
    assert Task.objects.failed().count() == 1


def test_an_empty_table():
    snap = metrics.snapshot()
    assert [snap[name] for name in metrics.GROUPS] == [0] * 5
    assert snap["oldest_pending_age"] is None
    assert snap["queues"] == {} and snap["tasks"] == {}
