"""Row-count estimates from the query planner, for pages that must not count 1M rows.

An exact ``COUNT(*)`` reads every matching row (or index entry); the planner's estimate
costs one ``EXPLAIN``. PostgreSQL and MySQL/MariaDB give one; elsewhere the caller
counts exactly.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connections
from django.db.models import QuerySet


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """Return the planner's estimate of ``queryset.count()``, or ``None`` if it has none."""
    connection = connections[queryset.db]
    if connection.vendor not in ("postgresql", "mysql"):
        return None
    sql, params = queryset.order_by().query.get_compiler(using=queryset.db).as_sql()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return int(plan[0]["Plan"]["Plan Rows"])
        cursor.execute(f"EXPLAIN {sql}", params)
        columns = [column[0].lower() for column in cursor.description]
        first = cursor.fetchone()
        rows = first[columns.index("rows")] if first else None
        # MariaDB may append the filtered share: "1200 (40%)".
        return None if rows is None else int(str(rows).split()[0])
