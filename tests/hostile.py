"""Hostile argument texts: what someone who can write the task table might store.

Shared by the fuzz tests (``test_hostile_rows.py``); every generator takes a seeded
``random.Random``, so a failure can be replayed.
"""

from __future__ import annotations

import json
import random

from taskq.serialization import MARKER, dumps_args, dumps_kwargs

KINDS = [
    *("dict", "datetime", "date", "time", "timedelta", "decimal", "uuid"),
    *("nope", "", "__taskq__"),
]
#: Payloads a marker may wrongly (or rightly) hold.
PAYLOADS = [
    5,
    -1,
    1.5,
    1e308,
    True,
    None,
    "",
    "garbage",
    "2026-01-02T03:04:05",
    "2026-02-30",
    "25:61",
    "1e-999999999999999999",
    "NaN",
    "12345678-1234-5678-1234-567812345678",
    [],
    [1],
    [1, 2, 3],
    [10**18, 0, 0],
    [True, 0, 0],
    ["a", 1],
    [["a", 1]],
    [[1, 2]],
    ["ab"],
    {},
    {"a": 1},
    [[["a"], 1]],
]
#: Characters that are legal in every database's text column (no NUL, no surrogate).
ALPHABET = [chr(c) for c in [*range(1, 128), 0xA0, 0x1B, 0x2028, 0xFEFF, 0x10FFFF, 0x1F600]]


def random_text(rng: random.Random, size: int) -> str:
    """Random characters, weighted towards JSON's own punctuation."""
    punctuation = list('[]{}",:') + ["__taskq__", "\\u0000", "\\ud800", "1e999", "-", "."]
    pool = ALPHABET + punctuation * 8
    return "".join(rng.choice(pool) for _ in range(size))


def marker(rng: random.Random) -> object:
    """A ``__taskq__`` marker, usually malformed."""
    shape = rng.randrange(6)
    kind = rng.choice(KINDS)
    payload = rng.choice(PAYLOADS)
    if shape == 0:
        return {MARKER: payload}
    if shape == 1:
        return {MARKER: [kind]}
    if shape == 2:
        return {MARKER: [kind, payload, payload]}
    if shape == 3:
        return {MARKER: [payload, kind]}
    return {MARKER: [kind, payload]}


def nested(rng: random.Random, depth: int) -> str:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    close = closer * depth if rng.random() < 0.5 else ""
    return opener * depth + close


def valid_call(rng: random.Random) -> tuple[str, str]:
    """A row's args and kwargs as taskq writes them."""
    import datetime as dt
    from decimal import Decimal
    from uuid import UUID

    values = [
        1,
        "text",
        None,
        [1, [2]],
        {"k": "v"},
        {MARKER: 1, "other": 2},
        dt.date(2026, 1, 2),
        dt.timedelta(days=-1, seconds=5),
        Decimal("-0.10"),
        UUID(int=rng.getrandbits(128)),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    ]
    args = [rng.choice(values) for _ in range(rng.randrange(4))]
    kwargs = {f"k{i}": rng.choice(values) for i in range(rng.randrange(3))}
    return dumps_args(args), dumps_kwargs(kwargs)


def hostile_text(rng: random.Random, column: str) -> str:
    """One hostile text for ``column`` ("args" or "kwargs"), of some kind or other."""
    kind = rng.randrange(9)
    if kind == 0:
        return random_text(rng, rng.randrange(1, 60))
    if kind == 1:
        return nested(rng, rng.choice([10, 500, 5000, 50_000]))
    if kind == 2:
        return rng.choice(["1" * 5000, "-" + "9" * 4400, "1e999", "[1e999]", "[-0]", "[NaN]"])
    if kind == 3:  # a marker somewhere inside a well-formed container
        inner = marker(rng)
        return json.dumps([inner] if column == "args" else {"x": inner})
    if kind == 4:  # the whole column is a marker
        return json.dumps(marker(rng))
    if kind == 5:  # the wrong container, or none
        return rng.choice(['{"key": 1}', '"abc"', "5", "null", "true", "[]", "{}", '"a"', "[1]"])
    if kind == 6:  # a valid dict marker at the top, with keys that are no strings
        return json.dumps({MARKER: ["dict", rng.choice([[[1, 2]], [["a", 1]], [["a"]], "ab"])]})
    if kind == 7:  # valid JSON cut short
        text = json.dumps([marker(rng), {"a": [1, 2, 3]}])
        return text[: rng.randrange(1, len(text))]
    return valid_call(rng)[0 if column == "args" else 1]
