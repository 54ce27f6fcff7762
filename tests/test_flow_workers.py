"""Flow control with real worker processes, on every database: a pause seen by busy
workers, a concurrency limit across four workers (and a slot freed by a killed worker
once it is dirty), a rate limit across three workers.

Every time compared is the database's clock, recorded by the tasks themselves
(``testapp.tasks.flow_step``: the claim's ``started_at``, and the time just before the
task returns), which is the clock the promises are made in. The measurements are
printed (``pytest -s``) for the report.
"""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta

from taskq import queues
from taskq.clock import DatabaseNow
from taskq.conf import settings
from taskq.models import Queue, Task, Worker
from test_matrix.testapp.tasks import flow_step


def db_now() -> datetime:
    return Queue.objects.annotate(now=DatabaseNow()).values_list("now", flat=True).first()


def marks(records: list[str], kind: str) -> dict[str, datetime]:
    """``{key: time}`` of the ``start`` or ``end`` lines ``flow_step`` recorded."""
    found = {}
    for line in records:
        what, key, moment = line.rsplit(" ", 2)
        if what == kind:
            found[key] = datetime.fromisoformat(moment)
    return found


def max_overlap(starts: dict[str, datetime], ends: dict[str, datetime]) -> int:
    """The most tasks running at one moment, from their recorded starts and ends."""
    events = sorted(
        [(moment, 1) for moment in starts.values()] + [(moment, -1) for moment in ends.values()],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same time
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def limits(**queues_limits: dict[str, object]) -> dict[str, str]:
    return {"TASKQ_TEST_QUEUES": json.dumps(queues_limits)}


def test_a_pause_is_seen_by_busy_workers_at_once(workers, wait_until):
    for i in range(40):
        flow_step.apply_async((i, 0.05), queue="flow")
    for _ in range(2):
        workers.start("-Q", "flow,other")
    wait_until(lambda: len(marks(workers.records(), "start")) >= 6, timeout=60)
    queues.pause("flow")
    paused_at = db_now()  # after pause() returned
    flow_step.apply_async(("late", 0), queue="flow")
    # Busy workers keep serving their other queues while "flow" is paused.
    flow_step.apply_async(("other", 0), queue="other")
    wait_until(lambda: "other" in marks(workers.records(), "start"), timeout=60)
    during = len(marks(workers.records(), "start"))
    resumed_at = db_now()
    queues.resume("flow")
    wait_until(lambda: len(marks(workers.records(), "end")) == 42, timeout=120)

    starts = marks(workers.records(), "start")
    del starts["other"]
    inside = [key for key, moment in starts.items() if paused_at < moment < resumed_at]
    before = [key for key, moment in starts.items() if moment <= paused_at]
    print(
        f"\npause: {len(before)} started before pause() returned, {len(inside)} while paused, "
        f"{len(starts) - len(before) - len(inside)} after resume; {during} starts seen paused"
    )
    assert inside == []
    assert 6 <= len(before) < 40  # the pause fell among the queue's tasks
    assert len(starts) == 41  # resume let every one of them run, the late one too


def test_four_workers_never_run_more_than_the_concurrency_limit(workers, wait_until):
    for i in range(16):
        flow_step.apply_async((i, 0.3), queue="flow")
    env = limits(flow={"concurrency": 2})
    for _ in range(4):
        workers.start("-Q", "flow", **env)
    active_seen = set()

    def all_ended() -> bool:
        active_seen.add(Task.objects.active().filter(queue="flow").count())
        return len(marks(workers.records(), "end")) == 16

    wait_until(all_ended, timeout=120)
    records = workers.records()
    starts, ends = marks(records, "start"), marks(records, "end")
    peak = max_overlap(starts, ends)
    print(
        f"\nconcurrency 2, 4 workers: max overlap {peak}; active counts seen {sorted(active_seen)}"
    )
    assert peak == 2  # never more, and the limit is no stricter than asked
    assert max(active_seen) <= 2


def test_a_killed_worker_holds_its_slot_until_it_is_dirty(workers, wait_until):
    env = limits(solo={"concurrency": 1})
    flow_step.apply_async(("long", 60), queue="solo")
    holder = workers.start("-Q", "solo", **env)
    wait_until(lambda: "long" in marks(workers.records(), "start"), timeout=60)
    for i in range(3):
        flow_step.apply_async((i, 0), queue="solo")
    waiter = workers.start("-Q", "solo", **env)
    workers.wait_until_registered(waiter)

    # The slot is held: the waiter, asking for a second and more, claims nothing.
    def waited() -> bool:
        row = Worker.objects.get(pid=waiter.pid)
        return row.heartbeat >= row.started_at + timedelta(seconds=1)

    wait_until(waited, timeout=60)
    assert Task.objects.filter(queue="solo", state=Task.State.QUEUED).count() == 3
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    last_beat = Worker.objects.get(pid=holder.pid).heartbeat
    wait_until(lambda: len(marks(workers.records(), "end")) == 3, timeout=60)

    starts = marks(workers.records(), "start")
    dirty_from = last_beat + timedelta(seconds=settings.DIRTY_AFTER)
    first = min(starts[str(i)] for i in range(3))
    print(
        f"\ndirty holder: first start {(first - last_beat).total_seconds():.2f}s after the "
        f"killed worker's last heartbeat (dirty after {settings.DIRTY_AFTER:g}s)"
    )
    assert first >= dirty_from
    assert Task.objects.dirty().filter(queue="solo").count() == 1  # the killed one's task


def test_three_workers_never_start_more_than_the_rate(workers, wait_until):
    for i in range(15):
        flow_step.apply_async((i, 0), queue="flow")
    env = limits(flow={"rate": "5/s"})
    for _ in range(3):
        workers.start("-Q", "flow", **env)
    wait_until(lambda: len(marks(workers.records(), "end")) == 15, timeout=120)

    starts = sorted(marks(workers.records(), "start").values())
    # No half-open one-second window holds more than five starts: any six span >= 1 s.
    spans = [starts[i + 5] - starts[i] for i in range(len(starts) - 5)]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    most = max(
        sum(1 for moment in starts if start <= moment < start + timedelta(seconds=1))
        for start in starts
    )
    print(
        f"\nrate 5/s, 3 workers: most starts in a 1 s window {most}; shortest gap "
        f"{min(gaps).total_seconds() * 1000:.1f} ms; shortest span of six "
        f"{min(spans).total_seconds():.3f}s"
    )
    assert min(spans) >= timedelta(seconds=1)
    assert most == 5
