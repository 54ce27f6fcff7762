"""A rate-limited task, imported only by the workers that name this module in
TASKQ_TEST_IMPORTS (``tests/test_rate_limit_workers.py``): every other worker of the
suite keeps the claim without rate-limited tasks."""

from taskq.celery import shared_task
from test_matrix.testapp.tasks import flow_step


@shared_task(name="testapp.rated_step", rate_limit="5/s")
def rated_step(key, seconds=0):
    """``flow_step`` (its start and end by the database's clock), five starts a second."""
    flow_step(key, seconds)
