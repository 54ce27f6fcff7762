"""Task arguments as typed JSON.

Plain JSON values stay as they are. ``datetime``, ``date``, ``time``, ``timedelta``,
``Decimal`` and ``UUID`` become a one-key object ``{"__taskq__": [type, text]}`` so they
come back as the same type and value; a dict that happens to use the key ``__taskq__``
is wrapped the same way, as key-value pairs, so it cannot be mistaken for one. Tuples
become lists, as in Celery. Anything else is refused before a row is written, with the
argument's path. Never pickle: a row in the table can only ever describe data, not code.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from uuid import UUID

MARKER = "__taskq__"


def _encode(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "task arguments can only use str keys"
                )
            encoded[key] = _encode(item, f"{path}[{key!r}]")
        if MARKER in encoded:
            # As key-value pairs, so the decoder never sees the user's dict as a marker.
            return {MARKER: ["dict", [[key, item] for key, item in encoded.items()]]}
        return encoded
    # datetime is a subclass of date, so it must be tested first.
    if isinstance(value, dt.datetime):
        return {MARKER: ["datetime", value.isoformat()]}
    if isinstance(value, dt.date):
        return {MARKER: ["date", value.isoformat()]}
    if isinstance(value, dt.time):
        return {MARKER: ["time", value.isoformat()]}
    if isinstance(value, dt.timedelta):
        return {MARKER: ["timedelta", [value.days, value.seconds, value.microseconds]]}
    if isinstance(value, Decimal):
        return {MARKER: ["decimal", str(value)]}
    if isinstance(value, UUID):
        return {MARKER: ["uuid", str(value)]}
    raise TypeError(
        f"{path} is of type {type(value).__name__}, which taskq cannot store; use JSON "
        "values (str, int, float, bool, None, list, dict) or datetime, date, time, "
        "timedelta, Decimal, UUID"
    )


def encode(value: Any) -> Any:
    """Return ``value`` as the plain JSON values ``dumps_args`` would write, or raise
    ``TypeError`` (for a caller that needs its own ``json.dumps``: a unique key)."""
    return _encode(value, "arguments")


_DECODERS: dict[str, Any] = {
    "dict": dict,
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda parts: dt.timedelta(*parts),
    "decimal": Decimal,
    "uuid": UUID,
}


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and MARKER in obj:
        kind, value = obj[MARKER]
        return _DECODERS[kind](value)
    return obj


def dumps_args(args: Any) -> str:
    """Return ``args`` (a list or tuple) as typed JSON, or raise ``TypeError``."""
    if not isinstance(args, (list, tuple)):
        raise TypeError(f"args must be a list or tuple, not {type(args).__name__}")
    return json.dumps(_encode(args, "args"), separators=(",", ":"))


def dumps_kwargs(kwargs: Any) -> str:
    """Return ``kwargs`` (a dict with str keys) as typed JSON, or raise ``TypeError``."""
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    return json.dumps(_encode(kwargs, "kwargs"), separators=(",", ":"))


_DECODER = json.JSONDecoder(object_hook=_decode_object)


def loads(text: str) -> Any:
    """Return the value that ``dumps_args`` or ``dumps_kwargs`` wrote.

    Whatever is wrong with the text (a row written by hand, say), the error is a
    ``ValueError``.
    """
    if text == "[]":  # most calls: no arguments of one kind or the other
        return []
    if text == "{}":
        return {}
    try:
        return _DECODER.decode(text)
    except ValueError:
        raise
    except (TypeError, KeyError, ArithmeticError, RecursionError) as error:
        raise ValueError(f"not taskq's typed JSON: {error!r}") from error
