"""The control room's charts: one small SVG chart per series of a queue's history, each with its
own scale and labelled axes (a count of people and a rate per minute never share an axis).
Plain SVG from the server: no script, no build step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.translation import gettext_lazy as _

from . import analytics
from .models import Queue

__all__ = ["WINDOWS", "Chart", "charts"]

#: The windows the control room offers, in hours; the first is the default.
WINDOWS = (1, 6, 24, 168)
#: Points per line at most: longer windows average neighbouring minutes.
MAX_POINTS = 240
WIDTH, HEIGHT = 380, 150
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 22, 24


@dataclass
class Line:
    name: str
    css: str
    points: str


@dataclass
class Chart:
    title: str
    lines: list[Line] = field(default_factory=list)
    #: (y in px, label) of the value ticks; (x in px, label) of the time ticks
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    empty: bool = True
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    right: float = WIDTH - RIGHT
    top: int = TOP


#: (title, [(Minute field, legend, css class)]): one chart each.
SERIES: list[tuple[Any, list[tuple[str, Any, str]]]] = [
    (_("waiting"), [("waiting", _("waiting"), "s1")]),
    (_("active passes"), [("active", _("active passes"), "s1")]),
    (_("joins per minute"), [("joins", _("joins"), "s2")]),
    (_("admissions per minute"), [("admissions", _("admissions"), "s2")]),
    (_("abandons per minute"), [("abandons", _("abandons"), "s3")]),
    (_("completed orders per minute"), [("completions", _("completions"), "s2")]),
    (
        _("wait of those admitted (s)"),
        [
            ("wait_p50", _("median"), "s1"),
            ("wait_p90", _("90th percentile"), "s2"),
            ("wait_p99", _("99th percentile"), "s3"),
        ],
    ),
]


def _nice_top(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _buckets(
    minutes: list[analytics.Minute], start: datetime, end: datetime, name: str
) -> list[tuple[float, float]]:
    """(seconds since start, value) per bucket of neighbouring minutes, averaged; minutes
    without a value are left out."""
    span = (end - start).total_seconds()
    size = max(60.0, math.ceil(span / 60 / MAX_POINTS) * 60.0)
    sums: dict[int, list[float]] = {}
    for minute in minutes:
        value = getattr(minute, name)
        if value is None:
            continue
        index = int((minute.at - start).total_seconds() // size)
        sums.setdefault(index, []).append(float(value))
    return [(index * size, sum(vs) / len(vs)) for index, vs in sorted(sums.items())]


def charts(queue: Queue, hours: int, now: float) -> list[Chart]:
    """The queue's history over the last ``hours``, one chart per series."""
    end = datetime.fromtimestamp(math.floor(now / 60) * 60, tz=UTC)
    start = end - timedelta(hours=hours)
    minutes = analytics.history(queue, since=start, until=end)
    span = (end - start).total_seconds()
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    fmt = "%H:%M" if hours <= 24 else "%d %b"
    x_ticks = [
        (LEFT + inner_w * i / 4, (start + timedelta(seconds=span * i / 4)).strftime(fmt))
        for i in range(5)
    ]
    out = []
    for title, lines in SERIES:
        series = [(css, legend, _buckets(minutes, start, end, name)) for name, legend, css in lines]
        top = _nice_top(max((v for _c, _l, pts in series for _t, v in pts), default=0))
        chart = Chart(title=str(title), x_ticks=x_ticks)
        chart.y_ticks = [(TOP + inner_h * (1 - f), _label(top * f)) for f in (0, 0.5, 1)]
        for css, legend, pts in series:
            if not pts:
                continue
            chart.empty = False
            chart.lines.append(
                Line(
                    name=str(legend),
                    css=css,
                    points=" ".join(
                        f"{LEFT + t / span * inner_w:.1f},{TOP + inner_h * (1 - v / top):.1f}"
                        for t, v in pts
                    ),
                )
            )
        out.append(chart)
    return out
