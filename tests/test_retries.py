"""Celery's retry semantics, run by a real (in-process) worker, and eager mode."""

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone

from taskq import serialization
from taskq.celery import EagerResult, MaxRetriesExceededError, shared_task
from taskq.models import Task
from taskq.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

calls: list[tuple] = []


@shared_task(
    name="t.backoff",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_jitter=False,
    max_retries=4,
)
def backoff(n):
    calls.append(("backoff", n))
    raise OSError("disk full")


@shared_task(
    name="t.backoff3",
    autoretry_for=(OSError,),
    retry_backoff=3,
    retry_backoff_max=20,
    retry_jitter=False,
    max_retries=None,
)
def backoff3():
    raise OSError("again")


@shared_task(
    name="t.jitter",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=8,
    max_retries=None,
)
def jitter():
    raise OSError("again")


@shared_task(
    name="t.forever", autoretry_for=(ValueError,), max_retries=None, retry_kwargs={"countdown": 1}
)
def forever():
    raise ValueError("never works")


@shared_task(
    name="t.fixed", autoretry_for=(KeyError,), retry_kwargs={"max_retries": 1, "countdown": 5}
)
def fixed():
    raise KeyError("missing")


@shared_task(name="t.manual", max_retries=2)
def manual(mode):
    try:
        raise ConnectionError("remote down")
    except ConnectionError as exc:
        if mode == "countdown":
            raise manual.retry(exc=exc, countdown=7) from None
        if mode == "eta":
            raise manual.retry(exc=exc, eta=timezone.now() + dt.timedelta(minutes=2)) from None
        if mode == "default":
            raise manual.retry() from None
        raise manual.retry(exc=exc, max_retries=0) from None


@shared_task(name="t.no_exc", max_retries=0)
def no_exc():
    raise no_exc.retry()


@shared_task(name="t.dont", autoretry_for=(Exception,), dont_autoretry_for=(LookupError,))
def dont(kind):
    raise {"key": KeyError, "value": ValueError}[kind]("x")


@shared_task(name="t.flaky", autoretry_for=(OSError,), max_retries=3)
def flaky(key):
    calls.append(("flaky", key))
    if len([c for c in calls if c[0] == "flaky"]) < 3:
        raise OSError("not yet")
    return f"done {key}"


def run_once():
    """Make every queued task due and run a burst worker over them."""
    Task.objects.all().run_now()
    Worker(["default"], burst=True).run(handle_signals=False)


def delay_of(task):
    task.refresh_from_db()
    return round((task.eta - task.started_at).total_seconds())


@pytest.fixture(autouse=True)
def clear_calls():
    calls.clear()


def test_backoff_doubles_each_retry_then_fails_with_the_original_traceback():
    backoff.delay(1)
    task = Task.objects.get()
    delays = []
    for _ in range(4):
        run_once()
        delays.append(delay_of(task))
    assert delays == [1, 2, 4, 8]
    assert task.retries == 4 and task.state == Task.State.QUEUED
    run_once()
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert task.retries == 4
    assert 'raise OSError("disk full")' in task.error
    assert task.error.rstrip().endswith("OSError: disk full")
    assert calls == [("backoff", 1)] * 5
    assert serialization.loads(task.args) == [1]  # a retry never changes the arguments


def test_backoff_factor_and_maximum():
    backoff3.delay()
    task = Task.objects.get()
    delays = []
    for _ in range(5):
        run_once()
        delays.append(delay_of(task))
    assert delays == [3, 6, 12, 20, 20]


def test_full_jitter_stays_within_the_backoff():
    jitter.delay()
    task = Task.objects.get()
    for _ in range(6):
        run_once()  # a delay of 0 is due at once, so one burst may retry several times
        delay = delay_of(task)
        assert 0 <= delay <= min(8, 2 ** (task.retries - 1))


def test_max_retries_none_retries_forever():
    forever.delay()
    task = Task.objects.get()
    for _ in range(6):
        run_once()
    task.refresh_from_db()
    assert (task.state, task.retries) == (Task.State.QUEUED, 6)
    assert "ValueError: never works" in task.error


def test_retry_kwargs_set_countdown_and_max_retries():
    fixed.delay()
    task = Task.objects.get()
    run_once()
    assert delay_of(task) == 5
    run_once()
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert task.error.rstrip().endswith("KeyError: 'missing'")


@pytest.mark.parametrize(("mode", "seconds"), [("countdown", 7), ("eta", 120), ("default", 180)])
def test_manual_retry_when(mode, seconds):
    manual.delay(mode)
    task = Task.objects.get()
    run_once()
    assert delay_of(task) == seconds
    assert task.retries == 1


def test_manual_retry_past_max_retries_raises_the_original_exception():
    manual.delay("limit")
    run_once()
    task = Task.objects.get()
    assert task.state == Task.State.FAILED
    assert "ConnectionError: remote down" in task.error


def test_retry_without_exc_past_the_limit_is_max_retries_exceeded():
    no_exc.delay()
    run_once()
    task = Task.objects.get()
    assert task.state == Task.State.FAILED
    assert "MaxRetriesExceededError: Can't retry t.no_exc" in task.error


def test_dont_autoretry_for_fails_at_once():
    dont.delay("key")
    dont.delay("value")
    run_once()
    key, value = Task.objects.order_by("pk")
    assert (key.state, key.retries) == (Task.State.FAILED, 0)
    assert (value.state, value.retries) == (Task.State.QUEUED, 1)


def test_retry_outside_a_running_task_is_an_error():
    with pytest.raises(RuntimeError, match=r"t.manual.retry\(\) can only be called while it runs"):
        manual.retry()


# Eager mode -------------------------------------------------------------------------


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_runs_inline_with_retries_and_writes_nothing():
    result = flaky.delay("k")
    assert isinstance(result, EagerResult)
    assert result.result == "done k"
    assert calls == [("flaky", "k")] * 3
    assert Task.objects.count() == 0


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_failure_is_kept_in_the_result_without_propagation():
    result = backoff.delay(2)
    assert isinstance(result.exception, OSError)
    assert not result.successful()
    assert len(calls) == 5  # the first run and four retries


@override_settings(CELERY_TASK_ALWAYS_EAGER=True, CELERY_TASK_EAGER_PROPAGATES=True)
def test_eager_propagates():
    with pytest.raises(OSError, match="disk full"):
        backoff.delay(3)
    with pytest.raises(MaxRetriesExceededError):
        no_exc.delay()


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_checks_arguments_like_a_queued_call():
    with pytest.raises(TypeError, match=r"args\[0\] is of type set"):
        flaky.delay({"x"})
    assert calls == []


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_arguments_take_the_json_round_trip():
    seen = []

    @shared_task(name="t.seen")
    def see(value):
        seen.append(value)

    see.delay((1, 2))
    assert seen == [[1, 2]]
