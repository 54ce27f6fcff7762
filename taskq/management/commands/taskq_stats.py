"""``manage.py taskq_stats``: the metrics snapshot as a table, JSON or Prometheus text."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections, router
from django.utils import timezone

from taskq import metrics, prometheus, schedules
from taskq.backends import task_database
from taskq.backends.errors import ErrorKind, diagnose
from taskq.models import Task

#: Clear the screen and move the cursor home (ANSI), for --watch on a terminal.
CLEAR_SCREEN = "\033[H\033[2J"


def positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("must be a positive number of seconds")
    return seconds


def positive_minutes(value: str) -> int:
    minutes = int(value)
    if not 0 < minutes <= 24 * 60:
        raise ValueError("must be a number of minutes from 1 to 1440")
    return minutes


def printable(text: str) -> str:
    """Return ``text`` with backslashes and every control or format character escaped.

    Queue, task and worker names are anyone's text: written to a terminal as they are,
    an escape sequence in one could clear the screen or forge lines of the table.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        "\\\\" if char == "\\" else char if char.isprintable() else _escape(char) for char in text
    )


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    """Python's escape for one character: ``\\n``, ``\\x1b``, ``\\u202e``, ``\\U0010ffff``."""
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def table(headers: list[str], rows: list[list[Any]], text_columns: int = 1) -> list[str]:
    """Left-align the first ``text_columns`` columns, right-align the others (numbers).

    Every cell is escaped with ``printable``.
    """
    cells = [headers, *[[printable(str(cell)) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(
            cell.ljust(widths[i]) if i < text_columns else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in cells
    ]


def render_table(snap: Mapping[str, Any]) -> str:
    """The snapshot for a human: totals, per queue, per task name, live workers."""
    age = snap["oldest_pending_age"]
    lines = [
        f"taskq at {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}: "
        f"{snap['workers']} live worker(s), "
        + ("nothing pending" if age is None else f"oldest pending task waiting {age:.1f}s"),
        "",
    ]
    groups = list(metrics.GROUPS)
    lines += table(["state", *groups], [["all tasks", *(snap[g] for g in groups)]])
    for title, counts in (("queue", snap["queues"]), ("task", snap["tasks"])):
        if counts:
            lines.append("")
            lines += table(
                [title, *groups],
                [[key, *(by_state[g] for g in groups)] for key, by_state in sorted(counts.items())],
            )
    workers = snap.get("live_workers", [])
    if workers:
        lines.append("")
        lines += table(
            ["worker", "queues", "succeeded", "failed", "heartbeat"],
            [
                [
                    w["ident"],
                    ",".join(w["queues"]),
                    w["succeeded"],
                    w["failed"],
                    f"{w['heartbeat_age']:.1f}s ago",
                ]
                for w in workers
            ],
            text_columns=2,
        )
    dead, oldest = snap.get("dead_rows"), snap.get("oldest_transaction_age")
    if dead is not None or oldest is not None:  # PostgreSQL: metrics.table_health
        lines += [
            "",
            f"task table: {'?' if dead is None else dead} dead rows; oldest open transaction "
            + ("none" if oldest is None else f"{oldest:.1f}s"),
        ]
    return "\n".join(lines) + "\n"


def render_schedules(statuses: list[schedules.Status]) -> str:
    """``TASKQ_SCHEDULE``'s entries with their last and next slot ("" if none)."""
    if not statuses:
        return ""

    def moment(slot: datetime | None) -> str:
        return "never" if slot is None else f"{timezone.localtime(slot):%Y-%m-%d %H:%M:%S %Z}"

    rows = [
        [s.entry.name, s.entry.task, s.entry.when, moment(s.last_slot), moment(s.next_slot)]
        for s in statuses
    ]
    lines = table(["schedule", "task", "when", "last slot", "next slot"], rows, text_columns=5)
    return "\n" + "\n".join(lines) + "\n"


def render_history(entries: list[Mapping[str, Any]]) -> str:
    """The last minutes for a human, oldest first, in this machine's time zone."""
    rows = [
        [
            datetime.fromisoformat(entry["minute"]).astimezone().strftime("%H:%M"),
            entry["succeeded"],
            entry["failed"],
            entry["retried"],
            entry["expired"],
            "—" if entry["pending"] is None else entry["pending"],
            "—" if entry["oldest_pending_age"] is None else f"{entry['oldest_pending_age']:.1f}s",
        ]
        for entry in entries
    ]
    headers = ["minute", "succeeded", "failed", "retried", "expired", "pending", "oldest"]
    return "\n".join(table(headers, rows)) + "\n"


class Command(BaseCommand):
    help = (
        "Print taskq's metrics: task counts by state, queue and task name, the age of the "
        "oldest pending task, the live workers and the schedules. --watch redraws until Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="Print the snapshot as JSON.")
        output.add_argument(
            "--prometheus",
            action="store_true",
            help="Print Prometheus' text exposition format.",
        )
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Print again every --interval seconds until Ctrl-C.",
        )
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            default=2.0,
            metavar="SECONDS",
            help="Seconds between two readings with --watch (default: 2).",
        )
        parser.add_argument(
            "--history",
            type=positive_minutes,
            default=None,
            metavar="MINUTES",
            help="Print what the workers did in each of the last MINUTES minutes instead: "
            "tasks succeeded, failed, retried and expired, the backlog and its oldest age.",
        )
        parser.add_argument(
            "--database",
            default=None,
            help="Database alias of the task table (default: what DATABASE_ROUTERS say).",
        )

    def render(self, options: Mapping[str, Any]) -> str:
        if options["history"]:
            entries = metrics.history(options["history"], using=options["database"])
            if options["json"]:
                return json.dumps(entries, indent=2) + "\n"
            return render_history(entries)
        snap = metrics.snapshot(options["database"])
        if options["json"]:
            return json.dumps(snap, indent=2, sort_keys=True) + "\n"
        if options["prometheus"]:
            return prometheus.render(snap)
        return render_table(snap) + render_schedules(
            schedules.status(options["database"] or task_database())
        )

    def read(self, options: Mapping[str, Any], *, wait_out_outages: bool = False) -> str | None:
        """Return ``render``'s text; a database error is a one-line ``CommandError``.

        With ``wait_out_outages`` an outage or contention is reported on stderr and
        ``None`` returned, so that ``--watch`` goes on while the database is away.
        """
        try:
            return self.render(options)
        except DatabaseError as error:
            alias = options["database"] or router.db_for_read(Task)
            diagnosis = diagnose(connections[alias], error)
            if wait_out_outages and diagnosis.kind is not ErrorKind.PERMANENT:
                self.stderr.write(diagnosis.message)
                return None
            raise CommandError(diagnosis.message) from None

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["watch"]:
            self.stdout.write(self.read(options) or "", ending="")
            return
        clear = CLEAR_SCREEN if self.stdout.isatty() else ""
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C must stop the loop even if SIGINT was ignored by whoever started us
            # (a shell's background job inherits an ignored SIGINT).
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while True:
                text = self.read(options, wait_out_outages=True)
                if text is not None:
                    self.stdout.write(clear + text, ending="" if clear else "\n")
                    self.stdout.flush()
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            self.stdout.write("")  # end the line the terminal echoed ^C on
