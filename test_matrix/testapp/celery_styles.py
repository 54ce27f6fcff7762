"""Celery task definitions in the styles public Django projects write them (issue 11).

Written as a Celery project writes them, with only the import changed; the worker
processes in ``tests/test_celery_styles.py`` run them.
"""

import logging

from taskq.celery import SoftTimeLimitExceeded, shared_task
from test_matrix.testapp.tasks import _record

logger = logging.getLogger(__name__)


class RemoteBusy(Exception):
    pass


class InvoiceMissing(LookupError):
    pass


@shared_task(bind=True, max_retries=3, default_retry_delay=0)
def sync_account(self, account_id):
    """The most common style: a bound task that retries itself on a remote error."""
    try:
        if self.request.retries < 2:
            raise RemoteBusy(f"busy for {account_id}")
    except RemoteBusy as exc:
        logger.warning("retrying %s (%s)", self.request.id, exc)
        raise self.retry(exc=exc, countdown=0) from exc
    trace = (self.request.headers or {}).get("trace")
    _record(f"synced {account_id} after {self.request.retries} retries, trace {trace}")


@shared_task(ignore_result=True, queue="default")
def touch_last_seen(user_id):
    _record(f"seen {user_id}")


@shared_task(bind=True, soft_time_limit=50, time_limit=60, acks_late=True)
def build_report(self, report_id):
    try:
        _record(f"report {report_id} limits {self.request.timelimit}")
    except SoftTimeLimitExceeded:
        _record(f"report {report_id} cut short")
        raise


@shared_task(
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    retry_jitter=False,
    retry_kwargs={"max_retries": 2},
)
def push_webhook(url):
    _record(f"push {url}")
    raise ConnectionError(f"{url} refused")


@shared_task(throws=(InvoiceMissing,), track_started=True, serializer="json")
def send_invoice(invoice_id):
    raise InvoiceMissing(f"no invoice {invoice_id}")


@shared_task(bind=True, typing=True)
def notify(self, user_id, message, *, channel="mail"):
    _record(f"notify {user_id} {message} via {channel} as {self.name}")
