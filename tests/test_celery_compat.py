"""Issue 11: Celery task code runs on taskq unchanged.

Each expectation is Celery 5's, written from its source (celery/celery at 5dc781f, paths
given where it helps), not from what taskq happens to do.
"""

import datetime as dt
import re
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone
from django.utils.translation import gettext_lazy

from taskq import celery_options, serialization
from taskq.celery import (
    EagerResult,
    EncodeError,
    SoftTimeLimitExceeded,
    TimeLimitExceeded,
    current_request,
    shared_task,
)
from taskq.models import Task
from taskq.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parent.parent / "README.md"
seen: list = []


@pytest.fixture(autouse=True)
def clear_seen():
    seen.clear()


def drain():
    Task.objects.all().run_now()
    Worker(["default", "mail"], burst=True).run(handle_signals=False)


def only_row():
    (row,) = Task.objects.all()
    return row


@shared_task(name="compat.parts")
def parts(a, b, c=None, *, d=None):
    seen.append((a, b, c, d))


@shared_task(name="compat.bound", bind=True, max_retries=2, default_retry_delay=1)
def bound(self, key):
    request = self.request
    seen.append(
        {
            "self": self,
            "key": key,
            "id": request.id,
            "retries": request.retries,
            "name": self.name,
            "task": request.task,
            "max_retries": self.max_retries,
            "headers": request.headers,
            "queue": request.delivery_info["routing_key"],
            "priority": request.priority,
            "hostname": request.hostname,
            "eta": request.eta,
            "expires": request.expires,
            "time_limit": request.time_limit,
            "soft_time_limit": request.soft_time_limit,
            "current": current_request() is request,
        }
    )
    if key == "retry" and request.retries < 2:
        raise self.retry(countdown=0)
    return key


@shared_task(name="compat.plain")
def plain():
    seen.append(plain.request.id)


# bind=True and task.request ---------------------------------------------------------


def test_a_bound_task_gets_itself_and_its_request_on_a_worker():
    result = bound.apply_async(("retry",), queue="mail", priority=4, headers={"trace": "t-1"})
    drain()
    first, second, third = seen
    assert first["self"] is bound and first["name"] == "compat.bound" == first["task"]
    assert first["id"] == result.id and first["max_retries"] == 2
    assert [s["retries"] for s in seen] == [0, 1, 2]
    # Headers are kept across retries: a retry queues the same row again.
    assert third["headers"] == {"trace": "t-1"}
    assert (first["queue"], first["priority"]) == ("mail", 4)
    assert first["hostname"] and first["current"]
    assert isinstance(first["eta"], dt.datetime) and first["expires"] is None
    assert Task.objects.count() == 0


def test_task_request_outside_a_run_is_empty_as_in_celery():
    # celery/app/task.py, Task._get_request: an empty Context() when not running.
    assert bound.request.id is None
    assert bound.request.retries == 0
    assert bound.request.called_directly


def test_task_request_works_inside_an_unbound_task():
    result = plain.delay()
    drain()
    assert seen == [result.id]


def test_calling_a_bound_task_directly_passes_self():
    assert bound("direct") == "direct"
    assert seen[0]["self"] is bound and seen[0]["id"] is None


def test_base_is_refused_with_what_to_do_instead():
    with pytest.raises(TypeError, match=r"'base'.*no task classes: use `bind=True`"):
        shared_task(base=object)(lambda: None)


# Options: one rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_result": True},
        {"track_started": True},
        {"serializer": "json"},
        {"compression": "gzip"},
        {"throws": (KeyError,)},
        {"typing": False},
        {"time_limit": 10, "soft_time_limit": 5},
        {"store_errors_even_if_ignored": True},
    ],
)
def test_options_whose_meaning_taskq_keeps_are_accepted(options):
    def body():
        pass

    body.__qualname__ = f"accepted_{'_'.join(options)}"
    task = shared_task(**options)(body)
    assert task.delay().id is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": "10/d"}, "shared_task(rate_limit='10/d')"),
        ({"serializer": "pickle"}, "typed JSON only"),
        ({"backend": "redis://"}, "no result backends"),
        ({"time_limit": 5, "soft_time_limit": 10}, "soft_time_limit must be less than"),
        ({"retry_kwargs": {"queue": "x"}}, "retry_kwargs does not take 'queue'"),
        ({"retry_kwargs": {"bogus": 1}}, "retry_kwargs got an unknown option 'bogus'"),
    ],
)
def test_other_options_are_refused_with_the_reason(options, message):
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        shared_task(**options)(lambda: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_id": "x"}, "the row's primary key"),
        ({"link": parts.s()}, "no workflows"),
        ({"link_error": parts.s()}, "no workflows"),
        ({"shadow": "x"}, "registered name"),
        ({"exchange": "x"}, "no broker"),
        ({"routing_key": "x"}, "no broker"),
        ({"serializer": "yaml"}, "typed JSON only"),
        ({"nonsense": 1}, "unknown option 'nonsense'"),
    ],
)
def test_apply_async_refuses_what_taskq_cannot_do(options, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        parts.apply_async((1, 2), **options)
    with pytest.raises(TypeError, match=re.escape(message)):
        parts.s(1, 2).set(**options)
    assert Task.objects.count() == 0


def test_apply_async_accepts_celerys_no_op_options():
    parts.apply_async(
        (1, 2),
        ignore_result=True,
        serializer="json",
        compression="zlib",
        retry=True,
        retry_policy={"max_retries": 3},
    )
    assert Task.objects.count() == 1


def test_time_limits_are_stored_per_call_and_resolved_per_run():
    limited = shared_task(name="compat.limited", time_limit=30, soft_time_limit=20, bind=True)(
        lambda self: seen.append(self.request.timelimit)
    )
    limited.delay()
    limited.apply_async(time_limit=9, soft_time_limit=4)
    limited.s().set(soft_time_limit=2).delay()
    rows = list(Task.objects.order_by("pk").values_list("time_limit", "soft_time_limit"))
    assert rows == [(None, None), (9.0, 4.0), (None, 2.0)]
    drain()
    assert sorted(seen) == sorted([(30, 20), (9.0, 4.0), (30, 2.0)])
    with pytest.raises(ValueError, match="soft_time_limit must be less than"):
        limited.apply_async(soft_time_limit=60)


def test_time_limit_exceptions_are_celerys_kinds():
    # billiard.exceptions: SoftTimeLimitExceeded(Exception), TimeLimitExceeded(Exception).
    assert issubclass(SoftTimeLimitExceeded, Exception)
    assert issubclass(TimeLimitExceeded, Exception)


def test_the_readme_table_is_the_option_table():
    assert celery_options.markdown_table() in README.read_text()


# Signatures ---------------------------------------------------------------------------


def test_partial_arguments_go_first_as_in_celery():
    # celery/canvas.py, Signature._merge: ``tuple(args) + tuple(self.args)``.
    parts.s("a", 1).delay(2)
    parts.s(b="x").delay(1, c=3)
    drain()
    assert sorted(seen, key=str) == sorted([(2, "a", 1, None), (1, "x", 3, None)], key=str)


def test_signature_takes_args_kwargs_and_options():
    # celery/app/task.py, Task.signature(args, *starargs, **starkwargs): options as kwargs.
    parts.signature((1, 2), {"c": 3}, countdown=60, queue="mail")
    sig = parts.signature((1, 2), {"c": 3}, countdown=60, queue="mail")
    sig.delay()
    row = only_row()
    assert serialization.loads(row.args) == [1, 2]
    assert serialization.loads(row.kwargs) == {"c": 3}
    assert row.queue == "mail" and row.eta > timezone.now() + dt.timedelta(seconds=50)


def test_immutable_signatures_ignore_new_arguments():
    parts.si(1, 2).delay(3, c=4)
    drain()
    assert seen == [(1, 2, None, None)]


# countdown and eta --------------------------------------------------------------------


def test_countdown_zero_leaves_eta_in_force():
    # celery/app/amqp.py, as_task_v2: ``if countdown:`` converts it; 0 does not.
    eta = timezone.now() + dt.timedelta(hours=1)
    parts.apply_async((1, 2), countdown=0, eta=eta)
    assert only_row().eta == eta


def test_negative_countdown_runs_at_once():
    # celery/app/amqp.py: a negative countdown is an eta in the past (only < INT_MIN is
    # refused, by _verify_seconds).
    parts.apply_async((1, 2), countdown=-30, eta=timezone.now() + dt.timedelta(hours=1))
    assert Task.objects.pending().count() == 1


def test_a_naive_eta_is_utc():
    # celery/worker/request.py: maybe_make_aware(eta) with naive_as_utc=True
    # (celery/utils/time.py).
    naive = dt.datetime(2031, 1, 1, 12, 0)
    parts.apply_async((1, 2), eta=naive)
    assert only_row().eta == naive.replace(tzinfo=dt.timezone.utc)


# Arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "message"),
    [
        (lambda: parts.delay(1), "compat.parts() missing a required argument: 'b'"),
        (lambda: parts.delay(1, 2, 3, 4), "compat.parts() too many positional arguments"),
        (lambda: parts.delay(1, 2, e=5), "compat.parts() got an unexpected keyword argument"),
        (lambda: bound.delay(), "compat.bound() missing a required argument: 'key'"),
        (lambda: parts.s(1).delay(), "compat.parts() missing a required argument"),
    ],
)
def test_wrong_arguments_raise_type_error_at_delay(send, message):
    # celery/app/task.py, Task.apply_async: check_arguments = self.__header__ (typing).
    with pytest.raises(TypeError, match=re.escape(message)):
        send()
    assert Task.objects.count() == 0


def test_typing_false_turns_the_check_off():
    loose = shared_task(name="compat.loose", typing=False)(lambda a: None)
    loose.delay(1, 2, 3)
    assert Task.objects.count() == 1


def test_an_unstorable_argument_is_encode_error_and_type_error():
    with pytest.raises(EncodeError) as raised:
        parts.delay(object(), 2)
    assert isinstance(raised.value, TypeError)


def test_lazy_strings_are_sent_as_text_and_bytes_round_trip():
    parts.delay(gettext_lazy("Hello"), b"\x00\xffbinary")
    drain()
    assert seen == [("Hello", b"\x00\xffbinary", None, None)]


# The eager result ---------------------------------------------------------------------


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_result_is_celerys_eager_result():
    # celery/result.py, EagerResult; celery/app/task.py, Task.apply: task_id = uuid().
    result = bound.delay("ok")
    assert isinstance(result, EagerResult)
    assert re.fullmatch(r"[0-9a-f-]{36}", result.id) and seen[0]["id"] == result.id
    assert (result.status, result.state) == ("SUCCESS", "SUCCESS")
    assert result.ready() and result.successful() and not result.failed()
    assert result.get() == "ok" and result.result == "ok" and result.traceback is None


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_failure_keeps_the_exception_as_the_result():
    broken = shared_task(name="compat.broken")(lambda: 1 / 0)
    result = broken.delay()
    assert result.state == "FAILURE" and result.failed() and result.ready()
    assert isinstance(result.result, ZeroDivisionError)
    assert "ZeroDivisionError" in result.traceback
    with pytest.raises(ZeroDivisionError):
        result.get()
    assert isinstance(result.get(propagate=False), ZeroDivisionError)


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_runs_check_arguments_too():
    with pytest.raises(TypeError, match="missing a required argument"):
        parts.delay(1)


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_expected_exceptions_are_logged_without_a_traceback(caplog):
    expected = shared_task(name="compat.expected", throws=(KeyError,))(lambda: {}["x"])
    caplog.set_level("INFO", logger="taskq.celery")
    expected.delay()
    (record,) = [r for r in caplog.records if r.name == "taskq.celery"]
    assert record.levelname == "INFO" and record.exc_info is None
