"""``manage.py taskq_worker``: run one single-threaded worker process."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from taskq import logs
from taskq.conf import settings
from taskq.names import check_queues

LOG_FORMAT = logs.TEXT_FORMAT


def queue_list(value: str) -> list[str]:
    """Split ``-Q``; the names are checked in ``handle``, where a bad one can say why."""
    return [queue.strip() for queue in value.split(",")]


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


class Command(BaseCommand):
    help = (
        "Run a taskq worker: claim due tasks one at a time and run them. "
        "SIGTERM or SIGINT finishes the current task and exits; a second signal exits "
        "at once. Start more processes to run more tasks at once."
    )
    # Run in handle(): some of Django's checks connect to the database, and a worker
    # started while its database is down must wait for it, not die in a check.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-Q",
            "--queues",
            type=queue_list,
            default=None,
            help="Comma-separated queues to take tasks from (default: TASKQ_DEFAULT_QUEUE, "
            "'default' unless set).",
        )
        parser.add_argument("--burst", action="store_true", help="Exit as soon as no task is due.")
        parser.add_argument(
            "--max-tasks",
            type=positive_int,
            default=None,
            metavar="N",
            help="Exit after running N tasks.",
        )
        parser.add_argument(
            "--database",
            default=None,
            help="Database alias of the task table (default: what DATABASE_ROUTERS say).",
        )
        parser.add_argument(
            "-l",
            "--loglevel",
            default="INFO",
            choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            type=str.upper,
            help="Level of the taskq log lines (default: INFO); DEBUG adds claims, writes "
            "and waits.",
        )
        parser.add_argument(
            "--log-format",
            default="text",
            choices=logs.LOG_FORMATS,
            help="text (default), or json: one JSON object a line with the task's fields "
            "(needs the json-logs extra). Applies when the project's LOGGING leaves the "
            "root and taskq loggers without handlers.",
        )
        parser.add_argument(
            "--no-task-logs",
            action="store_true",
            help="Write only taskq's own lines, not the tasks' (which are written when the "
            "project's LOGGING configures no handler at all).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.exceptions import ImproperlyConfigured

        from taskq.worker import Worker

        try:
            # Checked as enqueue checks a queue name: a name no task can have is a typo.
            queues = check_queues(options["queues"] or [settings.DEFAULT_QUEUE])
        except ValueError as error:
            raise CommandError(f"-Q/--queues: {error}") from None
        logger = logging.getLogger("taskq")
        try:
            where = logs.configure(
                options["loglevel"], options["log_format"], not options["no_task_logs"]
            )
        except logs.JsonLogsUnavailable as error:
            raise CommandError(str(error)) from error
        if where == "the project's LOGGING" and options["log_format"] != "text":
            logger.warning(
                "--log-format %s ignored: the project's LOGGING routes the log lines "
                "(set a formatter there, e.g. pythonjsonlogger.json.JsonFormatter)",
                options["log_format"],
            )
        if not options.get("skip_checks"):
            try:
                self.check()
            except (OperationalError, InterfaceError) as error:
                logger.warning("System checks skipped: the database is unavailable (%s)", error)
        try:
            worker = Worker(
                queues,
                burst=options["burst"],
                max_tasks=options["max_tasks"],
                using=options["database"],
            )
            exit_code = worker.run()
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        if exit_code:
            sys.exit(exit_code)
