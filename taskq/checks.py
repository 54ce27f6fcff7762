"""System checks: the claim strategy each database alias resolves to, and bad settings."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router

from taskq.conf import TaskqSettings, settings


@checks.register()
def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """Report every malformed ``TASKQ_*`` setting."""
    errors: list[checks.CheckMessage] = []
    for setting in TaskqSettings.declared():
        try:
            setting.__get__(settings)
        except ImproperlyConfigured as error:
            errors.append(checks.Error(str(error), id="taskq.E001"))
    return errors


@checks.register()
def check_unknown_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """Warn about a ``TASKQ_*`` setting taskq does not know: a typo is silently ignored."""
    known = [setting.name for setting in TaskqSettings.declared()]
    warnings: list[checks.CheckMessage] = []
    # The settings object behind the lazy proxy lists every setting, defaults included.
    for name in sorted(dir(django_settings._wrapped)):  # type: ignore[misc]
        if name.startswith("TASKQ_") and name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {near[0]}?" if near else f"taskq's settings are {known}"
            warnings.append(checks.Warning(f"Unknown setting {name}: {hint}", id="taskq.W002"))
    return warnings


@checks.register()
def check_liveness_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a dirty threshold that healthy workers could not stay under."""
    try:
        interval, threshold = settings.HEARTBEAT_INTERVAL, settings.DIRTY_AFTER
    except ImproperlyConfigured:
        return []  # reported by check_settings
    if threshold < 2 * interval:
        return [
            checks.Error(
                f"TASKQ_DIRTY_AFTER ({threshold:g}s) must be at least twice "
                f"TASKQ_HEARTBEAT_INTERVAL ({interval:g}s), or running tasks show as dirty",
                id="taskq.E003",
            )
        ]
    return []


@checks.register(checks.Tags.database)
def check_claim_strategy(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Say which claim strategy each alias holding the task table resolved to.

    Tagged ``database`` as Django's own database checks are: the choice can depend on
    the server's version, so it connects, which only ``check --database`` should do.
    """
    from taskq.backends import strategy_class
    from taskq.models import Task

    messages: list[checks.CheckMessage] = []
    for alias in databases or []:
        if not router.allow_migrate_model(alias, Task):
            continue
        connection = connections[alias]
        try:
            cls = strategy_class(connection, settings.CLAIM_STRATEGY)
        except ImproperlyConfigured as error:
            messages.append(checks.Error(str(error), id="taskq.E002"))
        except DatabaseError as error:
            messages.append(
                checks.Warning(
                    f"Could not reach database {alias!r} to choose its claim strategy: {error}",
                    id="taskq.W001",
                )
            )
        else:
            messages.append(
                checks.Info(
                    f"Database {alias!r} ({connection.display_name}) claims tasks with "
                    f"{cls.family} ({cls.__module__}.{cls.__name__})",
                    id="taskq.I001",
                )
            )
    return messages


@checks.register()
def check_schedule(**kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a ``TASKQ_SCHEDULE`` entry naming a task no module registers: no worker
    could ever run it. (A malformed entry is ``check_settings``'s.)"""
    from taskq import registry

    try:
        entries = settings.SCHEDULE
    except ImproperlyConfigured:
        return []  # reported by check_settings
    if not entries:
        return []
    registry.autodiscover()
    known = registry.names()
    errors: list[checks.CheckMessage] = []
    for name, entry in entries.items():
        if entry.task not in known:
            near = difflib.get_close_matches(entry.task, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            errors.append(
                checks.Error(
                    f"TASKQ_SCHEDULE[{name!r}] names task {entry.task!r}, which no module "
                    f"registers{hint}",
                    id="taskq.E004",
                )
            )
    return errors
