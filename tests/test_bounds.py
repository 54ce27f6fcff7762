"""Stored errors and logged reprs have upper bounds, whatever a task raises."""

import pytest

from taskq.bounds import MAX_ERROR_BYTES, bounded_error, short_repr


def test_a_short_error_is_kept_whole():
    text = "Traceback (most recent call last):\nValueError: é\n"
    assert bounded_error(text) is text


def test_a_huge_error_keeps_its_head_and_tail_within_the_limit():
    text = "Traceback (most recent call last):\n" + "x" * (20 * 1024 * 1024) + "\nValueError: end"
    bounded = bounded_error(text)
    assert len(bounded.encode()) <= MAX_ERROR_BYTES
    assert bounded.startswith("Traceback (most recent call last):\n")
    assert bounded.endswith("\nValueError: end")
    head, rest = bounded.split("\n[… ", 1)
    cut, tail = rest.split(" bytes cut by taskq …]\n", 1)
    assert int(cut) == len(text.encode()) - len(head.encode()) - len(tail.encode())


@pytest.mark.parametrize("character", ["é", "€", "😀"])
def test_cuts_never_split_a_character_and_count_bytes(character):
    text = character * 100_000
    bounded = bounded_error(text, limit=1000)
    assert len(bounded.encode()) <= 1000
    head, marker_and_tail = bounded.split("\n[… ", 1)
    shown = int(marker_and_tail.split(" bytes")[0])
    tail = marker_and_tail.split("…]\n", 1)[1]
    assert set(head) == set(tail) == {character}
    assert shown == len(text.encode()) - len(head.encode()) - len(tail.encode())


def test_short_repr_is_short_and_on_one_line():
    assert short_repr("a\nb") == "'a\\nb'"
    assert len(short_repr("x" * 50_000_000)) <= 300
    assert len(short_repr(list(range(10**6)))) <= 300
    assert len(short_repr(ValueError("y" * 10**6), limit=100)) == 100
    assert "\n" not in short_repr({"k": "line\nbreak" * 1000})


def test_short_repr_survives_a_repr_that_raises():
    class Hostile:
        def __repr__(self):
            raise RuntimeError("no")

    assert short_repr(Hostile()).startswith("<Hostile ")
