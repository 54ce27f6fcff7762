"""The contract every claim strategy keeps, run against each one the database can use."""

import datetime as dt
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from taskq.backends import (
    OptimisticStrategy,
    get_strategy,
    strategy_class,
    usable_strategies,
)
from taskq.backends.mysql import MySQLStrategy
from taskq.backends.postgresql import PostgreSQLStrategy
from taskq.backends.sqlite import SQLiteStrategy
from taskq.enqueue import Call, enqueue
from taskq.models import CLAIM_ORDER, Task, Worker

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "test_matrix.testapp.tasks.noop"


@pytest.fixture
def worker_row():
    now = timezone.now()
    return Worker.objects.create(
        ident="test:1:x", host="test", pid=1, queues="default", started_at=now, heartbeat=now
    )


@pytest.fixture
def strategy(strategy_cls):
    return strategy_cls("default")


def add(**options):
    return enqueue(Call(NAME, **options))


def claim(strategy, worker_row, queues=("default",)):
    return strategy.claim(list(queues), worker_row.pk)


def test_nothing_due_claims_nothing(strategy, worker_row):
    add(countdown=60)
    add(queue="other")
    assert claim(strategy, worker_row) is None


def test_claim_marks_the_row_started_by_this_worker(strategy, worker_row):
    task = add(args=[1], kwargs={"a": 2})
    got = claim(strategy, worker_row)
    row = Task.objects.get()
    assert got.id == task.pk and got.name == NAME
    assert (got.args, got.kwargs) == ("[1]", '{"a":2}')
    assert row.state == Task.State.STARTED
    assert row.worker_id == worker_row.pk
    assert row.version == got.version == task.version + 1
    assert row.started_at is not None
    assert claim(strategy, worker_row) is None


def test_claim_order_is_priority_then_eta_then_id(strategy, worker_row):
    now = timezone.now()
    late_high = add(priority=5, eta=now - dt.timedelta(seconds=1))
    early_high = add(priority=5, eta=now - dt.timedelta(seconds=10))
    low = add(priority=-1, eta=now - dt.timedelta(hours=1))
    normal_a = add(eta=now - dt.timedelta(seconds=5))
    normal_b = add(eta=now - dt.timedelta(seconds=5))
    add(priority=100, countdown=60)  # the highest priority, but not due
    expected = [early_high, late_high, normal_a, normal_b, low]
    assert [claim(strategy, worker_row).id for _ in expected] == [t.pk for t in expected]
    assert claim(strategy, worker_row) is None


def test_claim_takes_only_the_given_queues(strategy, worker_row):
    mail = add(queue="mail", priority=1)
    add(queue="other", priority=9)
    default = add()
    got = [claim(strategy, worker_row, ["mail", "default"]).id for _ in range(2)]
    assert got == [mail.pk, default.pk]
    assert claim(strategy, worker_row, ["mail", "default"]) is None


def test_failed_and_started_rows_are_never_claimed(strategy, worker_row):
    add()
    add()
    Task.objects.filter(pk=Task.objects.first().pk).update(state=Task.State.FAILED)
    first = claim(strategy, worker_row)
    assert first is not None
    assert claim(strategy, worker_row) is None


def test_complete_deletes_the_task(strategy, worker_row):
    add()
    assert strategy.complete(claim(strategy, worker_row)) is True
    assert Task.objects.count() == 0


def test_retry_requeues_with_one_more_retry(strategy, worker_row):
    add()
    got = claim(strategy, worker_row)
    eta = timezone.now() + dt.timedelta(minutes=3)
    assert strategy.retry(got, eta, "Traceback: boom") is True
    row = Task.objects.get()
    assert (row.state, row.eta, row.retries, row.error) == (
        Task.State.QUEUED,
        eta,
        1,
        "Traceback: boom",
    )
    assert row.worker_id is None and row.version == got.version + 1


def test_fail_keeps_the_row_with_its_error(strategy, worker_row):
    add()
    got = claim(strategy, worker_row)
    assert strategy.fail(got, "Traceback: boom") is True
    row = Task.objects.get()
    assert (row.state, row.error) == (Task.State.FAILED, "Traceback: boom")
    assert row.failed_at is not None


@pytest.mark.parametrize("how", ["claim", "complete_and_claim"])
def test_claims_take_exactly_the_due_tasks_in_the_defined_order(strategy, worker_row, how):
    """Every strategy claims what ``TaskQuerySet.due()`` in ``CLAIM_ORDER`` names, no
    other row and in no other order: a strategy whose SQL drifts from the one definition
    of a claim fails here."""
    now = timezone.now()
    etas = [now - dt.timedelta(minutes=minutes) for minutes in (30, 5, 1)]
    for priority in (0, 5, -3):
        for eta in etas:
            add(priority=priority, eta=eta)
            add(priority=priority, eta=eta, queue="mail")
        add(priority=priority, eta=etas[1])  # a tie: the older row first
    expired = add(priority=2, eta=etas[2])
    Task.objects.filter(pk=expired.pk).update(expires=now - dt.timedelta(seconds=1))
    add(priority=9, countdown=600)  # future
    add(priority=9, queue="other")  # another queue
    failed, started = add(priority=9), add(priority=9)
    Task.objects.filter(pk=failed.pk).update(state=Task.State.FAILED)
    Task.objects.filter(pk=started.pk).update(state=Task.State.STARTED)
    queues = ["default", "mail"]
    due = Task.objects.due(queues).order_by(*CLAIM_ORDER)
    expected = list(due.values_list("pk", "version"))
    assert len(expected) == 22

    claimed, done = [], None
    while len(claimed) <= len(expected):
        if how == "claim" or done is None:
            done = strategy.claim(queues, worker_row.pk)
        else:
            completed, done = strategy.complete_and_claim(done, queues, worker_row.pk)
            assert completed
        if done is None:
            break
        claimed.append(done)
    assert [c.id for c in claimed] == [pk for pk, _ in expected]
    assert [c.expired for c in claimed] == [pk == expired.pk for pk, _ in expected]
    # What a claim writes: started, by this worker, at the database's now, version + 1.
    assert [c.version for c in claimed] == [version + 1 for _, version in expected]
    if how == "claim":
        rows = Task.objects.filter(pk__in=[c.id for c in claimed])
        assert {(r.state, r.worker_id, r.started_at is not None) for r in rows} == {
            (Task.State.STARTED, worker_row.pk, True)
        }
        assert all(
            row.version == c.version
            for row, c in zip(rows.order_by(*CLAIM_ORDER), claimed, strict=True)
        )


@pytest.mark.parametrize("write", ["complete", "retry", "fail"])
def test_a_lost_claim_cannot_finish_the_task(strategy, worker_row, write):
    """Re-queued from the admin (dirty, then "Retry now"), the old claim is fenced off."""
    add()
    stale = claim(strategy, worker_row)
    assert Task.objects.all().retry() == 1
    fresh = claim(strategy, worker_row)
    args = {"complete": (), "retry": (timezone.now(), "x"), "fail": ("x",)}[write]
    assert getattr(strategy, write)(stale, *args) is False
    row = Task.objects.get()
    assert (row.state, row.version) == (Task.State.STARTED, fresh.version)
    assert strategy.complete(fresh) is True


def test_row_locking_strategies_skip_a_row_another_transaction_holds(strategy, worker_row):
    if not strategy.uses_row_locks:
        pytest.skip(f"{type(strategy).__name__} takes no row locks; its races are compare-and-set")
    first, second = add(priority=1), add()
    locked, release = threading.Event(), threading.Event()

    def hold_first_row():
        try:
            with transaction.atomic():
                Task.objects.select_for_update().get(pk=first.pk)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_first_row)
    holder.start()
    try:
        assert locked.wait(10)
        assert claim(strategy, worker_row).id == second.pk
    finally:
        release.set()
        holder.join()
    assert claim(strategy, worker_row).id == first.pk


# Choosing a strategy ---------------------------------------------------------------


def test_automatic_choice_follows_the_database():
    expected = {
        "postgresql": PostgreSQLStrategy,
        "mysql": MySQLStrategy
        if connection.features.has_select_for_update_skip_locked
        else OptimisticStrategy,
        "sqlite": SQLiteStrategy,
    }[connection.vendor]
    assert strategy_class(connection) is expected
    assert type(get_strategy()) is expected
    assert expected in usable_strategies(connection)


def test_family_names_pick_the_most_specific_strategy():
    optimistic = strategy_class(connection, "optimistic")
    assert optimistic is (SQLiteStrategy if connection.vendor == "sqlite" else OptimisticStrategy)
    if connection.features.has_select_for_update_skip_locked:
        assert strategy_class(connection, "skip_locked").uses_row_locks


def test_forcing_skip_locked_where_the_database_lacks_it_is_refused():
    if connection.features.has_select_for_update_skip_locked:
        pytest.skip(f"{connection.display_name} has SKIP LOCKED")
    with (
        override_settings(TASKQ_CLAIM_STRATEGY="skip_locked"),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        get_strategy()
    assert "TASKQ_CLAIM_STRATEGY='skip_locked' is refused" in str(error.value)
    assert "has no SELECT ... FOR UPDATE SKIP LOCKED" in str(error.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "fastest",
            "TASKQ_CLAIM_STRATEGY='fastest' is not one of "
            "None, 'skip_locked', 'optimistic', a dotted path",
        ),
        ("nowhere.Strategy", "TASKQ_CLAIM_STRATEGY='nowhere.Strategy' is neither one of None"),
        ("taskq.models.Task", "TASKQ_CLAIM_STRATEGY='taskq.models.Task' is not a subclass of"),
        (5, "TASKQ_CLAIM_STRATEGY must be None, a short name or a dotted path, not 5"),
        ("", "TASKQ_CLAIM_STRATEGY must be None, a short name or a dotted path, not ''"),
    ],
)
def test_a_bad_strategy_setting_names_the_value_and_the_choices(value, message):
    with (
        override_settings(TASKQ_CLAIM_STRATEGY=value),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        get_strategy()
    assert message in str(error.value)


def test_a_dotted_path_selects_that_class():
    path = "taskq.backends.optimistic.OptimisticStrategy"
    with override_settings(TASKQ_CLAIM_STRATEGY=path):
        assert type(get_strategy()) is OptimisticStrategy


def test_complete_and_claim_deletes_the_done_task_and_claims_the_next(strategy, worker_row):
    first, second = add(priority=1), add()
    done = claim(strategy, worker_row)
    assert done.id == first.pk
    completed, following = strategy.complete_and_claim(done, ["default"], worker_row.pk)
    assert completed is True and following.id == second.pk
    assert list(Task.objects.values_list("pk", "state")) == [(second.pk, Task.State.STARTED)]
    completed, nothing = strategy.complete_and_claim(following, ["default"], worker_row.pk)
    assert (completed, nothing) == (True, None)
    assert Task.objects.count() == 0


def test_complete_and_claim_with_a_lost_claim_still_claims(strategy, worker_row):
    add(priority=1)
    stale = claim(strategy, worker_row)
    Task.objects.all().retry()  # re-queued from the admin meanwhile
    completed, again = strategy.complete_and_claim(stale, ["default"], worker_row.pk)
    assert completed is False
    assert again.id == stale.id and again.version == stale.version + 2
