"""A task's ``rate_limit`` with real worker processes, on every database: three workers
never start more of it than the rate allows, and the other tasks of its queue are not
held back meanwhile.

As in ``tests/test_flow_workers.py``, every time compared is the database's clock as
the tasks recorded it (the claim's ``started_at``, and the time before the task
returns). The measurements are printed (``pytest -s``) for the report.
"""

from __future__ import annotations

from datetime import timedelta

from taskq.enqueue import Call, enqueue
from tests.test_flow_workers import marks

#: Registered by the workers only (TASKQ_TEST_IMPORTS): this process claims nothing.
RATED = "testapp.rated_step"
ENV = {"TASKQ_TEST_IMPORTS": "test_matrix.testapp.rated_tasks"}


def test_three_workers_never_start_a_rate_limited_task_faster_than_its_rate(
    workers, wait_until, strategy_cls
):
    # The limited task first in the queue's order, the others behind it.
    for i in range(15):
        enqueue(Call(RATED, args=(f"r{i}", 0), queue="mixed"))
    for i in range(30):
        enqueue(Call("test_matrix.testapp.tasks.flow_step", args=(f"u{i}", 0.02), queue="mixed"))
    for _ in range(3):
        workers.start("-Q", "mixed", strategy=strategy_cls, **ENV)
    wait_until(lambda: len(marks(workers.records(), "end")) == 45, timeout=120)

    records = workers.records()
    starts, ends = marks(records, "start"), marks(records, "end")
    rated = sorted(moment for key, moment in starts.items() if key.startswith("r"))
    rated_ends = [moment for key, moment in ends.items() if key.startswith("r")]
    others_end = max(moment for key, moment in ends.items() if key.startswith("u"))
    # No half-open one-second window holds more than five starts: any six span >= 1 s.
    spans = [rated[i + 5] - rated[i] for i in range(len(rated) - 5)]
    most = max(
        sum(1 for moment in rated if start <= moment < start + timedelta(seconds=1))
        for start in rated
    )
    gaps = [b - a for a, b in zip(rated, rated[1:], strict=False)]
    before = sum(1 for moment in rated if moment < others_end)
    print(
        f"\n{strategy_cls.__name__}, rate_limit 5/s, 3 workers: most starts in a 1 s "
        f"window {most}; shortest gap "
        f"{min(gaps).total_seconds() * 1000:.1f} ms; shortest span of six "
        f"{min(spans).total_seconds():.3f}s; the 30 unlimited tasks done "
        f"{(max(rated_ends) - others_end).total_seconds():.2f}s before the last limited one "
        f"ended, {before} of 15 limited starts before then"
    )
    assert len(rated) == 15 and len(starts) == 45  # each ran once
    assert min(spans) >= timedelta(seconds=1)
    assert most <= 5
    # The others were not held back behind the limited ones.
    assert others_end < max(rated_ends)
    assert before < 15
