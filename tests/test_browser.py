"""One end-to-end walk through the admin in headless Chromium against a live server."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from taskq.models import Task, Worker
from test_matrix.testapp.tasks import fail, noop, record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Where to save screenshots (the README's come from here), if set.
SCREENSHOTS = os.environ.get("TASKQ_SCREENSHOTS")

pytestmark = pytest.mark.django_db(transaction=True)

TRACEBACK = """Traceback (most recent call last):
  File "/app/shop/tasks.py", line 41, in charge_card
    gateway.charge(order.total)
  File "/app/shop/gateway.py", line 12, in charge
    raise PaymentGatewayDown("payment gateway unreachable while charging order 42")
shop.gateway.PaymentGatewayDown: payment gateway unreachable while charging order 42
"""


@pytest.fixture
def browser_page(demo_rows):
    """A Chromium page; requested after the rows, since Django refuses ORM calls while
    Playwright's event loop runs."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: install Debian's chromium")
        pytest.skip("no chromium on this machine")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1800, "height": 800})
        yield page
        browser.close()


def shoot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS, f"{name}.png")), full_page=True)


@pytest.fixture
def demo_rows():
    User.objects.create_superuser("admin", password="admin")
    now = timezone.now()
    worker = Worker.objects.create(
        ident="web-1:4242:ab12cd34",
        host="web-1",
        pid=4242,
        queues="default,mail",
        started_at=now,
        heartbeat=now,
        succeeded=1289,
        failed=3,
    )
    for i in range(3):
        record.delay(i)
    record.apply_async(("reminder",), countdown=3600)
    running = noop.delay()
    Task.objects.filter(pk=running.id).update(
        state=Task.State.STARTED, worker=worker, started_at=now
    )
    failed = fail.apply_async(("payment gateway unreachable while charging order 42",))
    Task.objects.filter(pk=failed.id).update(
        state=Task.State.FAILED, failed_at=now, retries=3, error=TRACEBACK
    )
    return Task.objects.get(pk=failed.id)


def test_log_in_open_every_view_and_retry_a_failed_task(live_server, demo_rows, browser_page):
    page = browser_page
    failed = demo_rows
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto(f"{live_server.url}/admin/taskq/summary/")
    assert page.locator("td.taskq-failed").inner_text() == "1"
    assert "web-1" in page.inner_text("#content")
    shoot(page, "summary")

    for group in ["dirty", "active", "pending", "future"]:
        page.goto(f"{live_server.url}/admin/taskq/{group}task/")
        assert page.locator("#result_list").count() or "0 " in page.inner_text("#content")

    page.goto(f"{live_server.url}/admin/taskq/failedtask/{failed.pk}/change/")
    assert "PaymentGatewayDown" in page.inner_text("#content")
    shoot(page, "failed-detail")

    page.goto(f"{live_server.url}/admin/taskq/failedtask/")
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert "payment gateway unreachable" in row.inner_text()
    shoot(page, "failed")
    row.get_by_role("button", name="Retry now").click()
    page.wait_for_selector(".messagelist")
    assert "Queued again, due now: 1 task." in page.inner_text(".messagelist")
    assert page.locator("#result_list").count() == 0  # the list is empty now

    page.goto(f"{live_server.url}/admin/taskq/pendingtask/")
    assert "tasks.fail" in page.inner_text("#result_list")
