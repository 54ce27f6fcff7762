"""The SQL a taskq worker sends per no-op task on queue ``default``, rendered by taskq.

The bare loop (``bench/bare.py``) sends these statements through the bare driver, so its
floor is taskq's own SQL (the claim, its pause test and held-back names, PostgreSQL's
claim function, MariaDB's forced index) with no framework around it. Rendered in an
agent, where Django is set up, once per database and run:

- PostgreSQL: ``step``, the delete of the task that just succeeded and the next claim in
  one statement; parameters: id, version, worker id, the queues, the held-back names.
- MariaDB: ``delete``, the claim's ``select`` (with ``select_params``) and ``take``, the
  fenced update, inside ``START TRANSACTION`` … ``COMMIT``.
- SQLite: ``delete`` and ``claim``, inside ``BEGIN IMMEDIATE`` … ``COMMIT``; the claim's
  parameters: worker id, then the queue twice.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection

from bench.target import Target
from taskq.backends.base import delete_claimed_sql

QUEUES = ("default",)


def measure(target: Target) -> dict[str, Any]:
    quote = connection.ops.quote_name
    if connection.vendor == "postgresql":
        from taskq.backends.postgresql import _complete_and_claim_sql

        return {"step": _complete_and_claim_sql(quote)}
    if connection.vendor == "mysql":
        from taskq.backends.mysql import MySQLStrategy

        select, params, take = MySQLStrategy(DEFAULT_DB_ALIAS).compiled(QUEUES)
        return {
            "delete": delete_claimed_sql(quote),
            "select": select,
            "select_params": [int(p) if isinstance(p, bool) else p for p in params],
            "take": take,
        }
    from taskq.backends.sqlite import _driver_sql

    delete, claim = _driver_sql(quote, len(QUEUES), settings.USE_TZ, 0)
    return {"delete": delete, "claim": claim}
