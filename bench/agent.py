"""One measurement in a process set up for one queue and one database.

``python -m bench.agent MEASUREMENT 'JSON-PARAMETERS'`` with ``DJANGO_SETTINGS_MODULE``
(``bench.settings`` or ``bench.original_settings``) and ``BENCH_DATABASE`` set; prints
the result as one JSON line after ``RESULT_PREFIX``. Django's settings can be set up
once per process, and the original lives in another virtualenv, so the orchestrator in
``bench/__main__.py`` runs every measurement in an agent of its own.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "


#: Each measurement's module and function. Imported by name, only the one asked for: the
#: original's agent has no ``bench`` app, so a module with the benchmark's model
#: (``body``, ``statements``) cannot be imported there.
MEASUREMENTS = {
    "delay": ("enqueue", "delay_rate"),
    "bulk": ("enqueue", "bulk_rate"),
    "drain": ("drain", "measure"),
    "pickup": ("latency", "pickup"),
    "eta": ("latency", "eta"),
    "depth": ("depth", "measure"),
    "memory": ("memory", "measure"),
    "limits": ("limits", "measure"),
    "pressure": ("pressure", "measure"),
    "body": ("body", "measure"),
    "statements": ("statements", "measure"),
}


def measurement(name: str) -> Callable[..., dict[str, Any]]:
    module, function = MEASUREMENTS[name]
    return getattr(importlib.import_module(f"bench.{module}"), function)


def main(argv: list[str]) -> None:
    import django

    django.setup()
    from bench.target import current

    name, parameters = argv[1], json.loads(argv[2])
    result = measurement(name)(current(), **parameters)
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
