"""Enqueueing: Celery's sending API, transactions, and bad input that writes nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from taskq import serialization
from taskq.celery import AsyncResult, shared_task
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task
from test_matrix.testapp.tasks import noop, record

pytestmark = pytest.mark.django_db(transaction=True)


@shared_task(name="tests.mail", queue="mail", priority=3)
def mail(to, *, subject=""):
    pass


def only_task():
    (task,) = Task.objects.all()
    return task


def test_delay_writes_one_queued_row_due_now():
    before = timezone.now()
    result = record.delay(42)
    task = only_task()
    assert result.id == task.pk
    assert task.name == "test_matrix.testapp.tasks.record"
    assert task.queue == "default"
    assert task.state == Task.State.QUEUED
    assert serialization.loads(task.args) == [42]
    assert serialization.loads(task.kwargs) == {}
    assert before <= task.eta <= timezone.now()
    assert task.expires is None and task.retries == 0


def test_task_options_and_explicit_name():
    mail.delay("a@example.com", subject="Hi")
    task = only_task()
    assert (task.name, task.queue, task.priority) == ("tests.mail", "mail", 3)
    assert serialization.loads(task.kwargs) == {"subject": "Hi"}


def test_apply_async_options_override_task_options():
    mail.apply_async(("a@b",), queue="urgent", priority=9)
    task = only_task()
    assert (task.queue, task.priority) == ("urgent", 9)


def test_countdown_sets_eta_and_overrides_eta():
    eta = timezone.now() + dt.timedelta(days=1)
    start = timezone.now()
    noop.apply_async(countdown=30, eta=eta)
    task = only_task()
    assert start + dt.timedelta(seconds=30) <= task.eta <= timezone.now() + dt.timedelta(seconds=30)


def test_eta_is_kept():
    eta = timezone.now() + dt.timedelta(hours=2)
    noop.apply_async(eta=eta)
    assert only_task().eta == eta


def test_eta_in_the_past_is_due_now():
    eta = timezone.now() - dt.timedelta(hours=2)
    noop.apply_async(eta=eta)
    assert Task.objects.pending().count() == 1


def test_expires_in_seconds_or_as_datetime():
    start = timezone.now()
    noop.apply_async(expires=60)
    noop.apply_async(expires=start + dt.timedelta(minutes=5))
    first, second = Task.objects.order_by("pk")
    assert (
        start + dt.timedelta(seconds=60)
        <= first.expires
        <= timezone.now() + dt.timedelta(seconds=60)
    )
    assert second.expires == start + dt.timedelta(minutes=5)


def test_signature_with_set_and_partial_arguments():
    signature = mail.s("a@b").set(queue="later", countdown=60)
    signature.delay(subject="x")
    signature.apply_async(kwargs={"subject": "y"}, priority=1)
    first, second = Task.objects.order_by("pk")
    assert serialization.loads(first.args) == ["a@b"]
    assert serialization.loads(first.kwargs) == {"subject": "x"}
    assert first.queue == second.queue == "later"
    assert second.priority == 1
    assert first.eta > timezone.now() + dt.timedelta(seconds=50)


def test_signature_refuses_unknown_options():
    with pytest.raises(TypeError, match=r"unknown options \['link'\]"):
        mail.s().set(link="x")


def test_enqueue_in_a_rolled_back_transaction_leaves_no_task():
    with pytest.raises(RuntimeError), transaction.atomic():
        record.delay(1)
        assert Task.objects.count() == 1
        raise RuntimeError("roll back")
    assert Task.objects.count() == 0


def test_enqueue_in_a_committed_transaction_keeps_the_task():
    with transaction.atomic():
        record.delay(1)
    assert Task.objects.count() == 1


def test_revoke_removes_a_task_not_yet_started():
    result = noop.delay()
    assert result.revoke() is True
    assert Task.objects.count() == 0
    assert AsyncResult(result.id).revoke() is False


def test_revoke_leaves_a_started_task_alone():
    result = noop.delay()
    Task.objects.filter(pk=result.id).update(state=Task.State.STARTED)
    assert result.revoke() is False
    assert Task.objects.count() == 1


def test_enqueue_many_writes_every_row():
    rows = enqueue_many(Call("tests.mail", args=[i], queue="bulk") for i in range(2500))
    assert len(rows) == 2500
    assert Task.objects.filter(queue="bulk").count() == 2500


def test_enqueue_many_checks_every_call_before_writing():
    calls = [Call("tests.mail", args=[1]), Call("tests.mail", args=[{1}])]
    with pytest.raises(TypeError, match=r"args\[0\] is of type set"):
        enqueue_many(calls)
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("send", "error", "message"),
    [
        (lambda: record.delay({"a"}), TypeError, "args[0] is of type set"),
        (lambda: mail.delay("x", subject=Decimal), TypeError, "kwargs['subject'] is of type type"),
        (lambda: noop.apply_async(queue="q" * 101), ValueError, "queue must be a name of 1 to 100"),
        (lambda: noop.apply_async(queue=""), ValueError, "queue must be a name of 1 to 100"),
        (lambda: noop.apply_async(priority=40000), ValueError, "priority must be between -32768"),
        (lambda: noop.apply_async(priority="high"), TypeError, "priority must be an int"),
        (lambda: noop.apply_async(countdown=-5), ValueError, "countdown must not be negative"),
        (lambda: noop.apply_async(countdown="5"), TypeError, "countdown must be a number"),
        (
            lambda: noop.apply_async(eta=dt.datetime(2030, 1, 1)),
            ValueError,
            "is a naive datetime but USE_TZ is True",
        ),
        (lambda: noop.apply_async(eta="tomorrow"), TypeError, "eta must be a datetime"),
        (lambda: noop.apply_async(expires="soon"), TypeError, "expires must be a number"),
    ],
)
def test_bad_input_raises_a_clear_error_and_writes_nothing(send, error, message):
    record.delay("kept")
    with pytest.raises(error) as raised:
        send()
    assert message in str(raised.value)
    assert list(Task.objects.values_list("args", flat=True)) == ['["kept"]']


def test_shared_task_refuses_unknown_options():
    with pytest.raises(TypeError, match="unknown options \\['bind'\\]"):
        shared_task(bind=True)(lambda: None)


def test_a_second_function_cannot_take_a_registered_name():
    def other():
        pass

    with pytest.raises(ValueError, match="'tests.mail' is already used by"):
        shared_task(name="tests.mail")(other)


def test_without_use_tz_due_times_are_judged_in_local_time():
    if connection.vendor != "sqlite":
        pytest.skip("MySQL's server time zone and PostgreSQL's timestamptz are set up apart")
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Tokyo"):
        local_now = dt.datetime.now()
        noop.apply_async(eta=local_now - dt.timedelta(minutes=1))
        noop.apply_async(eta=local_now + dt.timedelta(minutes=10))
        noop.apply_async(countdown=600)
        assert Task.objects.pending().count() == 1
        assert Task.objects.future().count() == 2
