"""One end-to-end walk through every admin page in headless Chromium against a live server,
in a 1280 px window: what each page shows, that nothing scrolls sideways, and the buttons.

With ``TASKQ_SCREENSHOTS=docs/screenshots`` it writes the README's screenshots."""

import datetime as dt
import math
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from taskq import history
from taskq.models import Minute, Task, Worker
from test_matrix.testapp.tasks import fail, noop, record, record_call

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Where to save screenshots (the README's come from here), if set.
SCREENSHOTS = os.environ.get("TASKQ_SCREENSHOTS")
WIDTH = 1280

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
        page = browser.new_page(viewport={"width": WIDTH, "height": 800})
        yield page
        browser.close()


def shoot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS, f"{name}.png")), full_page=True)


def fits_the_window(page):
    """Nothing scrolls sideways, and every row button is inside the window."""
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    for button in page.locator("#result_list button").all():
        box = button.bounding_box()
        assert box["x"] + box["width"] <= WIDTH, box


@pytest.fixture
def demo_rows(settings):
    # A live worker stays live while the browser starts and walks the pages.
    settings.TASKQ_DIRTY_AFTER = 60
    User.objects.create_superuser("admin", password="admin")
    now = timezone.now()
    worker = Worker.objects.create(
        ident="web-1:4242:ab12cd34",
        host="web-1",
        pid=4242,
        queues="default,mail",
        started_at=now - dt.timedelta(hours=5),
        heartbeat=now,
        succeeded=1289,
        failed=3,
    )
    dead = Worker.objects.create(
        ident="web-2:977:5e6f7a8b",
        host="web-2",
        pid=977,
        queues="default",
        started_at=now - dt.timedelta(hours=2),
        heartbeat=now - dt.timedelta(minutes=7, seconds=12),
        succeeded=402,
        failed=0,
    )
    for i in range(3):
        record.delay(i)
    Task.objects.update(eta=now - dt.timedelta(seconds=75))
    record.apply_async(("reminder",), countdown=3600)
    running = noop.delay()
    Task.objects.filter(pk=running.id).update(
        state=Task.State.STARTED, worker=worker, started_at=now - dt.timedelta(seconds=83)
    )
    crashed = record.delay({"order": 7})
    Task.objects.filter(pk=crashed.id).update(
        state=Task.State.STARTED, worker=dead, started_at=now - dt.timedelta(minutes=8)
    )
    # Two failures of the same call, told apart by their ids; their worker has exited.
    failed = []
    for seconds in (3.25, 4.5):
        result = record_call.apply_async((42,), {"amount": Decimal("19.90")})
        Task.objects.filter(pk=result.id).update(
            state=Task.State.FAILED,
            started_at=now - dt.timedelta(seconds=seconds + 60),
            failed_at=now - dt.timedelta(seconds=60),
            retries=3,
            error=TRACEBACK,
            worker_ident="web-3:1312:c0ffee00",
        )
        failed.append(result.id)
    other = fail.apply_async(("card declined",))
    Task.objects.filter(pk=other.id).update(
        state=Task.State.FAILED,
        started_at=now - dt.timedelta(minutes=30, seconds=2),
        failed_at=now - dt.timedelta(minutes=30),
        error="Traceback (most recent call last):\n  ...\nValueError: card declined\n",
        worker=worker,
    )
    # Three hours of history: a busy afternoon, a burst of failures, a backlog that drains.
    end = history.minute_of(now)
    Minute.objects.bulk_create(
        Minute(
            queue=queue,
            minute=end - dt.timedelta(minutes=m),
            succeeded=int(share * (40 + 25 * math.sin(m / 17))),
            failed=(9 if 40 <= m < 46 else m % 3) if queue == "default" else 0,
            retried=(m % 5 == 0) * 4,
            pending=int(share * max(0, 300 - abs(m - 90) * 4)),
            oldest_pending_age=max(0.5, 120 - abs(m - 90) * 1.5),
        )
        for m in range(180)
        for queue, share in (("default", 0.7), ("mail", 0.3))
    )
    return {"failed": failed, "other": other.id, "running": running.id, "crashed": crashed.id}


def test_every_admin_page_in_a_browser(live_server, demo_rows, browser_page):
    page = browser_page
    base = f"{live_server.url}/admin"
    page.goto(f"{base}/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    # The index: the read-only lists say "View", never "Change".
    app = page.locator(".app-taskq")
    assert app.get_by_role("link", name="View").count() == 6
    assert app.get_by_role("link", name="Change").count() == 0
    shoot(page, "index")

    # The summary: counts that link to their lists, workers live or gone, the charts.
    page.goto(f"{base}/taskq/summary/")
    assert page.locator("td.taskq-failed").inner_text() == "3"
    workers = page.locator("tr.taskq-worker")
    assert workers.count() == 2
    live, gone = workers.nth(0).inner_text(), workers.nth(1).inner_text()
    assert "live" in live and "noop[" in live and "1 min " in live  # running for 1 min 23 s or so
    assert "gone" in gone and "record[" in gone
    assert page.locator("svg.taskq-chart").count() == 3
    assert page.locator("svg.taskq-chart polyline").count() == 5
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    shoot(page, "summary")
    page.locator("td.taskq-failed a").click()
    page.wait_for_url("**/failedtask/")

    # Failed: failed at and run time, the last error and the button, ids that differ.
    headers = page.locator("#result_list thead").inner_text().lower()
    for column in ["id", "failed at", "run time", "last error", "worker"]:
        assert column in headers, headers
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    text = page.inner_text("#result_list")
    assert "42, amount=Decimal('19.90')" in text and "__taskq__" not in text
    assert "3.25 s" in text and "4.50 s" in text  # run times, to the hundredth
    assert "web-3:1312 (gone)" in text
    assert "PaymentGatewayDown: payment gateway unreachable" in text
    shoot(page, "failed")
    fits_the_window(page)

    # A failed task's page: the call as Python reads it, times, retries, the button.
    first = demo_rows["failed"][0]
    page.goto(f"{base}/taskq/failedtask/{first}/change/")
    content = page.inner_text("#content")
    assert "record_call(42, amount=Decimal('19.90'))" in content
    assert "PaymentGatewayDown" in content and "most recent call last" in content
    assert "3 of 3" in content and "3.25 s" in content
    assert "web-3:1312:c0ffee00" in content and "version" not in content.lower()
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    shoot(page, "failed-detail")
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_selector(".messagelist")
    assert "Queued again, due now: 1 task." in page.inner_text(".messagelist")
    assert page.locator("#result_list tbody tr").count() == 2

    # Active: started at, running for, Cancel.
    page.goto(f"{base}/taskq/activetask/")
    headers = page.locator("#result_list thead").inner_text().lower()
    assert "started at" in headers and "running for" in headers
    assert "last error" not in headers
    row = page.locator("#result_list tbody tr")
    assert row.count() == 1 and "1 min " in row.inner_text()
    shoot(page, "active")
    fits_the_window(page)
    row.get_by_role("button", name="Cancel").click()
    page.wait_for_selector(".messagelist")
    assert "Asked to stop: 1 task." in page.inner_text(".messagelist")

    # Dirty: dirty since and the last heartbeat of the worker that went silent.
    page.goto(f"{base}/taskq/dirtytask/")
    headers = page.locator("#result_list thead").inner_text().lower()
    assert "dirty since" in headers and "last heartbeat" in headers
    text = page.inner_text("#result_list")
    assert "web-2:977" in text and "7 min " in text  # silent for 7 min 12 s and more
    shoot(page, "dirty")
    fits_the_window(page)

    # Pending: waiting for, no worker or error columns.
    page.goto(f"{base}/taskq/pendingtask/")
    headers = page.locator("#result_list thead").inner_text().lower()
    assert "waiting for" in headers and "worker" not in headers and "last error" not in headers
    assert "1 min " in page.inner_text("#result_list")  # waiting for 1 min 15 s and more
    assert "record_call" in page.inner_text("#result_list")  # the retried one
    shoot(page, "pending")
    fits_the_window(page)

    # Future: due in.
    page.goto(f"{base}/taskq/futuretask/")
    headers = page.locator("#result_list thead").inner_text().lower()
    assert "due in" in headers
    assert "59 min" in page.inner_text("#result_list")
    shoot(page, "future")
    fits_the_window(page)
    page.locator("#result_list").get_by_role("button", name="Run now").click()
    page.wait_for_selector(".messagelist")
    assert "Made due now: 1 task." in page.inner_text(".messagelist")
