"""taskq's own signals around each task a worker runs, and the fields of its log lines."""

import datetime as dt
import logging
import sys

import pytest

from taskq import signals
from taskq.celery import shared_task
from taskq.enqueue import Call, enqueue
from taskq.models import Task
from taskq.registry import UnregisteredTask
from taskq.worker import Worker
from test_matrix.testapp.tasks import fail, noop

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("task_id", "task_name", "queue", "attempt")
SIGNALS = {
    "started": signals.task_started,
    "succeeded": signals.task_succeeded,
    "failed": signals.task_failed,
    "retried": signals.task_retried,
}


@shared_task(name="t.signals.flaky", max_retries=1)
def flaky():
    raise flaky.retry(exc=OSError("try later"), countdown=60)


def drain():
    return Worker(["default"], burst=True).run(handle_signals=False)


@pytest.fixture
def sent():
    """Every taskq signal sent, as (name, sender, kwargs, exception being handled)."""
    seen = []
    receivers = []
    for name, signal in SIGNALS.items():

        def receiver(sender, _name=name, **kwargs):
            kwargs.pop("signal")
            seen.append((_name, sender, kwargs, sys.exc_info()[1]))

        receivers.append((signal, receiver))
        signal.connect(receiver)
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_a_success_sends_started_then_succeeded_with_the_tasks_fields(sent):
    result = noop.delay()
    drain()
    assert [(name, sender) for name, sender, _, _ in sent] == [
        ("started", noop),
        ("succeeded", noop),
    ]
    started, succeeded = sent[0][2], sent[1][2]
    expected = {
        "task_id": result.id,
        "task_name": "test_matrix.testapp.tasks.noop",
        "queue": "default",
        "attempt": 1,
    }
    assert started == expected
    assert {key: succeeded[key] for key in FIELDS} == expected
    assert set(succeeded) == {*FIELDS, "duration"} and succeeded["duration"] >= 0


def test_a_failure_sends_failed_with_the_exception_while_it_is_handled(sent):
    result = fail.delay("bad input")
    drain()
    name, sender, fields, handled = sent[-1]
    assert (name, sender, fields["task_id"]) == ("failed", fail, result.id)
    assert isinstance(fields["exception"], ValueError)
    assert handled is fields["exception"]  # sys.exc_info() works in a receiver
    assert fields["traceback"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad input" in fields["traceback"]
    assert fields["duration"] >= 0
    # Sent after the outcome is recorded: the row is already in the Failed view.
    assert Task.objects.failed().get().pk == result.id


def test_a_retry_sends_retried_with_the_reason_and_the_new_eta(sent):
    result = flaky.delay()
    drain()
    assert [name for name, *_ in sent] == ["started", "retried"]
    fields = sent[1][2]
    assert isinstance(fields["exception"], OSError)
    row = Task.objects.get()
    # The signal's eta is by this process's clock, the row's may be by the database's.
    assert abs(fields["eta"] - row.eta) < dt.timedelta(seconds=5) and row.retries == 1
    assert (fields["task_id"], fields["attempt"]) == (result.id, 1)
    # The next run is attempt 2, and running out of retries fails with the reason.
    Task.objects.update(eta=row.created_at)
    sent.clear()
    drain()
    assert [(name, fields["attempt"]) for name, _, fields, _ in sent] == [
        ("started", 2),
        ("failed", 2),
    ]
    assert isinstance(sent[1][2]["exception"], OSError)


def test_a_row_naming_no_registered_task_sends_failed_with_no_sender(sent):
    row = enqueue(Call("os.system", args=["true"]))
    drain()
    ((name, sender, fields, _),) = sent
    assert (name, sender, fields["task_id"], fields["duration"]) == ("failed", None, row.pk, 0.0)
    assert isinstance(fields["exception"], UnregisteredTask)
    assert fields["traceback"] == "unregistered task 'os.system'"


def test_a_receiver_that_raises_is_logged_and_changes_nothing(caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("error tracker is down")

    for signal in SIGNALS.values():
        signal.connect(broken)
    try:
        noop.delay()
        fail.delay()
        noop.delay()
        with caplog.at_level(logging.ERROR, logger="taskq.signals"):
            assert drain() == 0
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(broken)
    assert list(Task.objects.values_list("state", flat=True)) == [Task.State.FAILED]
    errors = [r for r in caplog.records if r.name == "taskq.signals"]
    assert len(errors) == 6  # started + outcome, for each of the three tasks
    assert "task_succeeded signal raised RuntimeError('error tracker is down')" in (
        errors[1].getMessage()
    )
    assert errors[1].exc_info[0] is RuntimeError


def test_log_lines_carry_the_same_fields_as_the_signals(sent, caplog):
    fail.delay()
    with caplog.at_level(logging.INFO, logger="taskq.worker"):
        drain()
    (line,) = [
        r for r in caplog.records if r.getMessage().startswith("Task ") and "failed" in r.msg
    ]
    fields = sent[-1][2]
    for key in (*FIELDS, "duration"):
        assert getattr(line, key) == fields[key], key
