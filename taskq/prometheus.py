"""``metrics.snapshot()`` in Prometheus' text exposition format (version 0.0.4).

Written by hand so that taskq needs no ``prometheus_client`` at run time: the format is
a few lines of text, and the only subtle part, escaping label values, is below. Every
metric is a fresh reading of the database at scrape time, so task counts are gauges;
only the per-worker outcome counts, which grow over a worker process's life and start
again from zero with the next process (a new ``worker`` label), are counters.

Metrics (every name starts with ``taskq_``):

- ``taskq_tasks{state}``: tasks by state (``failed``, ``dirty``, ``active``,
  ``pending``, ``future``), all five always present.
- ``taskq_tasks_by_queue{queue, state}``, ``taskq_tasks_by_name{task, state}``: the same
  per queue and per task name, for queues and names that have rows.
- ``taskq_queue_paused{queue}``: 1 for a paused queue, 0 for the other queues that
  have rows.
- ``taskq_oldest_pending_age_seconds``: how long the oldest due task has waited since
  its ETA; 0 when nothing is pending.
- ``taskq_workers``: live worker processes (heartbeat younger than TASKQ_DIRTY_AFTER).
- ``taskq_worker_tasks_succeeded_total{worker, host}``,
  ``taskq_worker_tasks_failed_total{worker, host}``: tasks each live worker finished
  since it started; ``taskq_worker_start_time_seconds{worker, host}``: when it started
  (Unix time).
- ``taskq_table_dead_rows``: dead rows in the task table, by the server's statistics, and
  ``taskq_oldest_transaction_age_seconds``: how long the oldest open transaction that
  holds back their removal has run (PostgreSQL only: absent elsewhere, or when the role
  cannot see it; ``metrics.table_health``). Dead rows that keep growing while that age
  grows: a session idle in transaction is slowing every claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from taskq.metrics import GROUPS

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[Mapping[str, str], float]


def escape_label_value(value: str) -> str:
    """Escape a label value as the exposition format requires: ``\\``, ``"``, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape HELP text: backslash and newline (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers without a fraction, other numbers as Python's shortest round trip."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """Return the HELP and TYPE lines and one line per sample of one metric family."""
    lines = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        if labels:
            pairs = ",".join(f'{key}="{escape_label_value(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{pairs}}} {format_value(value)}")
        else:
            lines.append(f"{name} {format_value(value)}")
    return lines


def _by(label: str, counts: Mapping[str, Mapping[str, int]]) -> list[Sample]:
    return [
        ({label: key, "state": state}, by_state[state])
        for key, by_state in sorted(counts.items())
        for state in GROUPS
    ]


def _paused(snap: Mapping[str, Any]) -> list[Sample]:
    paused = set(snap.get("paused_queues", []))
    return [
        ({"queue": queue}, int(queue in paused)) for queue in sorted({*snap["queues"], *paused})
    ]


def render(snap: Mapping[str, Any]) -> str:
    """Return the text a Prometheus server scrapes, for a ``metrics.snapshot()``."""
    workers = snap.get("live_workers", [])

    def per_worker(value: Any) -> list[Sample]:
        return [({"worker": w["ident"], "host": w["host"]}, value(w)) for w in workers]

    lines = [
        *family(
            "taskq_tasks",
            "gauge",
            "Tasks in the table by state: failed, dirty, active, pending (due), future.",
            [({"state": state}, snap[state]) for state in GROUPS],
        ),
        *family(
            "taskq_tasks_by_queue",
            "gauge",
            "Tasks in the table by queue and state.",
            _by("queue", snap["queues"]),
        ),
        *family(
            "taskq_tasks_by_name",
            "gauge",
            "Tasks in the table by task name and state.",
            _by("task", snap["tasks"]),
        ),
        *family(
            "taskq_queue_paused",
            "gauge",
            "1 if no worker starts tasks of the queue (taskq_queue pause), else 0.",
            _paused(snap),
        ),
        *family(
            "taskq_oldest_pending_age_seconds",
            "gauge",
            "Seconds the oldest due task has waited since its ETA; 0 when none is due.",
            [({}, snap["oldest_pending_age"] or 0)],
        ),
        *family(
            "taskq_workers",
            "gauge",
            "Worker processes whose heartbeat is younger than TASKQ_DIRTY_AFTER.",
            [({}, snap["workers"])],
        ),
        *family(
            "taskq_worker_tasks_succeeded_total",
            "counter",
            "Tasks a live worker process ran successfully since it started.",
            per_worker(lambda w: w["succeeded"]),
        ),
        *family(
            "taskq_worker_tasks_failed_total",
            "counter",
            "Tasks a live worker process failed since it started.",
            per_worker(lambda w: w["failed"]),
        ),
        *family(
            "taskq_worker_start_time_seconds",
            "gauge",
            "Start time of a live worker process, in seconds since the Unix epoch.",
            per_worker(lambda w: datetime.fromisoformat(w["started_at"]).timestamp()),
        ),
    ]
    for key, name, help_text in (
        ("dead_rows", "taskq_table_dead_rows", "Dead rows in the task table (server statistics)."),
        (
            "oldest_transaction_age",
            "taskq_oldest_transaction_age_seconds",
            "Seconds the oldest open transaction holding back the removal of dead rows has run.",
        ),
    ):
        if snap.get(key) is not None:
            lines += family(name, "gauge", help_text, [({}, snap[key])])
    return "\n".join(lines) + "\n"
