"""Which modules a worker imports to find tasks, and what to say of a task it will miss.

A worker knows a task only if importing its modules registered it: every installed
app's ``tasks`` module and each module of ``TASKQ_IMPORTS`` (``registry.autodiscover``).
A task defined anywhere else is queued without complaint by a web process, which
imported its module itself, and fails on the worker as "unregistered task". So each
task is judged once, when it is registered, and its first enqueue warns if the worker
will not find it; the worker's "unregistered task" line gives the same advice.
"""

from __future__ import annotations

import logging
import sys

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from taskq.conf import settings

__all__ = ["discovered_modules", "note_registered", "unregistered_hint", "warn_if_not_imported"]

logger = logging.getLogger("taskq.discovery")

#: Tasks registered from a module the worker does not import, by name: their module.
#: An entry is removed when its warning is logged, so each task warns once.
_not_imported: dict[str, str] = {}


def discovered_modules() -> list[str]:
    """Return the modules a worker imports to register tasks, in the order it does."""
    try:
        imports = list(settings.IMPORTS)
    except ImproperlyConfigured:
        imports = []  # reported by the system checks
    return [f"{config.name}.tasks" for config in apps.get_app_configs()] + imports


def _being_imported(module: str) -> bool:
    """Return whether ``module``'s import is still running (its body executes now)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def worker_imports(module: str) -> bool:
    """Return whether a worker's discovery imports ``module``.

    True for a discovered module itself, and for a module registered while a discovered
    one is being imported: the worker imports it the same way (a ``tasks.py`` that
    imports ``jobs.py``, a ``tasks`` package that imports its submodules). Before the
    app registry is ready nothing can be known: assume yes, as nothing would be said.
    """
    if not apps.apps_ready:
        return True
    found = discovered_modules()
    return module in found or any(_being_imported(name) for name in found)


def note_registered(name: str, module: str) -> None:
    """Judge, once per registration, whether a worker will find task ``name``."""
    if worker_imports(module):
        _not_imported.pop(name, None)
    else:
        _not_imported[name] = module


def advice(module: str) -> str:
    return (
        "a worker imports only every installed app's tasks module and the modules of "
        f"TASKQ_IMPORTS: define the task in an app's tasks.py, or add {module!r} to "
        "TASKQ_IMPORTS"
    )


def warn_if_not_imported(name: str) -> None:
    """Warn, the first time task ``name`` is queued, if no worker will find it."""
    if not _not_imported:
        return
    module = _not_imported.pop(name, None)
    if module is not None:
        logger.warning(
            "Task %s is defined in %s, which a worker does not import, so a worker will "
            "fail it as 'unregistered task'; %s",
            name,
            module,
            advice(module),
        )


def unregistered_hint(name: str) -> str:
    """Return the advice for a row naming a task this worker never registered."""
    module = name.rpartition(".")[0] or name
    return f"if it is defined in {module!r}, {advice(module)}"
