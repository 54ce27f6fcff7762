"""Task arguments as typed JSON.

Plain JSON values stay as they are. ``datetime``, ``date``, ``time``, ``timedelta``,
``Decimal``, ``UUID`` and ``bytes`` (as base64) become a one-key object
``{"__taskq__": [type, text]}`` so they come back as the same type and value; a dict
that happens to use the key ``__taskq__`` is wrapped the same way, as key-value pairs,
so it cannot be mistaken for one. Tuples become lists, and lazy translation strings
(``gettext_lazy``) their text, as in Celery. Anything else is refused before a row is
written, with the argument's path. Never pickle: a row in the table can only ever
describe data, not code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.utils.functional import Promise

from taskq.bounds import short_repr, shorten

MARKER = "__taskq__"


class EncodeError(TypeError):
    """A value taskq cannot store. A ``TypeError``, and the class Celery code catches
    as kombu's ``EncodeError`` (re-exported as ``taskq.celery.EncodeError``)."""


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
    if isinstance(value, bytes):
        return {MARKER: ["bytes", base64.b64encode(value).decode("ascii")]}
    if isinstance(value, Promise):  # gettext_lazy: sent as its text, as Celery's json does
        return str(value)
    raise EncodeError(
        f"{path} is of type {type(value).__name__}, which taskq cannot store; use JSON "
        "values (str, int, float, bool, None, list, dict) or datetime, date, time, "
        "timedelta, Decimal, UUID, bytes"
    )


class DecodeError(ValueError):
    """Stored argument text that is not taskq's typed JSON; the message says what is wrong.

    The only exception the decoder raises, whatever the text: a row can be written by
    anyone who can write the table, and no row may crash the worker that reads it.
    """


def _a_string(kind: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"a {kind!r} marker holds {short_repr(value)}, not a string")
    return value


def _parsed(kind: str, parse: Callable[[str], Any], what: str) -> Callable[[Any], Any]:
    """A decoder of a string payload, which ``parse`` refuses with ValueError."""

    def decode(value: Any) -> Any:
        text = _a_string(kind, value)
        try:
            return parse(text)
        except (ValueError, ArithmeticError):
            raise DecodeError(f"a {kind!r} marker holds {short_repr(text)}, not {what}") from None

    return decode


def _pairs(value: Any) -> dict[str, Any]:
    if not isinstance(value, list):
        raise DecodeError(f"a 'dict' marker holds {short_repr(value)}, not a list of pairs")
    result = {}
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise DecodeError(
                f"a 'dict' marker holds {short_repr(pair)}, not a [str key, value] pair"
            )
        result[pair[0]] = pair[1]
    return result


def _timedelta(value: Any) -> dt.timedelta:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
    ):
        raise DecodeError(
            f"a 'timedelta' marker holds {short_repr(value)}, not [days, seconds, microseconds]"
        )
    try:
        return dt.timedelta(*value)
    except OverflowError:
        raise DecodeError(f"a 'timedelta' marker holds {short_repr(value)}, out of range") from None


def _decimal(text: str) -> Decimal:
    # Only the strings str(Decimal) writes: Decimal() also takes tuples, and a
    # surrounding space or an underscore is not something taskq wrote.
    if text != text.strip() or "_" in text:
        raise ValueError(text)
    return Decimal(text)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "dict": _pairs,
    "datetime": _parsed("datetime", dt.datetime.fromisoformat, "an ISO 8601 datetime"),
    "date": _parsed("date", dt.date.fromisoformat, "an ISO 8601 date"),
    "time": _parsed("time", dt.time.fromisoformat, "an ISO 8601 time"),
    "timedelta": _timedelta,
    "decimal": _parsed("decimal", _decimal, "a decimal number"),
    "uuid": _parsed("uuid", UUID, "a UUID"),
    "bytes": _parsed("bytes", lambda text: base64.b64decode(text, validate=True), "base64"),
}


def encode(value: Any) -> Any:
    """Return ``value`` as the plain JSON values ``dumps_args`` would write, or raise
    ``TypeError`` (for a caller that needs its own ``json.dumps``: a unique key)."""
    return _encode(value, "arguments")


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) != 1 or MARKER not in obj:
        return obj
    marker = obj[MARKER]
    if not (isinstance(marker, list) and len(marker) == 2 and isinstance(marker[0], str)):
        raise DecodeError(f"a {MARKER!r} marker must be [type, value], not {short_repr(marker)}")
    kind, value = marker
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise DecodeError(
            f"unknown type marker {short_repr(kind)} (taskq writes {', '.join(_DECODERS)})"
        )
    return decoder(value)


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


def dumps_headers(headers: Any) -> str:
    """Return Celery ``headers`` (a dict with str keys) as typed JSON, or raise
    ``TypeError``."""
    if not isinstance(headers, dict):
        raise TypeError(f"headers must be a dict, not {type(headers).__name__}")
    return json.dumps(_encode(headers, "headers"), separators=(",", ":"))


_DECODER = json.JSONDecoder(object_hook=_decode_object)


def loads(text: str) -> Any:
    """Return the value that ``dumps_args`` or ``dumps_kwargs`` wrote.

    Whatever is wrong with the text (a row written by hand, or by an attacker), the
    error is a ``DecodeError`` that says what: never another exception.
    """
    if text == "[]":  # most calls: no arguments of one kind or the other
        return []
    if text == "{}":
        return {}
    if not isinstance(text, str):
        raise DecodeError(f"not text but {type(text).__name__}")
    try:
        return _DECODER.decode(text)
    except DecodeError:
        raise
    except json.JSONDecodeError as error:
        raise DecodeError(f"not JSON ({error})") from error
    except RecursionError:
        raise DecodeError("nested too deeply to decode") from None
    except Exception as error:  # a huge number, memory: nothing may escape but DecodeError
        raise DecodeError(
            f"not taskq's typed JSON ({type(error).__name__}: {shorten(str(error))})"
        ) from error


def _describe(value: Any) -> str:
    """Name what a JSON text decoded to: "an object", "a string", "null", "a UUID"..."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    kinds = {list: "an array", dict: "an object", str: "a string", int: "a number"}
    return kinds.get(type(value), "a number" if isinstance(value, float) else None) or (
        f"a {type(value).__name__}"
    )


def loads_call(args_text: str, kwargs_text: str) -> tuple[list[Any], dict[str, Any]]:
    """Return a row's positional and keyword arguments, ready for ``task(*args, **kwargs)``.

    Raise ``DecodeError`` (a ``ValueError``) naming the column and the problem when
    either text is not taskq's typed JSON, ``args`` is not an array or ``kwargs`` is
    not an object with string keys. This is how a worker must read a row.
    """
    try:
        args = loads(args_text)
    except DecodeError as error:
        raise DecodeError(f"args: {error}") from error.__cause__
    try:
        kwargs = loads(kwargs_text)
    except DecodeError as error:
        raise DecodeError(f"kwargs: {error}") from error.__cause__
    if not isinstance(args, list):
        raise DecodeError(f"args must be a JSON array, not {_describe(args)}: {short_repr(args)}")
    if not isinstance(kwargs, dict):
        raise DecodeError(
            f"kwargs must be a JSON object, not {_describe(kwargs)}: {short_repr(kwargs)}"
        )
    for key in kwargs:
        if not isinstance(key, str):  # a JSON object cannot have one; be sure anyway
            raise DecodeError(f"kwargs has a key {short_repr(key)} that is not a string")
    return args, kwargs
