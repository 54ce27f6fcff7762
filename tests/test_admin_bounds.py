"""The admin stays small and correct on hostile rows: big arguments and errors, odd URLs,
many distinct names, clocks that disagree."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from taskq import admin as taskq_admin
from taskq import models
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task, Worker
from test_matrix.testapp.tasks import record

pytestmark = pytest.mark.django_db

BIG = 5 * 1024 * 1024
#: A column of the task table read whole, in any database's quoting.
WHOLE_COLUMN = re.compile(r"""(\w*\(?)[`"]taskq_task[`"]\.[`"](args|kwargs|error)[`"]""")


def url(group, view="changelist", *args):
    return reverse(f"admin:taskq_{group}task_{view}", args=args)


@pytest.fixture
def huge_failed_task():
    result = record.delay("x" * 100)
    error = "Traceback (most recent call last):\n" + "e" * BIG + "\nValueError: the end"
    Task.objects.filter(pk=result.id).update(
        args='["' + "a" * BIG + '"]',
        kwargs='{"k": "' + "b" * BIG + '"}',
        error=error,
        state=Task.State.FAILED,
        failed_at=timezone.now(),
    )
    return Task.objects.only("pk").get(pk=result.id)


def test_a_list_page_never_reads_whole_arguments_or_errors(admin_client, huge_failed_task):
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url("failed"))
    assert page.status_code == 200
    assert len(page.content) < 100_000
    assert "ValueError: the end" in page.text and escape('["aaaa') in page.text
    for query in queries:
        for function, column in WHOLE_COLUMN.findall(query["sql"]):
            assert function.upper() in ("LEFT(", "RIGHT(", "SUBSTR("), (column, query["sql"])


def test_a_task_page_shows_at_most_a_slice_of_each_big_column(admin_client, huge_failed_task):
    page = admin_client.get(url("failed", "change", huge_failed_task.pk))
    assert page.status_code == 200
    assert len(page.content) < 4 * taskq_admin.DETAIL_CHARS + 100_000
    assert page.text.count("more bytes not shown") == 3
    shown = BIG + len('["') + len('"]') - taskq_admin.DETAIL_CHARS
    assert f"… {shown} more bytes not shown" in page.text


@pytest.mark.parametrize("object_id", ["١٢٣", "²", "1" * 40, "-1", "0x1"])
def test_a_row_action_on_an_id_that_is_no_plain_number_is_404(admin_client, object_id):
    failed = record.delay(1)
    Task.objects.filter(pk=failed.id).update(state=Task.State.FAILED)
    response = admin_client.post(f"/admin/taskq/failedtask/{object_id}/retry/")
    assert response.status_code == 404
    assert Task.objects.failed().count() == 1


def test_change_permission_alone_shows_the_summary_as_the_readme_says(client):
    user = User.objects.create_user("changer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_task"))
    client.force_login(user)
    assert client.get(reverse("admin:taskq_summary_changelist")).status_code == 200
    assert client.get(url("failed")).status_code == 200
    assert "Summary" in client.get(reverse("admin:index")).text


def test_a_filter_lists_a_bounded_number_of_values_and_says_so(admin_client, monkeypatch):
    monkeypatch.setattr(taskq_admin, "DISTINCT_VALUES_LIMIT", 5)
    enqueue_many(Call(f"tasks.t{i:02}") for i in range(12))
    assert len(Task.objects.values_in_state(Task.State.QUEUED, "name", limit=5)) == 5
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url("pending")).text
    assert "… only the first 5 are listed" in page
    listed = re.findall(r'href="\?name=tasks\.t(\d+)"', page)
    assert listed == ["00", "01", "02", "03", "04"]
    assert len(queries) < 40
    assert models.DISTINCT_VALUES_LIMIT <= 1000  # "a few hundred"


def test_the_summary_judges_heartbeat_ages_by_the_database_clock(admin_client, monkeypatch):
    now = timezone.now()
    Worker.objects.create(
        ident="w", host="web-1", pid=1, queues="default", started_at=now, heartbeat=now
    )
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(minutes=10))
    text = admin_client.get(reverse("admin:taskq_summary_changelist")).text
    (age,) = re.findall(r"\(([\d.]+) s ago\)", text)
    assert float(age) < 60
    monkeypatch.setattr(timezone, "now", lambda: real_now() - dt.timedelta(minutes=10))
    text = admin_client.get(reverse("admin:taskq_summary_changelist")).text
    (age,) = re.findall(r"\(([\d.-]+) s ago\)", text)
    assert 0 <= float(age) < 60
