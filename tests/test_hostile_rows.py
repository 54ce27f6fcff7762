"""Rows cannot crash a worker: whatever text ``args`` and ``kwargs`` hold, the row either
runs as the call it describes or fails alone, with an error that says what is wrong."""

from __future__ import annotations

import random

import pytest
from django.utils import timezone

from taskq import serialization
from taskq.models import Task
from taskq.serialization import DecodeError, loads, loads_call
from tests.hostile import hostile_text, random_text, valid_call

NAME = "test_matrix.testapp.tasks.record_call"
SEED = 20261201


def decode_outcome(args: str, kwargs: str) -> str | None:
    """Return None if a worker must run the row, else the message its error must hold."""
    try:
        loads_call(args, kwargs)
    except DecodeError as error:
        return str(error).split(": ", 1)[-1]
    return None


def is_shape_error(args: str, kwargs: str) -> bool:
    """The texts decode, but not to an array and an object."""
    try:
        decoded = loads(args), loads(kwargs)
    except DecodeError:
        return False
    return not (isinstance(decoded[0], list) and isinstance(decoded[1], dict))


def hostile_rows(count: int, rng: random.Random, shapes: bool) -> list[tuple[str, str]]:
    """``count`` rows, about a third of them valid; only shape errors if ``shapes``."""
    rows: list[tuple[str, str]] = []
    while len(rows) < count:
        if rng.random() < 0.3:
            rows.append(valid_call(rng))
            continue
        args, kwargs = valid_call(rng)
        if rng.random() < 0.6:
            args = hostile_text(rng, "args")
        else:
            kwargs = hostile_text(rng, "kwargs")
        if is_shape_error(args, kwargs) == shapes:
            rows.append((args, kwargs))
    return rows


def write_rows(rows: list[tuple[str, str]]) -> list[int]:
    now = timezone.now()
    Task.objects.bulk_create(
        [Task(name=NAME, args=args, kwargs=kwargs, eta=now) for args, kwargs in rows],
        batch_size=100,
    )
    return list(Task.objects.order_by("pk").values_list("pk", flat=True))


def drain_and_check(workers, rows: list[tuple[str, str]]) -> None:
    ids = write_rows(rows)
    assert len(ids) == len(rows)
    result = workers.run("--burst", "-l", "WARNING", timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    ran = [int(line.split()[1]) for line in workers.records()]
    assert len(ran) == len(set(ran)), "a row ran twice"
    rows_left = Task.objects.values_list("pk", "state", "error")
    left = {pk: (state, error) for pk, state, error in rows_left}
    problems = []
    for pk, (args, kwargs) in zip(ids, rows, strict=True):
        expected = decode_outcome(args, kwargs)
        if expected is None:
            if pk not in ran or pk in left:
                problems.append(f"row {pk} {args[:80]!r} {kwargs[:80]!r} should have run")
            continue
        state, error = left.get(pk, (None, ""))
        if pk in ran or state != Task.State.FAILED:
            problems.append(f"row {pk} {args[:80]!r} {kwargs[:80]!r} ran or is not failed")
        elif expected not in error and repr(expected)[1:-1] not in error:
            problems.append(f"row {pk}: error {error[:300]!r} does not say {expected!r}")
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} problems)"
    assert not Task.objects.exclude(state=Task.State.FAILED).exists()


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_worker_survives_a_thousand_hostile_rows(workers):
    drain_and_check(workers, hostile_rows(1000, random.Random(SEED), shapes=False))


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_rows_whose_args_are_no_array_or_kwargs_no_object_fail_and_never_run(workers):
    drain_and_check(workers, hostile_rows(300, random.Random(SEED + 1), shapes=True))


# The decoder alone, on many more inputs ------------------------------------------------


def test_loads_call_raises_only_decode_error_on_random_input():
    rng = random.Random(SEED)
    decoded = refused = 0
    for _ in range(30_000):
        texts = list(valid_call(rng))
        column = rng.randrange(3)  # 2: both stay valid
        if column < 2:
            hostile = rng.random() < 0.7
            texts[column] = (
                hostile_text(rng, ("args", "kwargs")[column])
                if hostile
                else random_text(rng, rng.randrange(0, 40))
            )
        try:
            args, kwargs = loads_call(*texts)
        except DecodeError as error:
            assert str(error).startswith(("args", "kwargs")), error
            refused += 1
            continue
        assert isinstance(args, list) and isinstance(kwargs, dict)
        assert all(isinstance(key, str) for key in kwargs)
        decoded += 1
    assert decoded > 1000 and refused > 1000, (decoded, refused)


def test_loads_raises_only_decode_error_on_random_input():
    rng = random.Random(SEED + 2)
    for _ in range(20_000):
        text = random_text(rng, rng.randrange(0, 80))
        try:
            loads(text)
        except DecodeError:
            pass


def test_decode_error_is_a_value_error():
    # The worker rejects a task on ValueError: DecodeError must be one.
    assert issubclass(serialization.DecodeError, ValueError)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ('[{"__taskq__": ["uuid", 5]}]', "{}", "args: a 'uuid' marker holds 5, not a string"),
        ('[{"__taskq__": ["decimal", []]}]', "{}", "a 'decimal' marker holds [], not a string"),
        (
            '[{"__taskq__": ["datetime", "garbage"]}]',
            "{}",
            "a 'datetime' marker holds 'garbage', not an ISO 8601 datetime",
        ),
        ('[{"__taskq__": ["decimal", "1 "]}]', "{}", "not a decimal number"),
        ('[{"__taskq__": ["uuid"]}]', "{}", "a '__taskq__' marker must be [type, value]"),
        ('[{"__taskq__": ["date", 1, 2]}]', "{}", "a '__taskq__' marker must be [type, value]"),
        ('[{"__taskq__": ["nope", 1]}]', "{}", "args: unknown type marker 'nope'"),
        ('[{"__taskq__": ["timedelta", "abc"]}]', "{}", "not [days, seconds, microseconds]"),
        ('[{"__taskq__": ["timedelta", [1e18, 0, 0]]}]', "{}", "not [days, seconds"),
        ('[{"__taskq__": ["timedelta", [999999999999, 0, 0]]}]', "{}", "out of range"),
        ('[{"__taskq__": ["dict", [[1, 2]]]}]', "{}", "not a [str key, value] pair"),
        ('[{"__taskq__": ["dict", ["ab"]]}]', "{}", "not a [str key, value] pair"),
        ("[" * 100_000, "{}", "args: nested too deeply to decode"),
        ("[1" + "0" * 5000 + "]", "{}", "args: not taskq's typed JSON (ValueError: Exceeds"),
        ("[not json", "{}", "args: not JSON (Expecting value"),
        ('{"key": 1}', "{}", "args must be a JSON array, not an object: {'key': 1}"),
        ('"abc"', "{}", "args must be a JSON array, not a string: 'abc'"),
        ("null", "{}", "args must be a JSON array, not null"),
        ("[]", "[1]", "kwargs must be a JSON object, not an array: [1]"),
        ("[]", '"abc"', "kwargs must be a JSON object, not a string"),
        ("[]", '{"__taskq__": ["uuid", 7]}', "kwargs: a 'uuid' marker holds 7"),
        (
            '{"__taskq__": ["uuid", "12345678-1234-5678-1234-567812345678"]}',
            "{}",
            "args must be a JSON array, not a UUID",
        ),
    ],
)
def test_each_problem_is_named(args, kwargs, message):
    with pytest.raises(DecodeError) as error:
        loads_call(args, kwargs)
    assert message in str(error.value)


def test_a_dict_marker_with_string_keys_is_the_dict():
    assert loads_call("[]", '{"__taskq__": ["dict", [["a", 1]]]}') == ([], {"a": 1})


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_row_whose_headers_do_not_decode_fails_before_its_body(workers):
    """The request (``task.request``) is made only when a task asks for it, except its
    headers: a row whose ``headers`` are no typed JSON fails without running its body
    (which here never asks for the request), saying so, and the rows after it run."""
    now = timezone.now()
    record = "test_matrix.testapp.tasks.record"
    bad, good = Task.objects.bulk_create(
        [
            Task(name=record, args="[1]", kwargs="{}", eta=now, headers="{not json"),
            Task(name=record, args="[2]", kwargs="{}", eta=now, headers='{"trace": "t-1"}'),
        ]
    )
    result = workers.run("--burst", "-l", "WARNING", timeout=120)
    assert result.returncode == 0, result.stderr[-5000:]
    assert workers.records() == ["2"]
    failed = Task.objects.get(pk=bad.pk)
    assert failed.state == Task.State.FAILED
    assert "DecodeError" in failed.error and "not JSON" in failed.error, failed.error
    assert not Task.objects.filter(pk=good.pk).exists()
