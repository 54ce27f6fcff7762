"""``manage.py taskq_queue pause NAME…``, ``resume NAME…`` and ``list``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from taskq import queues
from taskq.management.commands.taskq_stats import table
from taskq.queues import rate_text

COUNTS = ("pending", "future", "active", "failed")


class Command(BaseCommand):
    help = "Pause, resume or list the task queues."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        for action, what in (("pause", "pause"), ("resume", "resume")):
            sub = actions.add_parser(action, help=f"{what} the named queues")
            sub.add_argument("names", nargs="+", metavar="NAME")
        actions.add_parser("list", help="every queue, its counts, and whether it is paused")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            rows = [
                [
                    row["name"],
                    "paused" if row["paused"] else "running",
                    row["concurrency"] or "-",
                    rate_text(row["rate"]),
                    *(row[count] for count in COUNTS),
                ]
                for row in queues.overview()
            ]
            headers = ["queue", "state", "concurrency", "rate", *COUNTS]
            self.stdout.write("\n".join(table(headers, rows, text_columns=2)))
            return
        try:
            getattr(queues, action)(*options["names"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        done = "Paused" if action == "pause" else "Resumed"
        self.stdout.write(f"{done}: {', '.join(options['names'])}")
