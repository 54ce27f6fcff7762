"""The admin: five groups, the summary, actions, permissions and CSRF."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from taskq import metrics
from taskq.backends import engine_for
from taskq.backends.estimates import estimated_count
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task, Worker
from test_matrix.testapp.tasks import fail, noop, record

pytestmark = pytest.mark.django_db

GROUPS = ["failed", "dirty", "active", "pending", "future"]
TRACEBACK = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: card declined\n'


def url(group, view="changelist", *args):
    return reverse(f"admin:taskq_{group}task_{view}", args=args)


@pytest.fixture
def tasks():
    """One task in each group, by name."""
    now = timezone.now()
    alive = Worker.objects.create(
        ident="alive", host="web-1", pid=11, queues="default", started_at=now, heartbeat=now
    )
    failed = fail.delay("card declined")
    Task.objects.filter(pk=failed.id).update(
        state=Task.State.FAILED,
        retries=2,
        failed_at=now,
        error=TRACEBACK,
    )
    dirty = record.delay({"order": 7})
    Task.objects.filter(pk=dirty.id).update(state=Task.State.STARTED, started_at=now)
    active = noop.delay()
    Task.objects.filter(pk=active.id).update(state=Task.State.STARTED, started_at=now, worker=alive)
    pending = record.delay("pending")
    future = record.apply_async(("future",), countdown=3600)
    return {
        name: Task.objects.get(pk=result.id)
        for name, result in zip(GROUPS, [failed, dirty, active, pending, future], strict=True)
    }


@pytest.fixture
def staff(client):
    def login(*permissions):
        user = User.objects.create_user("staff", password="pw", is_staff=True)
        for codename in permissions:
            user.user_permissions.add(Permission.objects.get(codename=codename))
        client.force_login(user)
        return client

    return login


def test_each_group_lists_its_task_and_only_it(admin_client, tasks):
    for group in GROUPS:
        page = admin_client.get(url(group))
        assert page.status_code == 200
        shown = {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', page.text)}
        if group == "active":
            assert f"/admin/taskq/activetask/{tasks['active'].pk}/change/" in page.text
        else:
            assert shown == {tasks[group].pk}, group


def test_the_failed_list_shows_the_columns(admin_client, tasks):
    page = admin_client.get(url("failed")).text
    for text in [
        "test_matrix.testapp.tasks.fail",
        "'card declined'",  # decoded, as the call would read
        "ValueError: card declined",
    ]:
        assert escape(text) in page
    active = admin_client.get(url("active")).text
    assert "web-1:11" in active


def test_filters_and_search(admin_client, tasks):
    page = admin_client.get(url("pending"), {"queue": "default"})
    assert page.status_code == 200 and "tasks.record" in page.text
    page = admin_client.get(url("pending"), {"q": "nomatch"})
    assert (
        "tasks.record" not in page.text.split('id="changelist-filter"')[0].split("result_list")[-1]
    )


def test_the_detail_page_shows_arguments_and_traceback_read_only(admin_client, tasks):
    dirty = admin_client.get(url("dirty", "change", tasks["dirty"].pk))
    assert dirty.status_code == 200
    assert escape("test_matrix.testapp.tasks.record({'order': 7})") in dirty.text  # decoded
    failed = admin_client.get(url("failed", "change", tasks["failed"].pk)).text
    assert "ValueError: card declined" in failed and "most recent call last" in failed
    assert 'name="_save"' not in failed
    response = admin_client.post(url("failed", "change", tasks["failed"].pk), {"name": "os.system"})
    assert response.status_code == 403
    assert Task.objects.get(pk=tasks["failed"].pk).name == "test_matrix.testapp.tasks.fail"


def test_nothing_can_be_added(admin_client):
    for group in GROUPS:
        assert admin_client.get(url(group, "add")).status_code == 403


def test_bulk_retry_of_failed_tasks(admin_client, tasks):
    failed = tasks["failed"]
    version = failed.version
    response = admin_client.post(
        url("failed"), {"action": "retry", "_selected_action": [failed.pk]}, follow=True
    )
    assert "Queued again, due now: 1 task." in response.text
    failed.refresh_from_db()
    assert failed.state == Task.State.QUEUED and failed.eta <= timezone.now()
    assert failed.retries == 2  # kept
    assert failed.version == version + 1
    assert failed.pk not in {t.pk for t in Task.objects.failed()}


def test_row_button_retries_a_dirty_task(admin_client, tasks):
    dirty = tasks["dirty"]
    page = admin_client.get(url("dirty")).text
    assert f'formaction="{url("dirty", "retry", dirty.pk)}"' in page
    response = admin_client.post(url("dirty", "retry", dirty.pk), follow=True)
    assert "Queued again, due now: 1 task." in response.text
    assert Task.objects.pending().filter(pk=dirty.pk).exists()
    assert admin_client.get(url("dirty", "retry", dirty.pk)).status_code == 405


def test_retry_from_one_view_cannot_touch_a_task_of_another(admin_client, tasks):
    active = tasks["active"]
    response = admin_client.post(url("failed", "retry", active.pk), follow=True)
    assert "Queued again, due now: 0 tasks." in response.text
    assert Task.objects.active().filter(pk=active.pk).exists()


def test_run_now_moves_a_future_task_to_pending(admin_client, tasks):
    future = tasks["future"]
    response = admin_client.post(
        url("future"), {"action": "run_now", "_selected_action": [future.pk]}, follow=True
    )
    assert "Made due now: 1 task." in response.text
    assert Task.objects.pending().filter(pk=future.pk).exists()
    response = admin_client.post(url("pending", "run_now", tasks["pending"].pk), follow=True)
    assert "Made due now: 1 task." in response.text


def test_delete_selected(admin_client, tasks):
    failed = tasks["failed"]
    response = admin_client.post(
        url("failed"),
        {"action": "delete_selected", "_selected_action": [failed.pk], "post": "yes"},
        follow=True,
    )
    assert "Successfully deleted 1 failed task." in response.text
    assert not Task.objects.filter(pk=failed.pk).exists()


def test_the_active_view_has_no_actions(admin_client, tasks):
    page = admin_client.get(url("active")).text
    assert 'name="action"' not in page
    assert admin_client.post(url("active"), {"action": "delete_selected"}).status_code == 403


def test_the_summary_page(admin_client, tasks):
    page = admin_client.get(reverse("admin:taskq_summary_changelist"))
    assert page.status_code == 200
    text = page.text
    assert "test_matrix.testapp.tasks.record" in text
    assert "web-1" in text and "test_matrix.testapp.tasks.noop[" in text  # its current task
    for group in GROUPS:
        assert f'<td class="taskq-{group}"><a href="{url(group)}">1</a></td>' in text


# Permissions ----------------------------------------------------------------------


def test_view_permission_shows_lists_without_any_action(staff, tasks):
    client = staff("view_task")
    page = client.get(url("failed"))
    assert page.status_code == 200
    assert "Retry now" not in page.text
    assert client.get(reverse("admin:taskq_summary_changelist")).status_code == 200


def test_a_forged_action_without_permission_is_refused(staff, tasks):
    client = staff("view_task")
    failed = tasks["failed"]
    forged = {"action": "retry", "_selected_action": [failed.pk]}
    assert client.post(url("failed"), forged).status_code == 403
    assert client.post(url("failed", "retry", failed.pk)).status_code == 403
    delete = {"action": "delete_selected", "_selected_action": [failed.pk], "post": "yes"}
    assert client.post(url("failed"), delete).status_code == 403
    assert Task.objects.failed().filter(pk=failed.pk, version=failed.version).exists()


def test_change_permission_allows_retry_but_not_delete(staff, tasks):
    client = staff("change_task")
    failed = tasks["failed"]
    page = client.get(url("failed")).text
    assert "Retry now" in page and "delete_selected" not in page
    delete = {"action": "delete_selected", "_selected_action": [failed.pk], "post": "yes"}
    assert client.post(url("failed"), delete).status_code == 403
    assert client.post(url("failed", "retry", failed.pk)).status_code == 302
    assert Task.objects.pending().filter(pk=failed.pk).exists()


def test_delete_permission_allows_delete(staff, tasks):
    client = staff("view_task", "delete_task")
    failed = tasks["failed"]
    delete = {"action": "delete_selected", "_selected_action": [failed.pk], "post": "yes"}
    assert client.post(url("failed"), delete).status_code == 302
    assert not Task.objects.filter(pk=failed.pk).exists()


def test_staff_without_permissions_sees_nothing(staff, tasks):
    client = staff()
    for group in GROUPS:
        assert client.get(url(group)).status_code == 403
    assert client.get(reverse("admin:taskq_summary_changelist")).status_code == 403
    assert "taskq" not in client.get(reverse("admin:index")).text.lower().split("<body")[-1]


def test_actions_need_a_csrf_token(tasks):
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    failed = tasks["failed"]
    assert client.post(url("failed", "retry", failed.pk)).status_code == 403
    forged = {"action": "retry", "_selected_action": [failed.pk]}
    assert client.post(url("failed"), forged).status_code == 403
    assert Task.objects.failed().filter(pk=failed.pk).exists()
    page = client.get(url("failed"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(url("failed", "retry", failed.pk), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Task.objects.pending().filter(pk=failed.pk).exists()


# Scale --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # ANALYZE TABLE commits on MySQL
def test_big_lists_are_not_counted_exactly_where_the_database_estimates(admin_client):
    enqueue_many(
        Call("test_matrix.testapp.tasks.noop", eta=timezone.now() - dt.timedelta(seconds=i))
        for i in range(30_000)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE " + ("TABLE " if connection.vendor == "mysql" else "") + "taskq_task"
        )
    estimate = estimated_count(Task.objects.pending())
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url("pending"))
    assert page.status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    if estimate is None:
        assert not engine_for(connection).can_estimate_count
        assert counts  # SQLite cannot estimate: an exact count it is
        assert "≈" not in page.content.decode()
    else:
        assert 12_000 <= estimate <= 60_000, estimate
        assert counts == [], estimate
        assert f"≈ {estimate}</span> pending tasks" in page.content.decode()  # marked


def test_the_shell_api_mirrors_the_actions(tasks):
    assert Task.objects.failed().retry() == 1
    assert Task.objects.dirty().retry() == 1
    assert Task.objects.future().run_now() == 1
    assert Task.objects.pending().count() == 4
    assert Task.objects.active().count() == 1


@pytest.mark.django_db(transaction=True)  # ANALYZE TABLE commits on MySQL
def test_the_summary_counts_a_big_table_within_bounds(admin_client, monkeypatch):
    enqueue_many(
        Call("test_matrix.testapp.tasks.noop", eta=timezone.now() - dt.timedelta(seconds=i))
        for i in range(30_000)
    )
    if engine_for(connection).can_estimate_count:
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE " + ("TABLE " if connection.vendor == "mysql" else "") + "taskq_task"
            )
    summary = reverse("admin:taskq_summary_changelist")
    # Below TOTAL_COUNTED_UP_TO a group, and each of its queues, is counted exactly.
    pending = f'<td class="taskq-pending"><a href="{url("pending")}">30000</a></td>'
    assert pending in admin_client.get(summary).text

    monkeypatch.setattr(metrics, "TOTAL_COUNTED_UP_TO", 1_000)
    counts = metrics.bounded_counts()
    if not engine_for(connection).can_estimate_count:  # no estimate: exact, as before
        assert counts["pending"] == metrics.Tally(30_000)
        return
    assert counts["pending"].kind == "estimate", counts["pending"]
    assert 12_000 <= counts["pending"].value <= 60_000
    assert counts["queues"]["default"]["pending"] == metrics.Tally(10_000, "at least")
    assert counts["tasks"]["test_matrix.testapp.tasks.noop"]["future"] == metrics.Tally(0)
    with CaptureQueriesContext(connection) as queries:
        text = admin_client.get(summary).text
    assert "≈ " in text and "≥ 10000" in text and "the database's estimate" in text
    grouped = [
        q["sql"]
        for q in queries
        if "GROUP BY" in q["sql"].upper() and "taskq_minute" not in q["sql"]  # the history's
    ]
    # Only the small states (failed, started) are counted in one grouped query.
    assert grouped and all(re.search(r"state.? = [12] GROUP BY", sql) for sql in grouped)
