"""``taskq_enqueue``: queue a registered task from cron, with clear errors."""

import datetime as dt
import io
import json
import subprocess
import sys

import django
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from taskq.celery import shared_task
from taskq.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

needs_django_tasks = pytest.mark.skipif(
    django.VERSION < (6, 0), reason="Django's Tasks framework needs Django >= 6.0"
)


@shared_task(name="t.cron.nightly", queue="nightly", priority=4)
def nightly(day=None, *, dry_run=False):
    pass


def enqueue(*args):
    out = io.StringIO()
    call_command("taskq_enqueue", *args, stdout=out)
    return out.getvalue()


def test_queues_a_registered_task_with_json_arguments_and_options():
    before = timezone.now()
    out = enqueue(
        "test_matrix.testapp.tasks.record",
        "--args",
        # One argument (issue 11: a call is checked against the task's signature).
        '[[5, "five", {"n": [1.5, null, true]}]]',
        "--kwargs",
        "{}",
        "--queue",
        "mail",
        "--priority",
        "-3",
        "--countdown",
        "60",
    )
    row = Task.objects.get()
    assert out == f"Queued test_matrix.testapp.tasks.record as task {row.pk}\n"
    assert json.loads(row.args) == [[5, "five", {"n": [1.5, None, True]}]]
    assert (row.queue, row.priority, row.state) == ("mail", -3, Task.State.QUEUED)
    assert before + dt.timedelta(seconds=59) < row.eta < timezone.now() + dt.timedelta(seconds=61)


def test_the_tasks_own_defaults_apply_and_kwargs_pass_through():
    enqueue("t.cron.nightly", "--kwargs", '{"dry_run": true, "day": "mon"}')
    row = Task.objects.get()
    assert (row.queue, row.priority) == ("nightly", 4)
    assert json.loads(row.kwargs) == {"dry_run": True, "day": "mon"}
    assert row.eta <= timezone.now()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2031-02-03T04:05:06Z", dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)),
        (
            "2031-02-03T04:05:06+02:00",
            dt.datetime(2031, 2, 3, 2, 5, 6, tzinfo=dt.timezone.utc),
        ),
        # No offset: TIME_ZONE, which is UTC in the test settings.
        ("2031-02-03 04:05", dt.datetime(2031, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
    ],
)
def test_eta_is_an_iso_datetime(text, expected):
    enqueue("t.cron.nightly", "--eta", text)
    assert Task.objects.get().eta == expected


def test_countdown_wins_over_eta():
    # Changed by issue 11: a countdown of 0 leaves --eta in force, as in Celery.
    enqueue("t.cron.nightly", "--eta", "2031-02-03T04:05:06Z", "--countdown", "1")
    assert Task.objects.get().eta <= timezone.now() + dt.timedelta(seconds=2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["no.such.task"], "unregistered task 'no.such.task'; registered tasks: "),
        (["t.cron.nightly", "--args", "[1,"], "--args is not valid JSON"),
        (["t.cron.nightly", "--args", '{"a": 1}'], "--args must be a JSON array"),
        (["t.cron.nightly", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
        (["t.cron.nightly", "--kwargs", "{'a': 1}"], "--kwargs is not valid JSON"),
        (["t.cron.nightly", "--eta", "tomorrow"], "--eta must be an ISO 8601 date and time"),
        (["t.cron.nightly", "--eta", "2031-02-30T00:00Z"], "--eta must be an ISO 8601"),
        (["t.cron.nightly", "--countdown", "-5"], "countdown must not be negative"),
        (["t.cron.nightly", "--priority", "99999"], "priority must be between -32768"),
        (["t.cron.nightly", "--queue", ""], "queue must be a name of 1 to 100 characters"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(args, message):
    with pytest.raises(CommandError) as info:
        enqueue(*args)
    assert message in str(info.value)
    assert Task.objects.count() == 0


def test_the_error_for_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(CommandError) as info:
        enqueue("test_matrix.testapp.tasks.nope")
    assert "test_matrix.testapp.tasks.record" in str(info.value)


@override_settings(CELERY_TASK_ALWAYS_EAGER=True)
def test_eager_mode_runs_the_task_here():
    assert enqueue("t.cron.nightly") == "Ran t.cron.nightly inline (CELERY_TASK_ALWAYS_EAGER)\n"
    assert Task.objects.count() == 0


@pytest.mark.processes
def test_as_cron_runs_it_exit_codes_and_messages(workers):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "django", "taskq_enqueue", *args],
            env=workers.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = run("test_matrix.testapp.tasks.record", "--args", '["from cron"]')
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Queued test_matrix.testapp.tasks.record as task ")
    unknown = run("os.system", "--args", '["true"]')
    assert unknown.returncode != 0
    assert "CommandError: unregistered task 'os.system'" in unknown.stderr
    bad_json = run("test_matrix.testapp.tasks.record", "--args", "[oops]")
    assert bad_json.returncode != 0
    assert "--args is not valid JSON" in bad_json.stderr
    assert json.loads(Task.objects.get().args) == ["from cron"]
    done = workers.run("--burst")
    assert done.returncode == 0 and workers.records() == ["from cron"]


@needs_django_tasks
def test_a_django_task_goes_through_djangos_backend():
    from django.tasks.signals import task_enqueued

    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        out = enqueue("test_matrix.testapp.django_tasks.mail", "--args", '["a@b.c"]')
        enqueue(
            "test_matrix.testapp.django_tasks.record",
            "--countdown",
            "120",
            "--priority",
            "100",
            "--queue",
            "mail",
        )
    finally:
        task_enqueued.disconnect(receiver)
    mail, record = Task.objects.order_by("pk")
    assert out == f"Queued test_matrix.testapp.django_tasks.mail as task {mail.pk}\n"
    assert seen == [str(mail.pk), str(record.pk)]
    assert (mail.queue, mail.priority, json.loads(mail.args)) == ("mail", 7, ["a@b.c"])
    assert (record.queue, record.priority) == ("mail", 100)
    assert record.eta > timezone.now() + dt.timedelta(seconds=100)


@needs_django_tasks
@pytest.mark.parametrize(
    "args, message",
    [
        (["--queue", "nope"], "Queue 'nope' is not valid for backend"),
        (["--priority", "101"], "priority must be a whole number between -100 and 100"),
        (["--countdown", "-1"], "countdown must not be negative"),
    ],
)
def test_djangos_checks_apply_to_django_tasks(args, message):
    with pytest.raises(CommandError, match=message):
        enqueue("test_matrix.testapp.django_tasks.record", *args)
    assert Task.objects.count() == 0
