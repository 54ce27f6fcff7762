"""Soak: 100 000 tasks through two workers. Opt-in (TASKQ_SOAK=1): it takes minutes.

TASKQ_SOAK=1 nox -s "tests(database='postgresql', django='5.2')" -- tests/test_soak.py -s
"""

import os
import signal
import time

import pytest

from taskq.enqueue import Call, enqueue_many
from taskq.models import Task

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

TASKS = int(os.environ.get("TASKQ_SOAK_TASKS", "100000"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.environ.get("TASKQ_SOAK"), reason="set TASKQ_SOAK=1 to soak")
def test_soak(workers):
    for start in range(0, TASKS, 10_000):
        enqueue_many(
            Call("test_matrix.testapp.tasks.record", args=[key])
            for key in range(start, min(start + 10_000, TASKS))
        )
    started = time.monotonic()
    running = [workers.start("-l", "WARNING", TASKQ_TEST_DEBUG="1") for _ in range(2)]
    early = None
    while Task.objects.queued().exists():
        if early is None and len(workers.records()) >= TASKS // 10:
            early = [rss_kib(p.pid) for p in running]
        time.sleep(1)
    late = [rss_kib(p.pid) for p in running]
    elapsed = time.monotonic() - started
    for process in running:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    keys = [int(line) for line in workers.records()]
    logs = "".join(p.log.read_text() for p in running)
    print(
        f"\nsoak: {TASKS} tasks in {elapsed:.0f}s ({TASKS / elapsed:.0f}/s), "
        f"RSS KiB after 10%: {early}, at the end: {late}"
    )
    assert sorted(keys) == list(range(TASKS)), "lost or duplicated tasks"
    assert Task.objects.count() == 0
    assert "ERROR" not in logs and "Traceback" not in logs, logs[-2000:]
    for before, after in zip(early, late, strict=True):
        assert after <= before * 1.10, f"worker RSS grew from {before} to {after} KiB"
