"""Real-world Celery task definitions, run unchanged by real worker processes (issue 11).

The definitions (``test_matrix/testapp/celery_styles.py``) follow the styles found in
public Django projects that use Celery: bound tasks with ``self.retry``, ``ignore_result``,
time limits, ``autoretry_for`` with back-off, ``throws``.
"""

import pytest

from taskq.models import Task
from test_matrix.testapp import celery_styles

pytestmark = pytest.mark.processes


def burst(workers):
    done = workers.run("--burst")
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_celery_style_tasks_run_on_worker_processes(workers):
    celery_styles.sync_account.apply_async((7,), headers={"trace": "abc"})
    celery_styles.touch_last_seen.delay(3)
    celery_styles.build_report.apply_async((5,), soft_time_limit=20)
    celery_styles.notify.s("hello").delay(9, channel="sms")  # Celery: notify(9, "hello")
    celery_styles.send_invoice.delay(11)
    log = burst(workers)
    assert sorted(workers.records()) == [
        "notify 9 hello via sms as test_matrix.testapp.celery_styles.notify",
        "report 5 limits (60.0, 20.0)",
        "seen 3",
        "synced 7 after 2 retries, trace abc",
    ]
    failed = Task.objects.failed().get()
    assert failed.name.endswith("send_invoice") and "InvoiceMissing" in failed.error
    assert "retrying" in log
    # An expected exception (throws): logged at INFO, without a traceback, as Celery does.
    lines = log.splitlines()
    (at,) = [i for i, line in enumerate(lines) if "send_invoice" in line and "failed" in line]
    assert " INFO " in lines[at]
    assert at + 1 == len(lines) or not lines[at + 1].startswith("Traceback")


def test_autoretry_with_backoff_then_fails_with_the_original_error(workers):
    celery_styles.push_webhook.delay("https://example.com/hook")
    row = Task.objects.get()
    for _ in range(3):
        Task.objects.all().run_now()
        burst(workers)
    row.refresh_from_db()
    assert (row.state, row.retries) == (Task.State.FAILED, 2)
    assert row.error.rstrip().endswith("ConnectionError: https://example.com/hook refused")
    assert workers.records() == ["push https://example.com/hook"] * 3
