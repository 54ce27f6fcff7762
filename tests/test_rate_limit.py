"""Per-task rate limits in one process: ``shared_task(rate_limit=…)`` read and checked
when the task is defined, every strategy's claim passing over the rate-limited names,
the claim of such a task under its rate row, and the unlimited claim left as it was.
Real workers: ``tests/test_rate_limit_workers.py``."""

from __future__ import annotations

import pytest
from django.utils import timezone

from taskq import celery_options, queues, registry
from taskq.backends import claim as claim_sql
from taskq.backends import get_strategy
from taskq.backends.flow import Flow
from taskq.celery import TaskFunction, shared_task
from taskq.enqueue import Call, enqueue
from taskq.models import Task, TaskRate, Worker

RATED = "tests.rated"


def run(key: object) -> None:
    pass


@pytest.fixture
def rated(monkeypatch: pytest.MonkeyPatch) -> TaskFunction:
    """A task with ``rate_limit="1/h"``, registered for this test only."""
    task = TaskFunction(run, name=RATED, rate_limit="1/h")
    monkeypatch.setitem(registry._tasks, RATED, task)
    return task


def worker_row(name: str = "w") -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        ident=f"{name}:{now.timestamp()}", host="h", pid=1, queues="", started_at=now, heartbeat=now
    )


def call(name: str, queue: str = "default") -> Task:
    return enqueue(Call(name, queue=queue))


# The option ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "per_second"),
    [("10/s", 10.0), ("30/m", 0.5), ("36/h", 0.01), (4, 4.0), (0.5, 0.5), ("2", 2.0), (None, None)],
)
def test_rate_limit_reads_celerys_syntax(value, per_second):
    assert TaskFunction(run, name="t", rate_limit=value).rate_limit == per_second


@pytest.mark.parametrize("value", ["10/d", "0/s", "-1/m", "fast", 0, True, [5]])
def test_a_bad_rate_limit_is_refused_when_the_task_is_defined(value):
    with pytest.raises(ValueError, match=r"shared_task\(rate_limit=.*'tests.bad'.*\"10/s\""):
        shared_task(name="tests.bad", rate_limit=value)(run)
    assert "tests.bad" not in registry.names()


def test_the_option_table_supports_rate_limit():
    assert celery_options.BY_NAME["rate_limit"].decision == celery_options.SUPPORTED
    assert "rate_limit" in celery_options.known("shared_task")


def test_the_registry_lists_rate_limited_tasks_only(rated):
    limits = registry.rate_limits()
    assert limits[RATED] == pytest.approx(1 / 3600)
    assert all(registry.get(name).rate_limit for name in limits)  # type: ignore[attr-defined]


# The claims ----------------------------------------------------------------------------


def test_without_rate_limited_tasks_the_claim_is_the_statement_of_old(monkeypatch):
    unlimited = {
        name: task for name, task in registry.items() if not getattr(task, "rate_limit", None)
    }
    monkeypatch.setattr(registry, "_tasks", unlimited)
    flow = Flow(get_strategy(), ["default"])
    assert flow.rated == {}
    assert flow.strategy.held_back == ()
    quote = flow.strategy.connection.ops.quote_name
    assert claim_sql.due_sql(quote, "NOW()", 2, 0) == claim_sql.due_sql(quote, "NOW()", 2)
    assert "NOT IN" not in claim_sql.due_sql(quote, "NOW()", 2)


@pytest.mark.django_db(transaction=True)
def test_every_strategy_passes_over_the_held_back_names(strategy_cls):
    strategy = strategy_cls("default")
    worker = worker_row()
    held = call(RATED)
    other = call("tests.other")
    strategy.held_back = (RATED, "tests.more")
    claim = strategy.claim(["default"], worker.pk)
    assert claim is not None and claim.id == other.pk
    assert strategy.claim(["default"], worker.pk) is None
    assert Task.objects.get(pk=held.pk).state == Task.State.QUEUED
    # complete_and_claim passes over them too.
    again = call("tests.other")
    completed, claim = strategy.complete_and_claim(claim, ["default"], worker.pk)
    assert completed and claim is not None and claim.id == again.pk
    completed, claim = strategy.complete_and_claim(claim, ["default"], worker.pk)
    assert completed and claim is None


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_task_waits_for_its_slot_and_the_others_run_meanwhile(rated):
    worker = worker_row()
    flow = Flow(get_strategy(), ["default"])
    flow.prepare()
    assert flow.strategy.held_back == (RATED,)
    assert TaskRate.objects.filter(name=RATED).exists()
    first, second = call(RATED), call(RATED)
    others = [call("tests.other") for _ in range(3)]
    claims = [flow.claim(worker.pk) for _ in range(5)]
    claimed = [claim.id for claim in claims if claim is not None]
    # One of the rated task's starts, then only the others: the second waits an hour.
    assert sorted(claimed) == sorted([first.pk, *(task.pk for task in others)])
    row = TaskRate.objects.get(name=RATED)
    assert row.next_start_at > Task.objects.get(pk=first.pk).started_at
    assert Task.objects.get(pk=second.pk).state == Task.State.QUEUED
    assert 3500 < flow.idle_timeout(3600 * 2) <= 3600  # never sleeps past its slot
    flow.task_not_before.clear()
    assert flow.claim(worker.pk) is None  # under the lock, the row says the same
    # Another worker's flow sees the same row.
    assert Flow(get_strategy(), ["default"]).claim(worker_row("b").pk) is None
    TaskRate.objects.filter(name=RATED).update(next_start_at=None)
    flow.task_not_before.clear()
    claim = flow.claim(worker.pk)
    assert claim is not None and claim.id == second.pk


@pytest.mark.django_db(transaction=True)
def test_a_rate_limited_task_respects_a_paused_queue_and_a_limited_queue(rated, settings):
    settings.TASKQ_QUEUES = {"lim": {"rate": "1/h"}}
    worker = worker_row()
    flow = Flow(get_strategy(), ["default", "lim"])
    flow.prepare()
    in_lim = call(RATED, queue="lim")
    queues.pause("default")
    paused = call(RATED, queue="default")
    flow.refresh()
    claim = flow.claim(worker.pk) or flow.claim(worker.pk)
    assert claim is not None and claim.id == in_lim.pk  # through the queue's checks
    assert flow.not_before.get("lim") is None
    assert Task.objects.get(pk=paused.pk).state == Task.State.QUEUED
    # The limited queue's own rate now holds back the next one there, too.
    TaskRate.objects.update(next_start_at=None)
    flow.task_not_before.clear()
    call(RATED, queue="lim")
    assert flow.claim(worker.pk) is None
    assert flow.claim(worker.pk) is None
    assert Task.objects.filter(state=Task.State.STARTED).count() == 1
