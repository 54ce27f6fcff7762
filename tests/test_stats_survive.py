"""``taskq_stats`` and ``metrics.snapshot()`` on hostile names and a wrong local clock."""

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from taskq import metrics
from taskq.enqueue import Call, enqueue
from taskq.models import Worker
from test_matrix.testapp.tasks import noop

pytestmark = pytest.mark.django_db


def stats(*args):
    out = io.StringIO()
    call_command("taskq_stats", *args, stdout=out)
    return out.getvalue()


def test_control_characters_in_names_are_printed_escaped():
    name = "evil\x1b[2J\nname\\x"
    queue = "q\x1b]0;title\x07\u202e"
    enqueue(Call(name, queue=queue))
    now = timezone.now()
    Worker.objects.create(
        ident="w\rx", host="h", pid=1, queues=queue, started_at=now, heartbeat=now
    )
    text = stats()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\u202e" not in text
    assert "evil\\x1b[2J\\nname\\\\x" in text
    assert "q\\x1b]0;title\\x07\\u202e" in text
    assert "w\\rx" in text
    # No line added by a name (the table health lines are there where the database
    # keeps dead rows: PostgreSQL).
    health = [line for line in text.splitlines() if line.startswith("task table:")]
    assert len(text.splitlines()) - 2 * len(health) == 13
    assert json.loads(stats("--json"))["tasks"][name]["pending"] == 1  # JSON: the name as is


@pytest.mark.parametrize("offset", [dt.timedelta(minutes=10), -dt.timedelta(minutes=10)])
def test_ages_are_judged_by_the_database_clock_and_never_negative(monkeypatch, offset):
    noop.apply_async(eta=timezone.now() - dt.timedelta(seconds=30))
    now = timezone.now()
    Worker.objects.create(
        ident="w", host="h", pid=1, queues="default", started_at=now, heartbeat=now
    )
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)
    for snap in (metrics.snapshot(), metrics.bounded_counts()):
        assert 29 <= snap["oldest_pending_age"] < 90
        (worker,) = snap["live_workers"]
        assert 0 <= worker["heartbeat_age"] < 60
