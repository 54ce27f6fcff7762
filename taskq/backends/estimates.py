"""Row-count estimates from the query planner, for pages that must not count 1M rows.

An exact ``COUNT(*)`` reads every matching row (or index entry); the planner's estimate
costs one ``EXPLAIN``. Engines whose database gives one say so (``can_estimate_count``)
and read it; elsewhere the caller counts exactly.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """Return the planner's estimate of ``queryset.count()``, or ``None`` if it has none."""
    from taskq.backends import engine_for

    return engine_for(connections[queryset.db]).estimated_count(queryset)
