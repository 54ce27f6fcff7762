"""The metrics view: the Prometheus text of ``metrics.snapshot()``, for scrapers.

Readable by staff users (logged in through the admin) and by anyone presenting
``Authorization: Bearer <TASKQ_METRICS_TOKEN>``; a Prometheus server uses the token.
Task names and queue names can say a lot about a business, so nothing is public.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from taskq import metrics, prometheus
from taskq.conf import settings


def bearer_token(request: HttpRequest) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(given: str | None) -> bool:
    """Compare in constant time; no token configured means no token is accepted."""
    expected = settings.METRICS_TOKEN
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus text; 401 without valid credentials, 403 for a user who
    may not view tasks (staff with ``taskq.view_task``, as for the admin's summary)."""
    user = getattr(request, "user", None)  # None without AuthenticationMiddleware
    allowed = (
        user is not None and user.is_active and user.is_staff and user.has_perm("taskq.view_task")
    )
    if not (allowed or token_matches(bearer_token(request))):
        if user is not None and user.is_authenticated:
            return HttpResponse(
                "Staff with taskq.view_task only.\n", status=403, content_type="text/plain"
            )
        response = HttpResponse(
            "Log in as staff or send Authorization: Bearer <TASKQ_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="taskq"'
        return response
    return HttpResponse(prometheus.render(metrics.snapshot()), content_type=prometheus.CONTENT_TYPE)
