"""Enqueueing: Celery's sending API, transactions, and bad input that writes nothing."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from taskq import serialization
from taskq.backends import engine_for
from taskq.celery import AsyncResult, shared_task
from taskq.enqueue import Call, enqueue, enqueue_many
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
    # SQLite's clock has milliseconds: a row written within the millisecond of `before`
    # is due at that millisecond.
    start = timezone.now()
    before = start.replace(microsecond=start.microsecond // 1000 * 1000)
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


@pytest.mark.parametrize("use_tz", [True, False])
def test_the_one_statement_enqueue_writes_the_row_the_orm_would(use_tz):
    # Due now or at a datetime: one prepared INSERT; with an expiry: the ORM's save.
    if not use_tz and not engine_for(connection).clock_follows_time_zone:
        pytest.skip("the database's time zone is set up for USE_TZ")
    with override_settings(USE_TZ=use_tz):
        eta = timezone.now() + dt.timedelta(hours=1)  # naive without USE_TZ
        fast = [
            enqueue(Call("tests.mail", args=[1], queue="q", priority=4)),
            enqueue(Call("tests.mail", args=[1], queue="q", priority=4, eta=eta)),
        ]
        orm = enqueue(Call("tests.mail", args=[1], queue="q", priority=4, expires=3600))
        rows = {row.pk: row for row in Task.objects.all()}
        columns = [f.attname for f in Task._meta.concrete_fields]
        skip = {"id", "eta", "expires", "created_at"}
        for written in fast:
            row = rows[written.pk]
            assert {c: getattr(row, c) for c in columns if c not in skip} == {
                c: getattr(rows[orm.pk], c) for c in columns if c not in skip
            }
            assert row.expires is None
            assert abs(row.created_at - rows[orm.pk].created_at) < dt.timedelta(seconds=5)
        assert rows[fast[1].pk].eta == eta
        assert abs(rows[fast[0].pk].eta - rows[orm.pk].eta) < dt.timedelta(seconds=5)


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
    # Changed by issue 11: a refused option names itself and says why.
    with pytest.raises(TypeError, match=r"does not take 'link': taskq has no workflows"):
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
    written = enqueue_many(Call("tests.mail", args=[i], queue="bulk") for i in range(2500))
    assert written == 2500
    assert Task.objects.filter(queue="bulk").count() == 2500
    args = sorted(serialization.loads(a)[0] for a in Task.objects.values_list("args", flat=True))
    assert args == list(range(2500))


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_enqueue_many_batches_write_every_row_once(batch_size):
    assert enqueue_many([Call("tests.mail", args=[i]) for i in range(50)], batch_size=batch_size)
    args = sorted(serialization.loads(a)[0] for a in Task.objects.values_list("args", flat=True))
    assert args == list(range(50))


def test_enqueue_many_of_nothing_writes_nothing():
    assert enqueue_many([]) == 0
    assert enqueue_many(iter(())) == 0
    assert Task.objects.count() == 0


def test_enqueue_many_writes_the_columns_a_save_writes():
    enqueue_many([Call("tests.mail", args=[1], kwargs={"subject": "x"}, queue="q", priority=-7)])
    record.delay(2)
    bulk, single = Task.objects.order_by("pk")
    assert (bulk.name, bulk.queue, bulk.priority) == ("tests.mail", "q", -7)
    for task in (bulk, single):
        assert task.state == Task.State.QUEUED
        assert (task.retries, task.version, task.error, task.worker_id) == (0, 0, "", None)
        assert task.expires is task.started_at is task.failed_at is None
    assert abs(bulk.created_at - single.created_at) < dt.timedelta(seconds=5)
    assert Task.objects.pending().count() == 2


def test_enqueue_many_round_trips_typed_arguments():
    values = [
        dt.datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        dt.date(2030, 1, 2),
        dt.time(3, 4, 5),
        dt.timedelta(days=1, seconds=2, microseconds=3),
        Decimal("1.10"),
        uuid.UUID(int=7),
        {"__taskq__": "not a marker", "nested": [1, 2.5, None, True, "é'\"%s\\"]},
        "x" * 10_000,
    ]
    calls = [
        Call("tests.mail", args=[i, value], kwargs={"v": value}) for i, value in enumerate(values)
    ]
    enqueue_many(calls, batch_size=3)
    rows = Task.objects.order_by("pk")
    assert [serialization.loads(task.args) for task in rows] == [
        [i, v] for i, v in enumerate(values)
    ]
    assert [serialization.loads(task.kwargs) for task in rows] == [{"v": v} for v in values]


def test_enqueue_many_stores_names_and_queues_as_given():
    odd = 'it\'s a "name" with %s, %(x)s, \\, -- and 🙂'
    enqueue_many([Call(odd, queue=odd, args=[odd]), Call(odd, queue=odd), Call("tests.mail")])
    assert list(Task.objects.order_by("pk").values_list("name", "queue")) == [
        (odd, odd),
        (odd, odd),
        ("tests.mail", "default"),
    ]


def database_time():
    from taskq.bulk_insert import database_clock

    return database_clock(connection)


def test_enqueue_many_counts_due_times_from_the_database_clock():
    eta = timezone.now() + dt.timedelta(hours=3)
    expires_at = timezone.now() + dt.timedelta(days=2)
    before = database_time()
    enqueue_many(
        [
            Call("tests.mail", args=["now"]),
            Call("tests.mail", args=["countdown"], countdown=30, eta=eta),
            Call("tests.mail", args=["eta"], eta=eta, expires=expires_at),
            Call("tests.mail", args=["expires"], expires=60),
            Call("tests.mail", args=["zero"], countdown=0, expires=0.5),
        ]
    )
    after = database_time()
    rows = {serialization.loads(task.args)[0]: task for task in Task.objects.all()}
    seconds = dt.timedelta(seconds=1)
    assert before <= rows["now"].eta <= after
    assert before + 30 * seconds <= rows["countdown"].eta <= after + 30 * seconds
    assert rows["eta"].eta == eta and rows["eta"].expires == expires_at
    assert before + 60 * seconds <= rows["expires"].expires <= after + 60 * seconds
    assert before <= rows["zero"].eta <= after
    assert before + seconds / 2 <= rows["zero"].expires <= after + seconds / 2
    assert rows["now"].expires is None
    # Due now by the database's clock: a worker may claim them at once, and not the others.
    pending = {serialization.loads(task.args)[0] for task in Task.objects.pending()}
    assert pending == {"now", "expires", "zero"}


def test_enqueue_many_reads_the_database_clock_not_the_process_clock(monkeypatch):
    # A process whose clock is a day off still writes due times by the database's clock.
    import taskq.enqueue

    skewed = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    monkeypatch.setattr(taskq.enqueue.timezone, "now", lambda: skewed)
    before = database_time()
    enqueue_many([Call("tests.mail"), Call("tests.mail", countdown=10)])
    monkeypatch.undo()
    first, second = Task.objects.order_by("pk")
    assert before <= first.eta <= database_time()
    assert before + dt.timedelta(seconds=10) <= second.eta < before + dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (Call("tests.mail", args=[{1}]), TypeError, "args[0] is of type set"),
        (Call("tests.mail", kwargs={"to": object()}), TypeError, "kwargs['to'] is of type object"),
        (Call("tests.mail", kwargs={1: 2}), TypeError, "kwargs has a key 1 of type int"),
        (Call("tests.mail", args="ab"), TypeError, "args must be a list or tuple"),
        (Call("x" * 201), ValueError, "task name is longer than 200 characters"),
        (Call("tests.mail", queue="q" * 101), ValueError, "queue must be a name of 1 to 100"),
        (Call("tests.mail", priority=40000), ValueError, "priority must be between -32768"),
        (Call("tests.mail", priority=True), TypeError, "priority must be an int"),
        (Call("tests.mail", countdown=-1), ValueError, "countdown must not be negative"),
        (Call("tests.mail", countdown="5"), TypeError, "countdown must be a number"),
        (Call("tests.mail", eta=dt.datetime(2030, 1, 1)), ValueError, "is a naive datetime"),
        (Call("tests.mail", eta="tomorrow"), TypeError, "eta must be a datetime"),
        (Call("tests.mail", expires="soon"), TypeError, "expires must be a number"),
    ],
)
def test_enqueue_many_checks_every_call_before_writing(bad, error, message):
    # The bad call comes after several batches' worth of good ones.
    calls = [Call("tests.mail", args=[i]) for i in range(25)] + [bad, Call("tests.mail")]
    with pytest.raises(error) as raised:
        enqueue_many(calls, batch_size=10)
    assert message in str(raised.value)
    assert Task.objects.count() == 0


def test_enqueue_many_in_a_rolled_back_transaction_leaves_no_task():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_many([Call("tests.mail", args=[i]) for i in range(30)], batch_size=10)
        assert Task.objects.count() == 30
        raise RuntimeError("roll back")
    assert Task.objects.count() == 0


def test_enqueue_many_in_autocommit_writes_all_or_nothing(monkeypatch):
    # Outside a transaction the batches are still one transaction: a failure after
    # every batch was written takes them all back.
    from taskq.bulk_insert import BulkInsert

    real = BulkInsert.write

    def write_then_fail(self, rows, batch_size):
        real(self, rows, batch_size)
        raise RuntimeError("after the rows")

    monkeypatch.setattr(BulkInsert, "write", write_then_fail)
    with pytest.raises(RuntimeError):
        enqueue_many([Call("tests.mail", args=[i]) for i in range(30)], batch_size=10)
    assert Task.objects.count() == 0
    monkeypatch.setattr(BulkInsert, "write", real)
    assert enqueue_many([Call("tests.mail")]) == 1


def test_enqueue_many_writes_on_the_database_it_is_given():
    assert enqueue_many([Call("tests.mail")], using="default") == 1
    assert Task.objects.using("default").count() == 1


def test_enqueue_many_without_copy_on_postgresql(monkeypatch):
    # psycopg2 has no Cursor.copy: rows go in with INSERT ... SELECT FROM UNNEST.
    engine = engine_for(connection)
    if not (engine.can_copy and engine.can_unnest):
        pytest.skip(f"{connection.display_name} has not both COPY and UNNEST")
    monkeypatch.setattr(type(engine), "can_copy", False)
    eta = timezone.now() + dt.timedelta(hours=1)
    before = database_time()
    calls = [Call("tests.mail", args=[i], queue=f"q{i % 3}", countdown=i) for i in range(25)]
    calls.append(Call("tests.mail", args=["eta"], kwargs={"a": "%s'"}, eta=eta, expires=5))
    assert enqueue_many(calls, batch_size=10) == 26
    rows = {serialization.loads(task.args)[0]: task for task in Task.objects.all()}
    assert {row.queue for key, row in rows.items() if key != "eta"} == {"q0", "q1", "q2"}
    assert (
        before + dt.timedelta(seconds=24)
        <= rows[24].eta
        <= database_time() + dt.timedelta(seconds=24)
    )
    assert rows["eta"].eta == eta and serialization.loads(rows["eta"].kwargs) == {"a": "%s'"}
    assert rows["eta"].expires > before and rows[0].expires is None
    assert rows[0].error == "" and rows[0].retries == 0


def listener():
    """A second connection, in autocommit, that LISTENs on taskq's channel."""
    import psycopg

    from taskq.backends.postgresql import CHANNEL

    params = connection.settings_dict
    listening = psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    )
    listening.execute(f"LISTEN {CHANNEL}")
    return listening


def heard(listening, seconds):
    return [(n.channel, n.payload) for n in listening.notifies(timeout=seconds)]


def test_enqueue_many_notifies_each_queue_once_at_commit():
    if not engine_for(connection).can_listen:
        pytest.skip(f"{connection.display_name} cannot wake a worker")
    listening = listener()
    try:
        with transaction.atomic():
            enqueue_many(
                [
                    Call("tests.mail", args=[i], queue="mail" if i % 2 else "reports")
                    for i in range(500)
                ],
                batch_size=100,
            )
            enqueue_many([Call("tests.mail", queue="mail") for _ in range(10)])
            record.apply_async(("one",), queue="reports")
            assert heard(listening, 0.5) == []  # nothing before the commit
        assert sorted(heard(listening, 1)) == [("taskq", "mail"), ("taskq", "reports")]
        # A rolled-back transaction wakes nobody.
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue_many([Call("tests.mail", queue="mail")])
            raise RuntimeError("roll back")
        assert heard(listening, 0.5) == []
        # In autocommit the rows are committed, and the workers told, at once.
        enqueue_many([Call("tests.mail", queue="later")])
        assert heard(listening, 1) == [("taskq", "later")]
    finally:
        listening.close()


@pytest.mark.parametrize(
    ("send", "error", "message"),
    [
        (lambda: record.delay({"a"}), TypeError, "args[0] is of type set"),
        (lambda: mail.delay("x", subject=Decimal), TypeError, "kwargs['subject'] is of type type"),
        (lambda: noop.apply_async(queue="q" * 101), ValueError, "queue must be a name of 1 to 100"),
        (lambda: noop.apply_async(queue=""), ValueError, "queue must be a name of 1 to 100"),
        (lambda: noop.apply_async(priority=40000), ValueError, "priority must be between -32768"),
        (lambda: noop.apply_async(priority="high"), TypeError, "priority must be an int"),
        (lambda: noop.apply_async(countdown="5"), TypeError, "countdown must be a number"),
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
    # Changed by issue 11: bind=True is supported; an option Celery lacks is still refused.
    with pytest.raises(TypeError, match="unknown option 'bnd'"):
        shared_task(bnd=True)(lambda: None)


def test_a_second_function_cannot_take_a_registered_name():
    def other():
        pass

    with pytest.raises(ValueError, match="'tests.mail' is already used by"):
        shared_task(name="tests.mail")(other)


def test_without_use_tz_due_times_are_judged_in_local_time():
    if not engine_for(connection).clock_follows_time_zone:
        pytest.skip("the database's clock does not follow TIME_ZONE without USE_TZ")
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Tokyo"):
        local_now = dt.datetime.now()
        noop.apply_async(eta=local_now - dt.timedelta(minutes=1))
        noop.apply_async(eta=local_now + dt.timedelta(minutes=10))
        noop.apply_async(countdown=600)
        enqueue_many(
            [
                Call("tests.mail", eta=local_now - dt.timedelta(minutes=1)),
                Call("tests.mail", eta=local_now + dt.timedelta(minutes=10)),
                Call("tests.mail", countdown=600),
                Call("tests.mail"),
            ]
        )
        assert Task.objects.pending().count() == 3
        assert Task.objects.future().count() == 4
        # An aware eta is stored as the same moment in local time.
        aware = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=5)
        enqueue_many([Call("tests.mail", args=["aware"], eta=aware)])
        stored = Task.objects.get(args='["aware"]').eta
        assert stored == timezone.make_naive(aware)
