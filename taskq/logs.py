"""The worker's log: the words of its lines, and where ``taskq_worker`` sends them.

An operator reads these lines first when something goes wrong, so each says which run
of the task it was out of how many its retry policy allows, and a failure carries its
traceback. Where they go is the project's choice when its ``LOGGING`` names handlers;
otherwise ``taskq_worker`` writes them to stderr, and the tasks' own lines with them
(a task's ``logger.info()`` reaches no handler at all in a project that configured
none). ``--log-format json`` writes one JSON object a line, through python-json-logger,
with the fields every task line carries as ``extra=`` (``task_id``, ``task_name``,
``queue``, ``attempt``, ``duration``…).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings as django_settings

from taskq import discovery
from taskq.backends import Claim
from taskq.execution import Cancelled, Expired, Failed, Outcome, Rejected, Retried, Succeeded
from taskq.registry import RegisteredTask, UnregisteredTask

__all__ = [
    "LOG_FORMATS",
    "TEXT_FORMAT",
    "attempt_fields",
    "attempt_text",
    "configure",
    "endings_text",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"
#: The standard fields of a JSON line, after its ISO 8601 UTC ``timestamp``; the
#: record's ``extra=`` fields follow them.
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"
LOG_FORMATS = ("text", "json")


class JsonLogsUnavailable(ImportError):
    """``--log-format json`` needs the optional dependency python-json-logger."""


def max_attempts(task: RegisteredTask | None) -> int | None:
    """Return how many runs ``task``'s retry policy allows (``None``: no limit)."""
    if task is None:
        return 1
    limit = task.policy.max_retries
    return None if limit is None else limit + 1


def attempt_text(attempt: int, task: RegisteredTask | None) -> str:
    """Return "attempt 2 of 4": which run this was, of those the retry policy allows."""
    most = max_attempts(task)
    return f"attempt {attempt} of {'∞' if most is None else most}"


def attempt_fields(fields: dict[str, Any], task: RegisteredTask | None) -> dict[str, Any]:
    """Return a log line's ``extra=``: the outcome's fields and ``max_attempts``."""
    return {**fields, "max_attempts": max_attempts(task)}


#: The words of the stop line, in its order, for each way a task ends.
ENDINGS: dict[type[Outcome], str] = {
    Succeeded: "succeeded",
    Failed: "failed",
    Rejected: "failed",
    Retried: "retried",
    Expired: "expired",
    Cancelled: "cancelled",
}


def ending(outcome: Outcome) -> str:
    return ENDINGS[type(outcome)]


def endings_text(endings: Mapping[str, int]) -> str:
    """Return "160 succeeded, 2 failed, 1 retried, 1 expired, 0 cancelled"."""
    words = dict.fromkeys(ENDINGS.values())
    return ", ".join(f"{endings.get(word, 0)} {word}" for word in words)


def endings_fields(endings: Mapping[str, int]) -> dict[str, int]:
    """Return the stop line's ``extra=``: ``tasks_succeeded`` and so on, zeros included."""
    return {f"tasks_{word}": endings.get(word, 0) for word in dict.fromkeys(ENDINGS.values())}


def claim_fields(claim: Claim) -> dict[str, Any]:
    return {
        "task_id": claim.id,
        "task_name": claim.name,
        "queue": claim.queue,
        "attempt": claim.retries + 1,
    }


def rejection_text(exception: BaseException, error: str) -> str:
    """Return why a task could not start; an unregistered name says where tasks are found."""
    if isinstance(exception, UnregisteredTask):
        return f"{error}; {discovery.unregistered_hint(exception.name)}"
    return error


#: What each fenced write of ``ClaimStrategy`` did to the row, for DEBUG lines.
WRITES = {"complete": "deleted", "retry": "queued again", "fail": "kept as failed"}


def log_write(logger: logging.Logger, write: Callable[..., bool], claim: Claim) -> None:
    """Say at DEBUG what an outcome's write did to the task's row."""
    if logger.isEnabledFor(logging.DEBUG):
        did = WRITES.get(getattr(write, "__name__", ""), "written")
        logger.debug("Recorded %s[%s]: %s", claim.name, claim.id, did, extra=claim_fields(claim))


def json_formatter() -> logging.Formatter:
    """Return python-json-logger's formatter, or say how to install it."""
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError as error:
        raise JsonLogsUnavailable(
            "--log-format json needs python-json-logger: pip install 'django-taskq-portable"
            "[json-logs]' (or 'python-json-logger>=3.1')"
        ) from error
    formatter: logging.Formatter = JsonFormatter(JSON_FIELDS, timestamp=True)
    return formatter


def formatter(log_format: str) -> logging.Formatter:
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def project_configures_handlers() -> bool:
    """Return whether the project's ``LOGGING`` names handlers of its own."""
    logging_setting = getattr(django_settings, "LOGGING", None) or {}
    return bool(isinstance(logging_setting, dict) and logging_setting.get("handlers"))


def configure(level: str, log_format: str = "text", task_logs: bool = True) -> str:
    """Send the worker's log lines somewhere; return a sentence saying where.

    - A project whose ``taskq`` or root logger has a handler routes every line itself:
      nothing is added and ``log_format`` does not apply.
    - A project without any ``LOGGING`` handler gets one on the root logger, at INFO,
      so that the tasks' own lines are written beside taskq's (unless ``task_logs`` is
      false).
    - Otherwise (handlers for other loggers only, or ``task_logs`` false) only the
      ``taskq`` logger gets one.

    ``level`` is the ``taskq`` loggers' level whatever the case.
    """
    taskq_logger = logging.getLogger("taskq")
    taskq_logger.setLevel(level)
    root = logging.getLogger()
    if taskq_logger.handlers or root.handlers:
        return "the project's LOGGING"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    if task_logs and not project_configures_handlers():
        root.addHandler(handler)
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)
        return "stderr, with the tasks' own log lines"
    taskq_logger.addHandler(handler)
    return "stderr"
