"""``manage.py taskq_enqueue NAME``: queue one call of a registered task, for cron.

A crontab line or a Kubernetes CronJob runs this instead of a scheduler process: the
schedule lives where operators already look, and the task runs on the normal workers.
Only registered names are accepted (the same modules a worker imports are imported
first), and every input is checked before anything is written; any problem exits
non-zero with a message that says what was wrong.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.conf import settings as django_settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections, router
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from taskq import registry
from taskq.backends.errors import describe
from taskq.models import Task
from taskq.results import EagerResult

#: What a bad input raises: taskq's checks, and Django's for its own tasks.
INPUT_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError)
try:
    from django.tasks.exceptions import InvalidTask
except ImportError:  # Django < 6.0
    pass
else:
    INPUT_ERRORS += (InvalidTask,)


def json_value(option: str, text: str, kind: type) -> Any:
    """Parse ``text`` as JSON of type ``kind`` (list or dict), or raise CommandError."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{option} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, kind):
        expected = "a JSON array, e.g. '[1, \"a\"]'" if kind is list else "a JSON object"
        raise CommandError(f"{option} must be {expected}, not {text!r}")
    return value


def moment(text: str) -> datetime:
    """Parse an ISO 8601 date and time; without an offset it is in TIME_ZONE."""
    try:
        value = parse_datetime(text)
    except ValueError:
        value = None
    if value is None:
        raise CommandError(f"--eta must be an ISO 8601 date and time, not {text!r}")
    if django_settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


class Command(BaseCommand):
    help = (
        "Queue one call of a registered task (for crontab or Kubernetes CronJobs). "
        "Arguments are JSON: --args '[1, \"a\"]' --kwargs '{\"resend\": true}'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Registered task name, e.g. shop.tasks.send_invoice.")
        # Django's own command machinery uses the names "args" and "kwargs".
        parser.add_argument(
            "--args", dest="call_args", default="[]", help="Positional arguments, a JSON array."
        )
        parser.add_argument(
            "--kwargs", dest="call_kwargs", default="{}", help="Keyword arguments, a JSON object."
        )
        parser.add_argument(
            "--countdown", type=float, default=None, metavar="S", help="Run in S seconds."
        )
        parser.add_argument(
            "--eta",
            default=None,
            help="Run at this ISO 8601 time (no offset: TIME_ZONE). --countdown wins.",
        )
        parser.add_argument("--queue", default=None, help="Queue (default: the task's).")
        parser.add_argument(
            "--priority", type=int, default=None, help="Priority (default: the task's)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        call_args = json_value("--args", options["call_args"], list)
        call_kwargs = json_value("--kwargs", options["call_kwargs"], dict)
        eta = None if options["eta"] is None else moment(options["eta"])
        registry.autodiscover()
        try:
            task = registry.get(name)
        except registry.UnregisteredTask:
            known = registry.names()
            raise CommandError(
                f"unregistered task {name!r}; registered tasks: "
                + (", ".join(known) if known else "none (is the app in INSTALLED_APPS?)")
            ) from None
        if options["countdown"] is not None and options["countdown"] < 0:
            # Celery reads a negative countdown as "now"; on a command line it is a typo.
            raise CommandError(
                f"cannot enqueue {name}: countdown must not be negative, "
                f"not {options['countdown']!r}"
            )
        try:
            result = task.apply_async(
                call_args,
                call_kwargs,
                countdown=options["countdown"],
                eta=eta,
                queue=options["queue"],
                priority=options["priority"],
            )
        except INPUT_ERRORS as error:
            raise CommandError(f"cannot enqueue {name}: {error}") from None
        except DatabaseError as error:  # no table yet, a read-only database, an outage...
            database = connections[router.db_for_write(Task)]
            raise CommandError(f"cannot enqueue {name}: {describe(database, error)}") from None
        if options["verbosity"] < 1:
            return
        if isinstance(result, EagerResult):  # CELERY_TASK_ALWAYS_EAGER ran it here
            self.stdout.write(f"Ran {name} inline (CELERY_TASK_ALWAYS_EAGER)")
        else:
            self.stdout.write(f"Queued {name} as task {result.id}")
