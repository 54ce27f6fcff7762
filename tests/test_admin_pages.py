"""What each admin page shows: per-state columns, times with seconds, ages by the
database's clock, a task's page with its call and buttons, the index's "View", the
summary's links, workers live or gone, and the history charts."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from taskq import history
from taskq.clock import read_database_now
from taskq.models import Minute, Task, Worker
from test_matrix.testapp.tasks import record, record_call

pytestmark = pytest.mark.django_db

SUMMARY = "admin:taskq_summary_changelist"


def url(group, view="changelist", *args):
    return reverse(f"admin:taskq_{group}task_{view}", args=args)


def headers(page):
    """The list's column titles, without the checkbox and button columns."""
    thead = page.split('id="result_list"')[1].split("</thead>")[0]
    titles = re.findall(r'<div class="text">(?:<a[^>]*>|<span>)([^<]*)<', thead)
    return [title.strip().lower() for title in titles if title.strip()]


@pytest.fixture
def rows():
    now = timezone.now()
    live = Worker.objects.create(
        ident="web-1:11:aa", host="web-1", pid=11, queues="default", started_at=now, heartbeat=now
    )
    gone = Worker.objects.create(
        ident="web-2:22:bb",
        host="web-2",
        pid=22,
        queues="default",
        started_at=now,
        heartbeat=now - dt.timedelta(minutes=5),
    )
    failed = record_call.apply_async((42,), {"amount": Decimal("19.90")})
    Task.objects.filter(pk=failed.id).update(
        state=Task.State.FAILED,
        started_at=now - dt.timedelta(seconds=12.5),
        failed_at=now - dt.timedelta(seconds=10),
        retries=2,
        error="Traceback\nValueError: declined\n",
        worker_ident="web-9:99:cc",
    )
    active = record.delay("a")
    Task.objects.filter(pk=active.id).update(
        state=Task.State.STARTED, worker=live, started_at=now - dt.timedelta(seconds=125)
    )
    dirty = record.delay("d")
    Task.objects.filter(pk=dirty.id).update(
        state=Task.State.STARTED, worker=gone, started_at=now - dt.timedelta(minutes=6)
    )
    pending = record.delay("p")
    Task.objects.filter(pk=pending.id).update(eta=now - dt.timedelta(seconds=200))
    future = record.apply_async(("f",), countdown=7200)
    return {
        name: Task.objects.get(pk=r.id)
        for name, r in dict(
            failed=failed, active=active, dirty=dirty, pending=pending, future=future
        ).items()
    }


FIRST = ["id", "name", "arguments", "queue"]
COLUMNS = {
    "failed": [*FIRST, "failed at", "run time", "retries", "last error", "worker"],
    "dirty": [*FIRST, "started at", "dirty since", "last heartbeat", "retries", "worker"],
    "active": [*FIRST, "started at", "running for", "retries", "worker"],
    "pending": [*FIRST, "priority", "due at", "waiting for", "retries"],
    "future": [*FIRST, "priority", "due at", "due in", "retries"],
}


@pytest.mark.parametrize("group", COLUMNS)
def test_each_list_has_the_columns_of_its_state(admin_client, rows, group):
    page = admin_client.get(url(group)).text
    assert headers(page) == COLUMNS[group]
    assert f">{rows[group].pk}</a>" in page  # the id, a link to the task's page


def test_list_values_with_seconds_and_database_clock_ages(admin_client, rows):
    failed = admin_client.get(url("failed")).text
    shown = timezone.localtime(rows["failed"].failed_at).strftime("%Y-%m-%d %H:%M:%S")
    assert shown in failed and "2.50 s" in failed  # failed at; run time
    assert escape("42, amount=Decimal('19.90')") in failed and "__taskq__" not in failed
    assert "web-9:99 (gone)" in failed and "ValueError: declined" in failed
    assert re.search(r"2 min 0\d s", admin_client.get(url("active")).text)  # running for
    dirty = admin_client.get(url("dirty")).text
    assert re.search(r"5 min 0\d s ago", dirty) and "web-2:22" in dirty  # last heartbeat
    assert re.search(r"3 min 2\d s", admin_client.get(url("pending")).text)  # waiting for
    assert re.search(r"1 h 59 min", admin_client.get(url("future")).text)  # due in


def test_the_index_says_view_for_every_list(admin_client, rows):
    index = admin_client.get(reverse("admin:index")).text
    for group in COLUMNS:
        assert f'href="{url(group)}" class="viewlink"' in index
        assert f'href="{url(group)}" class="changelink"' not in index


BUTTONS = {"failed": "Retry now", "dirty": "Retry now", "active": "Cancel", "pending": "Run now"}
BUTTONS["future"] = "Run now"


@pytest.mark.parametrize("group", BUTTONS)
def test_a_task_page_has_the_button_its_state_allows(admin_client, rows, group):
    task = rows[group]
    page = admin_client.get(url(group, "change", task.pk)).text
    suffix = {"Retry now": "retry", "Cancel": "cancel", "Run now": "run_now"}[BUTTONS[group]]
    assert f'<form method="post" action="{url(group, suffix, task.pk)}">' in page
    assert "csrfmiddlewaretoken" in page.split(url(group, suffix, task.pk))[1][:300]
    assert "Version" not in page and 'name="_save"' not in page
    response = admin_client.post(url(group, suffix, task.pk), follow=True)
    assert response.status_code == 200 and "1 task." in response.text


def test_a_failed_tasks_page_reads_as_the_call(admin_client, rows):
    page = admin_client.get(url("failed", "change", rows["failed"].pk)).text
    assert escape("test_matrix.testapp.tasks.record_call(42, amount=Decimal('19.90'))") in page
    assert "2 of 3" in page  # retries against the task's max_retries
    assert "2.50 s" in page and "web-9:99:cc" in page and "ValueError: declined" in page


def test_an_undecodable_row_shows_its_stored_text(admin_client, rows):
    Task.objects.filter(pk=rows["failed"].pk).update(args='{"not": "a list"}', name="gone.task")
    page = admin_client.get(url("failed", "change", rows["failed"].pk)).text
    assert "Arguments as stored" in page and "&quot;not&quot;: &quot;a list&quot;" in page
    assert "not registered" in page
    assert admin_client.get(url("failed")).status_code == 200


def test_view_permission_shows_no_button_on_a_task_page(client, rows):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(user)
    page = client.get(url("failed", "change", rows["failed"].pk)).text
    assert "Retry now" not in page
    assert client.post(url("failed", "retry", rows["failed"].pk)).status_code == 403


def test_the_summary_links_its_counts_and_marks_workers(admin_client, rows):
    page = admin_client.get(reverse(SUMMARY)).text
    for group in COLUMNS:
        assert f'<a href="{url(group)}">1</a>' in page
    assert f'<a href="{url("pending")}?name=test_matrix.testapp.tasks.record">1</a>' in page
    assert f'<a href="{url("failed")}?queue=default">1</a>' in page
    live, gone = re.findall(r'<tr class="taskq-worker">(.*?)</tr>', page, re.S)
    assert "taskq-live" in live and re.search(r"2 min 0\d s", live)
    assert f'href="{url("active")}{rows["active"].pk}/change/"' in live
    assert "taskq-gone" in gone and f'href="{url("dirty")}{rows["dirty"].pk}/change/"' in gone


def test_the_summary_draws_the_history(admin_client):
    end = history.minute_of(read_database_now("default"))
    Minute.objects.create(queue="default", minute=end, succeeded=17, failed=4, pending=30)
    Minute.objects.create(queue="default", minute=end - dt.timedelta(minutes=1), succeeded=3)
    page = admin_client.get(reverse(SUMMARY), {"hours": "1"}).text
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="taskq-chart"') == 3
    assert "succeeded (max 17, total 20)" in page and "failed (max 4, total 4)" in page
    assert "pending (max 30, total 30)" in page
    assert "<script" not in page.split('id="history"')[1]
    assert "<strong>1 h</strong>" in page
