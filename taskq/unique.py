"""Unique tasks: the key of a call, and its digest, which the task table indexes.

While a task holds a key (queued or started, retries included) no other task can be
written with it: the unique index on ``Task.unique_key_hash`` refuses the row, on every
database and however many processes race, and ``taskq.enqueue`` then answers with the
holder's id. A task that succeeds is deleted and one that fails gives its key up
(``taskq.models.failure_changes``), so the key is free again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from taskq import serialization

#: The longest key a caller may give (the key is stored whole; the index holds a digest).
UNIQUE_KEY_MAX_LENGTH = 1000


def key_for(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Return the key of ``shared_task(unique=True)``: the task's name with its
    arguments as taskq's typed JSON with sorted keys, so equal calls have equal keys
    whatever the order their keyword arguments were given in."""
    encoded = serialization.encode({"args": list(args), "kwargs": dict(kwargs)})
    return f"{name}{json.dumps(encoded, sort_keys=True, separators=(',', ':'))}"


def check_key(key: Any) -> str:
    """Return ``key`` if it can be a unique key, else raise ``TypeError``/``ValueError``."""
    if not isinstance(key, str):
        raise TypeError(f"unique_key must be a str, not {key!r}")
    if not key:
        raise ValueError("unique_key must not be empty")
    if len(key) > UNIQUE_KEY_MAX_LENGTH:
        raise ValueError(f"unique_key is longer than {UNIQUE_KEY_MAX_LENGTH} characters")
    return key


def digest(key: str) -> str:
    """Return what the unique index holds for ``key``: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()
