"""Schedules: cron and interval slots, each queued once by the workers between them."""

import json
import signal
import sys
from collections import Counter
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from taskq import checks, schedules
from taskq.bulk_insert import database_clock
from taskq.conf import settings
from taskq.models import Schedule, Task
from taskq.schedules import parse_schedule, queue_due

UTC = dt_timezone.utc
SLOT = "test_matrix.testapp.tasks.record_slot"


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def entry(**raw):
    return parse_schedule("TASKQ_SCHEDULE", {"e": {"task": SLOT, **raw}})["e"]


# Slots, without a database ----------------------------------------------------------


@override_settings(TIME_ZONE="Europe/Paris")
def test_cron_slots_are_in_time_zone():
    nightly = entry(cron="0 2 * * *")
    # 02:00 in Paris is 01:00 UTC in winter and 00:00 UTC in summer.
    assert nightly.next_after(utc(2026, 1, 10, 0, 30)) == utc(2026, 1, 10, 1, 0)
    assert nightly.next_after(utc(2026, 1, 10, 1, 0)) == utc(2026, 1, 11, 1, 0)
    assert nightly.next_after(utc(2026, 7, 10, 0, 30)) == utc(2026, 7, 11, 0, 0)
    assert nightly.latest_until(utc(2026, 1, 10, 0, 59, 59)) == utc(2026, 1, 9, 1, 0)
    assert nightly.latest_until(utc(2026, 1, 10, 1, 0)) == utc(2026, 1, 10, 1, 0)  # inclusive
    assert nightly.latest_until(utc(2026, 1, 10, 1, 0, 0, 500)) == utc(2026, 1, 10, 1, 0)
    weekdays = entry(cron="30 9 * * mon-fri")
    # Friday 2026-01-09 09:30 Paris; the next is Monday.
    assert weekdays.next_after(utc(2026, 1, 9, 8, 30)) == utc(2026, 1, 12, 8, 30)


def test_interval_slots_are_multiples_of_the_interval_since_the_epoch():
    ping = entry(every=30)
    assert ping.latest_until(utc(2026, 1, 10, 12, 0, 29, 999)) == utc(2026, 1, 10, 12, 0, 0)
    assert ping.latest_until(utc(2026, 1, 10, 12, 0, 30)) == utc(2026, 1, 10, 12, 0, 30)
    assert ping.next_after(utc(2026, 1, 10, 12, 0, 30)) == utc(2026, 1, 10, 12, 1, 0)


def test_catch_up_once_is_the_latest_missed_slot_and_all_is_each():
    last, now = utc(2026, 1, 10, 12, 0), utc(2026, 1, 10, 12, 0, 25)
    assert entry(every=10).slots_after(last, now) == [utc(2026, 1, 10, 12, 0, 20)]
    assert entry(every=10, catch_up="all").slots_after(last, now) == [
        utc(2026, 1, 10, 12, 0, 10),
        utc(2026, 1, 10, 12, 0, 20),
    ]


# Bad entries are system-check errors ---------------------------------------------------


def errors_for(schedule):
    with override_settings(TASKQ_SCHEDULE=schedule):
        return [
            (message.id, message.msg)
            for message in checks.check_settings() + checks.check_schedule()
        ]


@pytest.mark.parametrize(
    "raw, says",
    [
        ({"task": SLOT, "cron": "0 2 * *"}, "must be five fields"),
        ({"task": SLOT, "cron": "0 0 2 * * *"}, "must be five fields"),
        ({"task": SLOT, "cron": "0 25 * * *"}, "bad 'cron' expression '0 25 * * *'"),
        ({"task": SLOT, "cron": "0 2 * * *", "every": 5}, "exactly one of 'cron'"),
        ({"task": SLOT}, "exactly one of 'cron'"),
        ({"task": SLOT, "every": 0}, "'every' must be a whole number"),
        ({"task": SLOT, "every": 5, "kwrags": {}}, "unknown keys ['kwrags']"),
        ({"task": SLOT, "every": 5, "args": [object()]}, "cannot store"),
        ({"task": SLOT, "every": 5, "catch_up": "some"}, "'catch_up' must be one of"),
        ({"task": SLOT, "every": 5, "priority": "high"}, "'priority' must be an int"),
        ({"every": 5}, "must name its task"),
    ],
)
def test_a_bad_entry_is_a_system_check_error(raw, says):
    ((code, message),) = errors_for({"nightly": raw})
    assert code == "taskq.E001"
    assert "TASKQ_SCHEDULE['nightly']" in message and says in message


def test_an_unregistered_task_is_a_system_check_error():
    ((code, message),) = errors_for({"n": {"task": SLOT + "s", "every": 5}})
    assert code == "taskq.E006" and f"did you mean {SLOT!r}" in message
    assert errors_for({"n": {"task": SLOT, "every": 5}}) == []


def test_cron_without_cronsim_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cronsim", None)  # import cronsim raises ImportError
    ((code, message),) = errors_for({"n": {"task": SLOT, "cron": "0 2 * * *"}})
    assert code == "taskq.E001" and "pip install 'django-taskq-portable[cron]'" in message
    assert errors_for({"n": {"task": SLOT, "every": 5}}) == []  # intervals need nothing


# One worker's look at the table, in this process ---------------------------------------


def db_now():
    return database_clock(connection)


@pytest.mark.django_db(transaction=True)
def test_a_new_entry_starts_from_the_latest_slot_without_queuing_it():
    with override_settings(TASKQ_SCHEDULE={"hourly": {"task": SLOT, "every": 3600}}):
        wait = queue_due(settings.SCHEDULE, "default")
        (row,) = Schedule.objects.all()
    latest = entry(every=3600).latest_until(db_now())
    assert row.name == "hourly" and row.last_slot == latest
    assert 0 < wait <= 3600
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("catch_up", ["once", "all"])
def test_slots_missed_while_no_worker_ran_are_caught_up_once_or_each(catch_up):
    hourly = entry(every=3600, catch_up=catch_up)
    latest = hourly.latest_until(db_now())
    Schedule.objects.create(name="hourly", last_slot=latest - timedelta(hours=5))
    raw = {"hourly": {"task": SLOT, "every": 3600, "catch_up": catch_up, "args": ["h"]}}
    with override_settings(TASKQ_SCHEDULE=raw):
        queue_due(settings.SCHEDULE, "default")
        queue_due(settings.SCHEDULE, "default")  # a second look finds nothing due
    etas = sorted(Task.objects.values_list("eta", flat=True))
    if catch_up == "once":
        assert etas == [latest]
    else:
        assert etas == [latest - timedelta(hours=h) for h in (4, 3, 2, 1, 0)]
    assert set(Task.objects.values_list("name", "args")) == {(SLOT, '["h"]')}
    assert Schedule.objects.get().last_slot == latest


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_read_an_old_slot_queues_nothing():
    hourly = entry(every=3600)
    latest = hourly.latest_until(db_now())
    old = latest - timedelta(hours=1)
    Schedule.objects.create(name="e", last_slot=old)
    assert schedules._queue_if_due(hourly, old, db_now(), "default") == latest
    # A second worker that read the row before the first one moved it on.
    assert schedules._queue_if_due(hourly, old, db_now(), "default") == latest
    assert Task.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@override_settings(
    TIME_ZONE="Europe/Paris",
    TASKQ_SCHEDULE={
        "nightly": {"task": SLOT, "cron": "0 2 * * *"},
        "ping": {"task": SLOT, "every": 30},
    },
)
def test_the_admin_and_taskq_stats_list_the_entries_with_their_slots(client):
    queue_due({"ping": settings.SCHEDULE["ping"]}, "default")
    ping = Schedule.objects.get(name="ping").last_slot
    out = StringIO()
    call_command("taskq_stats", stdout=out)
    lines = {line.split()[0]: line for line in out.getvalue().splitlines() if line}
    assert "cron 0 2 * * *" in lines["nightly"] and "never" in lines["nightly"]
    assert "every 30s" in lines["ping"]
    local = ping.astimezone(schedules.timezone.get_default_timezone())
    assert f"{local:%Y-%m-%d %H:%M:%S}" in lines["ping"]
    assert f"{local + timedelta(seconds=30):%Y-%m-%d %H:%M:%S}" in lines["ping"]
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    page = client.get("/admin/taskq/summary/").content.decode()
    assert "<caption>Schedules</caption>" in page
    assert '<th scope="row">nightly</th>' in page and "cron 0 2 * * *" in page


# Real workers -------------------------------------------------------------------------


def slots_recorded(workers):
    return [line.split()[1] for line in workers.records() if line.startswith("slot ")]


@pytest.mark.processes
def test_three_workers_queue_every_slot_once_even_when_one_is_killed(workers, wait_until):
    schedule = json.dumps({"tick": {"task": SLOT, "every": 2}})
    started = [workers.start(TASKQ_TEST_SCHEDULE=schedule) for _ in range(3)]
    for process in started:
        workers.wait_until_registered(process)
    wait_until(lambda: len(slots_recorded(workers)) >= 4, timeout=90)
    started[0].send_signal(signal.SIGKILL)  # maybe mid-task, maybe mid-look
    started[0].wait()
    wait_until(lambda: len(slots_recorded(workers)) >= 10, timeout=90)
    for process in started[1:]:
        process.send_signal(signal.SIGTERM)
    for process in started[1:]:
        assert process.wait(timeout=60) == 0
    check_every_slot_once(workers)


@pytest.mark.processes
def test_an_idle_worker_wakes_for_the_next_slot(workers, wait_until):
    # Polling every 30 s (±50 %) alone, it would sleep through slots and then catch
    # up only the latest: slots would be missing.
    schedule = json.dumps({"tick": {"task": SLOT, "every": 2}})
    process = workers.start(TASKQ_TEST_SCHEDULE=schedule, TASKQ_TEST_POLL_INTERVAL="30")
    workers.wait_until_registered(process)
    wait_until(lambda: len(slots_recorded(workers)) >= 4, timeout=90)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    check_every_slot_once(workers)


def check_every_slot_once(workers):
    """Every slot from the first to the last was queued once: none twice, none missing.

    A slot's tasks are those that recorded a run and those still in the table: queued
    at the stop, or started by the killed worker (run and recorded, maybe, but not
    deleted yet). A slot queued twice would have two task ids.
    """
    runs = [line.split() for line in workers.records() if line.startswith("slot ")]
    tasks = {(slot, int(pk)) for _, slot, _, pk in runs}
    rows = list(Task.objects.values_list("eta", "pk"))
    tasks |= {(eta.isoformat(), pk) for eta, pk in rows}
    every = Counter(slot for slot, _ in tasks)
    slots = sorted(datetime.fromisoformat(slot) for slot in every)
    expected = [slots[0] + timedelta(seconds=2 * n) for n in range(len(slots))]
    lateness = [float(late) for _, _, late, _ in runs]
    print(
        f"schedule on {connection.vendor}: {len(slots)} slots, {len(runs)} runs recorded, "
        f"{len(rows)} task(s) left in the table, queued twice "
        f"{sum(n - 1 for n in every.values())}, missing {len(set(expected) - set(slots))}; "
        f"queued after the slot by {min(lateness):.3f}..{max(lateness):.3f}s"
    )
    assert len(runs) == len({pk for _, _, _, pk in runs}), "a task ran twice"
    assert all(count == 1 for count in every.values()), every
    assert slots == expected
    assert Schedule.objects.get(name="tick").last_slot == slots[-1]


@pytest.mark.processes
def test_a_worker_started_after_downtime_catches_up_once(workers):
    hourly = entry(every=3600)
    latest = hourly.latest_until(db_now())
    Schedule.objects.create(name="hourly", last_slot=latest - timedelta(hours=5))
    schedule = json.dumps({"hourly": {"task": SLOT, "every": 3600}})
    assert workers.run("--burst", TASKQ_TEST_SCHEDULE=schedule).returncode == 0
    assert slots_recorded(workers) == [latest.isoformat()]
    assert Schedule.objects.get().last_slot == latest
