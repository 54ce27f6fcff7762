"""The demo's tasks: one that succeeds, one that always fails, one for later.

Every installed app's ``tasks`` module is imported by the worker, so these are the
only functions a ``taskq_worker`` of this project will run.
"""

import logging
from datetime import date
from decimal import Decimal

from taskq.celery import shared_task

logger = logging.getLogger(__name__)


class PaymentGatewayDown(ConnectionError):
    """The (imaginary) payment provider did not answer."""


@shared_task
def send_invoice(invoice_id: int, amount: Decimal, due: date) -> None:
    """Pretend to e-mail an invoice; ``Decimal`` and ``date`` arrive as they were sent."""
    logger.info("Invoice #%d for %s EUR, due %s, sent", invoice_id, amount, due.isoformat())


# Retried twice, then failed with the original traceback. The countdown is 0 because the
# demo's workers run with --burst and exit as soon as nothing is due: a retry scheduled
# later would still be waiting in "future" when they stop.
@shared_task(autoretry_for=(PaymentGatewayDown,), retry_kwargs={"max_retries": 2, "countdown": 0})
def charge_card(order_id: int) -> None:
    """Always fail, to show a failed task in the admin (the dead-letter queue)."""
    raise PaymentGatewayDown(f"payment gateway unreachable while charging order {order_id}")


@shared_task
def send_reminder(customer: str) -> None:
    """Remind a customer; the demo schedules it an hour ahead, so it stays in "future"."""
    logger.info("Reminder sent to %s", customer)
