"""Line charts drawn on the server, as inline SVG: the admin summary's history.

No JavaScript and nothing loaded from elsewhere, so the charts work wherever the admin
does (an intranet, a strict Content-Security-Policy). Every text in the markup is
escaped; the numbers are formatted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import mark_safe

WIDTH, HEIGHT = 720, 160
#: Room for the axis labels: left, right, top, bottom.
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 22


@dataclass(frozen=True)
class Line:
    """One series: its name, its colour (a CSS colour) and one value per x label;
    ``None`` where nothing is known (the line breaks there)."""

    name: str
    colour: str
    values: Sequence[float | None]


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at least ``value``: a round top for the axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _number(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def line_chart(title: str, x_labels: Sequence[str], lines: Sequence[Line], unit: str = "") -> str:
    """Return an ``<svg>`` of ``lines`` over ``x_labels`` (oldest first), with a legend.

    The y axis starts at zero and ends at a round number above the largest value; the
    x axis names its first, middle and last label.
    """
    count = len(x_labels)
    known = [v for line in lines for v in line.values if v is not None]
    top = _nice_ceiling(max(known, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    parts: list[str] = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="taskq-chart" viewBox="0 0 {} {}" '
            'width="{}" height="{}" role="img" aria-label="{}"><title>{}</title>',
            WIDTH,
            HEIGHT,
            WIDTH,
            HEIGHT,
            title,
            title,
        )
    ]
    for fraction in (0, 0.5, 1):
        value = top * fraction
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ccc" stroke-width="1"/>'
                '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                _f(y(value)),
                _f(y(value)),
                LEFT - 4,
                _f(y(value) + 4),
                _number(value) + unit,
            )
        )
    for i in sorted({0, count // 2, count - 1}) if count else []:
        anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="#666">{}</text>',
                _f(x(i)),
                HEIGHT - 6,
                anchor,
                x_labels[i],
            )
        )
    for line in lines:
        for run in _runs(line.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:
                i, v = run[0]
                parts.append(
                    format_html(
                        '<circle cx="{}" cy="{}" r="2" fill="{}"/>', _f(x(i)), _f(y(v)), line.colour
                    )
                )
            else:
                parts.append(
                    format_html(
                        '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5">'
                        "<title>{}</title></polyline>",
                        points,
                        line.colour,
                        line.name,
                    )
                )
    parts.append("</svg>")
    legend = "".join(
        format_html(
            '<span class="taskq-legend"><span style="background:{}"></span>{} '
            "(max {}, total {})</span>",
            line.colour,
            line.name,
            _number(max((v for v in line.values if v is not None), default=0)),
            _number(sum(v for v in line.values if v is not None)),
        )
        if not unit
        else format_html(
            '<span class="taskq-legend"><span style="background:{}"></span>{} (max {})</span>',
            line.colour,
            line.name,
            _number(max((v for v in line.values if v is not None), default=0)) + unit,
        )
        for line in lines
    )
    return format_html(
        '<figure class="taskq-figure"><figcaption>{}</figcaption>{}<div>{}</div></figure>',
        title,
        mark_safe("".join(parts)),  # each part is format_html's escaped output
        mark_safe(legend),
    )


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Split ``values`` into runs of known values, so a line breaks where one is None."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return runs
