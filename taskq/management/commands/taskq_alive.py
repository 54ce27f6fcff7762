"""``manage.py taskq_alive``: a liveness probe for the worker of this host (a pod).

Exit 0 when the newest worker row of this host has beaten its heartbeat within
``TASKQ_DIRTY_AFTER`` seconds, 1 when it has not (or there is none), with one line that
says which. The newest row only: a pod whose worker was restarted keeps its host name,
and its dead predecessor's row stays until it is forgotten. A database that does not
answer is not the worker's fault (it waits for the database by itself), so the probe
passes then: restarting workers would not bring the database back.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from taskq.clock import database_now
from taskq.conf import settings
from taskq.reconnect import CONNECTION_ERRORS


class Command(BaseCommand):
    help = (
        "Exit 0 if the newest worker of this host beat its heartbeat within "
        "TASKQ_DIRTY_AFTER seconds, else 1: a liveness probe."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default=None,
            help="Host whose worker to judge (default: this one, a pod's name in Kubernetes).",
        )
        parser.add_argument("--database", default=None, help="Database alias of the worker table.")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskq.backends import task_database
        from taskq.models import Worker

        host = options["host"] or socket.gethostname()
        using = options["database"] or task_database()
        try:
            newest = Worker.objects.using(using).filter(host=host).order_by("-started_at").first()
            fresh_since = database_now(-settings.DIRTY_AFTER)
            alive = (
                newest is not None
                and (
                    Worker.objects.using(using).filter(pk=newest.pk, heartbeat__gte=fresh_since)
                ).exists()
            )
        except CONNECTION_ERRORS as error:
            self.stdout.write(
                f"alive: the database does not answer ({error}); not the worker's fault"
            )
            return
        if newest is None:
            self.stdout.write(f"not alive: no worker of host {host!r} is registered")
            sys.exit(1)
        if not alive:
            self.stdout.write(
                f"not alive: worker {newest.ident} has not beaten its heartbeat for "
                f"{settings.DIRTY_AFTER:g}s"
            )
            sys.exit(1)
        self.stdout.write(f"alive: worker {newest.ident}")
