"""Admin page timings on the claim-at-depth table (1 000 000 due, 1 000 000 future and
100 000 failed rows; ``--quick``: a tenth).

Each page is fetched through Django's test client, in this process, as a superuser:
middleware, the ModelAdmin, its queries and template rendering, but no network. One
warm-up fetch, then the median of three. The target (issue 3) is under 1 s per page.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

PAGES = {
    "summary": "/admin/taskq/summary/",
    "failed": "/admin/taskq/failedtask/",
    "dirty": "/admin/taskq/dirtytask/",
    "active": "/admin/taskq/activetask/",
    "pending": "/admin/taskq/pendingtask/",
    "future": "/admin/taskq/futuretask/",
    "pending, page 100": "/admin/taskq/pendingtask/?p=100",
    "future, queue filter": "/admin/taskq/futuretask/?queue=mail",
    "failed, name search": "/admin/taskq/failedtask/?q=bench",
}
FETCHES = 3


def measure() -> dict[str, Any]:
    """Return the median seconds of each admin page, and the slowest."""
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    seconds = {}
    for name, url in PAGES.items():
        response = client.get(url)  # warm-up
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        samples = []
        for _ in range(FETCHES):
            start = time.perf_counter()
            client.get(url)
            samples.append(time.perf_counter() - start)
        seconds[name] = round(statistics.median(samples), 3)
    return {"seconds": seconds, "slowest": max(seconds.values())}
