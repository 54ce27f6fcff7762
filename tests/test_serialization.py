"""Arguments are typed JSON: exact round trips, and a clear TypeError for the rest."""

import datetime as dt
import json
from decimal import Decimal
from uuid import UUID

import pytest

from taskq.serialization import dumps_args, dumps_kwargs, loads

VALUES = [
    None,
    True,
    7,
    1.5,
    "text",
    [1, [2, "three"]],
    {"nested": {"list": [1, 2]}},
    dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.date(2026, 2, 28),
    dt.time(23, 59, 58, 999999),
    dt.timedelta(days=-3, seconds=12, microseconds=5),
    Decimal("1234567890.000000000000000001"),
    Decimal("-0.10"),
    UUID("12345678-1234-5678-1234-567812345678"),
    {"__taskq__": ["datetime", "not a date"], "other": 1},
    {"__taskq__": 5},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_exactly(value):
    back = loads(dumps_args([value]))[0]
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, (dt.datetime, dt.time)):
        assert back.utcoffset() == value.utcoffset()
    if isinstance(value, Decimal):
        assert str(back) == str(value)


def test_tuples_become_lists_as_in_celery():
    assert loads(dumps_args((1, (2, 3)))) == [1, [2, 3]]


def test_kwargs_round_trip():
    kwargs = {"when": dt.date(2026, 1, 1), "amount": Decimal("9.99")}
    assert loads(dumps_kwargs(kwargs)) == kwargs


def test_the_stored_text_is_plain_json():
    assert json.loads(dumps_args([1, "a", None])) == [1, "a", None]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dumps_args([{1, 2}]), "args[0] is of type set"),
        # Changed by issue 11: bytes round-trip now, as Celery sends them.
        (lambda: dumps_args([1, [bytearray(b"x")]]), "args[1][0] is of type bytearray"),
        (lambda: dumps_kwargs({"user": object()}), "kwargs['user'] is of type object"),
        (lambda: dumps_kwargs({"a": {"b": complex(1, 2)}}), "kwargs['a']['b'] is of type complex"),
        (lambda: dumps_kwargs({"a": {1: "x"}}), "kwargs['a'] has a key 1 of type int"),
        (lambda: dumps_args("abc"), "args must be a list or tuple, not str"),
        (lambda: dumps_kwargs([("a", 1)]), "kwargs must be a dict, not list"),
    ],
)
def test_unserialisable_values_name_the_argument_and_type(call, message):
    with pytest.raises(TypeError) as error:
        call()
    assert message in str(error.value)
