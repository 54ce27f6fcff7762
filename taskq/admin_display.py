"""How the admin writes times, durations and calls, so that every page says them alike.

Times carry seconds and the time zone, in the user's time zone (Django's current one);
durations are differences of two times the database wrote, or of one and the
database's "now" read in the same query, so a web server whose clock is off changes
nothing. A call is shown the way Python would write it, decoded from taskq's typed JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import dateformat, timezone

from taskq.bounds import short_repr
from taskq.serialization import DecodeError, loads_call

#: A call longer than this is written one argument per line.
ONE_LINE_CALL = 100


def local(value: datetime) -> datetime:
    """``value`` in the user's time zone (a naive one, without ``USE_TZ``, as it is)."""
    return timezone.localtime(value) if timezone.is_aware(value) else value


def moment(value: datetime | None) -> str:
    """``2026-12-01 05:50:07 CET``, in the user's time zone; "—" for none."""
    if value is None:
        return "—"
    return dateformat.format(local(value), "Y-m-d H:i:s T").strip()


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``, never negative; None if either is missing."""
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``3 h 07 min``, ``2 d 5 h``; "—" for none."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _arguments(args: list[Any], kwargs: dict[str, Any], short: bool) -> list[str]:
    show = short_repr if short else repr
    return [show(value) for value in args] + [f"{key}={show(v)}" for key, v in kwargs.items()]


def arguments_preview(args_text: str, kwargs_text: str, complete: bool, limit: int) -> str:
    """The arguments of a list row, ``42, amount=Decimal('19.90')``, at most ``limit``
    characters. ``complete`` says whether the texts are whole (not a database-cut
    preview); a cut or undecodable one is shown as the stored text."""
    if complete:
        try:
            args, kwargs = loads_call(args_text, kwargs_text)
        except (DecodeError, RecursionError):
            pass
        else:
            text = ", ".join(_arguments(args, kwargs, short=True))
            return text if len(text) <= limit else text[: limit - 1] + "…"
    raw = args_text + ("" if kwargs_text == "{}" else f" {kwargs_text}")
    return raw if len(raw) <= limit else raw[: limit - 1] + "…"


def call(name: str, args_text: str, kwargs_text: str) -> str | None:
    """``shop.tasks.charge_card(42, amount=Decimal('19.90'))``, or None when the row's
    arguments are not taskq's typed JSON (the caller shows the stored text)."""
    try:
        args, kwargs = loads_call(args_text, kwargs_text)
        parts = _arguments(args, kwargs, short=False)
    except (DecodeError, RecursionError):
        return None
    one_line = f"{name}({', '.join(parts)})"
    if len(one_line) <= ONE_LINE_CALL:
        return one_line
    return f"{name}(\n" + "".join(f"    {part},\n" for part in parts) + ")"
