"""Upper bounds on the text taskq stores and logs about a task.

A task can raise an exception whose message is megabytes long, and a row can hold an
argument of any size. Stored whole, such an error makes its row expensive to write (and
may be refused by the database); logged whole, it floods the log with one line. These
functions keep the part a human reads: the head and the tail of an error (where a
traceback's first frames and its exception message are), and the start of a repr.
"""

from __future__ import annotations

import reprlib
from typing import Any

#: The most an error stored in a task row may take, in bytes of UTF-8.
MAX_ERROR_BYTES = 64 * 1024
#: The most characters of a repr that a log line repeats.
SHORT_REPR_LIMIT = 300


def _cut_marker(cut: int) -> str:
    return f"\n[… {cut} bytes cut by taskq …]\n"


def bounded_error(text: str, limit: int = MAX_ERROR_BYTES) -> str:
    """Return ``text`` if it fits in ``limit`` bytes of UTF-8, else its head and its tail
    joined by a marker that says how many bytes were cut; the result fits in ``limit``.

    The head keeps the start of a traceback, the tail its last frames and the exception
    message. Cuts never split a character.
    """
    if len(text) * 4 <= limit:  # fits whatever the characters are
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    # The marker's length depends on the number it shows; the byte count of the
    # whole text is an upper bound on that number's length.
    room = max(0, limit - len(_cut_marker(len(data)).encode()))
    head_size = room // 2
    tail_size = room - head_size
    head = data[:head_size].decode("utf-8", "ignore")
    tail = data[len(data) - tail_size :].decode("utf-8", "ignore") if tail_size else ""
    kept = len(head.encode("utf-8", "surrogatepass")) + len(tail.encode("utf-8", "surrogatepass"))
    cut = len(data) - kept
    return head + _cut_marker(cut) + tail


def shorten(text: str, limit: int = SHORT_REPR_LIMIT) -> str:
    """Return ``text`` cut to at most ``limit`` characters, ending with "…" if cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


_repr = reprlib.Repr()
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10
_repr.maxstring = _repr.maxother = SHORT_REPR_LIMIT
_repr.maxlong = 60


def short_repr(value: Any, limit: int = SHORT_REPR_LIMIT) -> str:
    """Return a repr of ``value`` of at most ``limit`` characters, on one line.

    Containers and strings are cut without building their whole repr first; a
    ``__repr__`` that raises gives a placeholder instead of an exception, so a log line
    about a hostile value can always be written.
    """
    try:
        text = _repr.repr(value)
    except Exception as error:  # a broken __repr__ must not break the log line
        text = f"<{type(value).__name__} whose repr raised {type(error).__name__}>"
    return shorten(text.replace("\n", "\\n").replace("\r", "\\r"), limit)
