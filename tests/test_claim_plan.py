"""The claim reads the claim index, whatever the optimizer's statistics say.

A queue table churns: every task is one dead row until a vacuum. The statistics an
``ANALYZE`` takes while two tasks wait among many dead rows say "two rows" long after
thousands are queued again; PostgreSQL 15 then planned the claim as a bitmap scan of a
small index and a sort of every queued row. The tests put the table in that state (many
dead rows, ``ANALYZE`` with two queued, then thousands queued) and read the plans of the
claim and of the idle worker's next-ETA query. Databases whose claim plan cannot follow
statistics (``Engine.claim_plan_follows_statistics``: SQLite names its index) are skipped.
PostgreSQL takes no hint: its claim and next-ETA query run in functions whose planner
settings leave the index read in order as the only plan (``claim_function_sql``).
"""

import datetime as dt

import pytest
from django.db import connection, transaction
from django.utils import timezone

from taskq.backends import engine_for, get_strategy
from taskq.enqueue import Call, enqueue_many
from taskq.models import CLAIM_INDEX, Task

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "test_matrix.testapp.tasks.noop"
#: Rows that become dead, the queued rows the statistics see, the queue refilled after.
DEAD, SEEN, QUEUED = 50_000, 2, 5_000


@pytest.fixture
def engine():
    engine = engine_for(connection)
    if not engine.claim_plan_follows_statistics:
        pytest.skip(f"{type(engine).__name__}: the claim's plan does not follow statistics")
    return engine


def queue(count: int, eta: dt.datetime, queue: str = "default") -> None:
    calls = [
        Call(NAME, args=[i], eta=eta + dt.timedelta(microseconds=i), queue=queue)
        for i in range(count)
    ]
    with transaction.atomic():
        enqueue_many(calls)


@pytest.fixture
def stale_statistics(engine):
    """Many dead rows, statistics taken with ``SEEN`` queued, then ``QUEUED`` queued."""
    past = timezone.now() - dt.timedelta(days=1)
    queue(DEAD + SEEN, past)
    keep = list(Task.objects.order_by("-id").values_list("id", flat=True)[:SEEN])
    Task.objects.exclude(id__in=keep).delete()
    with connection.cursor() as cursor:
        cursor.execute(engine.analyze_sql(Task._meta.db_table))
        if cursor.description:
            cursor.fetchall()  # MariaDB answers ANALYZE TABLE with a result set
    queue(QUEUED, past + dt.timedelta(hours=1))
    queue(QUEUED // 10, past, queue="mail")
    return engine


def assert_reads_the_claim_index_in_order(plan: str) -> None:
    assert CLAIM_INDEX in plan, plan
    for forbidden in ("Seq Scan", "Bitmap", "Sort", "filesort"):
        assert forbidden not in plan, plan


def test_the_claim_reads_the_claim_index_with_stale_statistics(stale_statistics):
    plan = stale_statistics.claim_plan(["default"])
    print(plan)
    assert_reads_the_claim_index_in_order(plan)


def test_a_claim_of_several_queues_reads_the_claim_index(stale_statistics):
    """Several queues: the due rows of those queues, sorted (an index is read in order
    for one queue at a time), but through the claim index, not every queued row."""
    plan = stale_statistics.claim_plan(["default", "mail"])
    print(plan)
    assert "Seq Scan" not in plan and "Bitmap" not in plan, plan
    if CLAIM_INDEX not in plan:
        pytest.xfail(
            "PostgreSQL sorts the due rows of several queues and may read them through "
            f"another index: {plan}"
        )


def test_the_claim_still_claims_in_order_with_stale_statistics(stale_statistics):
    from taskq.models import Worker

    now = timezone.now()
    row = Worker.objects.create(
        ident="plan:1", host="t", pid=1, queues="default", started_at=now, heartbeat=now
    )
    first = Task.objects.due(["default"]).order_by("-priority", "eta", "id").first()
    claim = get_strategy().claim(["default"], row.pk)
    assert claim is not None and claim.id == first.id


def test_the_next_eta_query_reads_an_index_in_eta_order(stale_statistics):
    """The idle worker's query: the ``(state, eta)`` index, in ETA order (the window
    keeps the read short), with no sort of every queued row."""
    future = timezone.now() + dt.timedelta(seconds=30)
    queue(QUEUED, future)
    plan = stale_statistics.next_due_plan(["default"], 60.0)
    if plan is None:
        plan = get_strategy().next_due_query(["default"], 60.0).explain()
    print(plan)
    assert "Seq Scan" not in plan and "Sort" not in plan and "filesort" not in plan, plan
    assert "ALL" not in plan.split(), plan  # MariaDB's full table scan


def test_the_installed_claim_functions_are_the_claim_definition(engine):
    """Where the claim runs in functions of the database (PostgreSQL), the installed
    ones are what the code renders now: a change to the claim definition without a
    migration that installs it again fails here."""
    expected = engine.claim_functions_sql()
    if not expected:
        pytest.skip(f"{type(engine).__name__} pins its plan without functions")
    installed = engine.installed_claim_functions_sql()
    # The database's own text of the rendered functions: installed, read, rolled back.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(expected)
        rendered = engine.installed_claim_functions_sql()
        transaction.set_rollback(True)
    assert installed == rendered
