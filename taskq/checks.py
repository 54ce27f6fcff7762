"""System checks: bad settings, and the claim strategy each database alias resolves to.

Plain ``manage.py check`` validates every ``TASKQ_*`` setting without connecting: a
strategy name that names nothing, a module of ``TASKQ_IMPORTS`` that cannot be found.
Whether the database can run the chosen strategy needs a connection, so it is checked
where Django connects for checks (``check --database``, and ``migrate``); the report of
which strategy each alias resolved to is a deployment check (``check --deploy``), so
that ``migrate`` does not print it: Django gives ``migrate`` and ``check --database``
the same check arguments, and only ``--deploy`` tells them apart.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router

from taskq.conf import TaskqSettings, settings


def task_aliases(databases: Iterable[str]) -> list[str]:
    """Return the aliases among ``databases`` that hold the task table."""
    from taskq.models import Task

    return [alias for alias in databases if router.allow_migrate_model(alias, Task)]


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
def check_claim_strategy_setting(**kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a ``TASKQ_CLAIM_STRATEGY`` that names nothing, without connecting.

    (``check --database`` says it again per alias: a check cannot tell whether the
    database checks run too, as Django 6 hands every check every alias.)
    """
    from taskq.backends import validate_strategy_setting

    try:
        validate_strategy_setting(settings.CLAIM_STRATEGY)
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="taskq.E004")]
    return []


@checks.register()
def check_imports(**kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a module of ``TASKQ_IMPORTS`` that cannot be found: the worker would die."""
    try:
        modules = settings.IMPORTS
    except ImproperlyConfigured:
        return []  # reported by check_settings
    errors: list[checks.CheckMessage] = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
            reason = f"no module named {module!r}"
        except ImportError as error:  # a package above it is missing
            found, reason = False, str(error)
        except Exception as error:  # importing a package above it raised
            found, reason = False, f"importing its package raised {error!r}"
        if not found:
            errors.append(
                checks.Error(
                    f"TASKQ_IMPORTS names {module!r}, which cannot be imported: {reason}",
                    hint="Fix the module path, or remove it from TASKQ_IMPORTS.",
                    id="taskq.E005",
                )
            )
    return errors


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


def resolve_strategy(alias: str) -> checks.CheckMessage:
    """Return the strategy ``alias`` resolves to (Info), or why it resolves to none."""
    from taskq.backends import strategy_class

    connection = connections[alias]
    try:
        cls = strategy_class(connection, settings.CLAIM_STRATEGY)
    except ImproperlyConfigured as error:
        return checks.Error(str(error), id="taskq.E002")
    except DatabaseError as error:
        return checks.Warning(
            f"Could not reach database {alias!r} to choose its claim strategy: {error}",
            id="taskq.W001",
        )
    return checks.Info(
        f"Database {alias!r} ({connection.display_name}) claims tasks with "
        f"{cls.family} ({cls.__module__}.{cls.__name__})",
        id="taskq.I001",
    )


@checks.register(checks.Tags.database)
def check_claim_strategy(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a claim strategy an alias holding the task table cannot run.

    Tagged ``database`` as Django's own database checks are: the choice can depend on
    the server's version, so it connects, which only ``check --database`` (and
    ``migrate``) should do.
    """
    messages = [resolve_strategy(alias) for alias in task_aliases(databases or [])]
    return [message for message in messages if message.level > checks.INFO]


# Not tagged "database": Django 6 would then skip it under a plain ``check --deploy``.
@checks.register(deploy=True)
def report_claim_strategy(databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Say which claim strategy each alias holding the task table resolved to, or why
    none (``check --deploy``: the ``--database`` aliases, or else every one)."""
    return [resolve_strategy(alias) for alias in task_aliases(databases or connections)]


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
                    id="taskq.E006",
                )
            )
    return errors
