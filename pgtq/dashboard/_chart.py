"""The overview's charts, drawn on the server as inline SVG (no
JavaScript): queue depth per queue as lines, and throughput (jobs finished
per minute, completed and failed) as stacked bars, over the last hour of
``pgtq.queue_history``.

Pure: this module only computes the geometry (scales, ticks, coordinates);
the template draws it. Coordinates are in the SVG's own user units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pgtq._inspection import HistoryPoint

WIDTH = 720
HEIGHT = 200
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 24, 10, 24
SERIES_CLASSES = 8  # the stylesheet colours lines .series-0 ... .series-7


def nice_maximum(value: float, floor: float = 5.0) -> float:
    """The top of an axis that shows ``value``: the smallest 1, 2 or 5
    times a power of ten that is at least ``value`` (and ``floor``)."""
    value = max(value, floor)
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * power >= value:
            return step * power
    raise AssertionError("unreachable")  # pragma: no cover


def axis_ticks(maximum: float, count: int = 5) -> list[float]:
    """Evenly spaced tick values from 0 to ``maximum`` (a nice maximum)."""
    return [maximum * index / count for index in range(count + 1)]


def tick_label(value: float) -> str:
    """A tick value as short text: 1200 -> '1.2k', 2.5 -> '2.5'."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


@dataclass(frozen=True)
class Frame:
    """The plotting area of a chart and its scales: ``x`` maps a time in
    [start, end] and ``y`` a value in [0, maximum] to SVG coordinates."""

    start: datetime
    end: datetime
    maximum: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def left(self) -> float:
        return MARGIN_LEFT

    @property
    def right(self) -> float:
        return self.width - MARGIN_RIGHT

    @property
    def top(self) -> float:
        return MARGIN_TOP

    @property
    def bottom(self) -> float:
        return self.height - MARGIN_BOTTOM

    def x(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        share = (moment - self.start).total_seconds() / span if span > 0 else 0.0
        return round(self.left + min(max(share, 0.0), 1.0) * (self.right - self.left), 1)

    def y(self, value: float) -> float:
        share = value / self.maximum if self.maximum > 0 else 0.0
        return round(self.bottom - min(max(share, 0.0), 1.0) * (self.bottom - self.top), 1)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Line:
    """One queue's depth: an SVG polyline's points and its colour class."""

    label: str
    points: str
    css_class: str


@dataclass(frozen=True)
class Bar:
    """One rectangle of a stacked bar: completed or failed in one minute."""

    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True)
class Chart:
    """Everything a template needs to draw one chart."""

    title: str
    frame: Frame
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    lines: list[Line]
    bars: list[Bar]
    empty: bool


def _x_ticks(frame: Frame, every: timedelta = timedelta(minutes=10)) -> list[Tick]:
    seconds = every.total_seconds()
    first = math.ceil(frame.start.timestamp() / seconds) * seconds
    ticks = []
    moment = datetime.fromtimestamp(first, tz=frame.start.tzinfo)
    while moment <= frame.end:
        ticks.append(Tick(frame.x(moment), moment.strftime("%H:%M")))
        moment += every
    return ticks


def _y_ticks(frame: Frame) -> list[Tick]:
    return [Tick(frame.y(value), tick_label(value)) for value in axis_ticks(frame.maximum)]


def _window(points: Iterable[HistoryPoint], end: datetime, window: timedelta) -> list[HistoryPoint]:
    start = end - window
    return [point for point in points if start < point.sampled_at <= end]


def depth_chart(
    points: Sequence[HistoryPoint], end: datetime, window: timedelta = timedelta(hours=1)
) -> Chart:
    """Queue depth (scheduled + ready + running) of each queue over the
    ``window`` before ``end``, one line per queue. A queue missing from a
    sample had no jobs then (the history writes no row of zeros twice)."""
    shown = _window(points, end, window)
    samples = sorted({point.sampled_at for point in shown})
    queues = sorted({point.queue for point in shown})
    depth = {(point.sampled_at, point.queue): point.depth for point in shown}
    frame = Frame(end - window, end, nice_maximum(max(depth.values(), default=0)))
    lines = []
    for index, queue in enumerate(queues):
        coordinates = " ".join(
            f"{frame.x(moment)},{frame.y(depth.get((moment, queue), 0))}" for moment in samples
        )
        lines.append(Line(queue, coordinates, f"series-{index % SERIES_CLASSES}"))
    return Chart(
        "Queue depth (scheduled + ready + running)",
        frame,
        _y_ticks(frame),
        _x_ticks(frame),
        lines,
        [],
        not shown,
    )


def throughput_chart(
    points: Sequence[HistoryPoint], end: datetime, window: timedelta = timedelta(hours=1)
) -> Chart:
    """Jobs finished per sample (about a minute) over the ``window`` before
    ``end``, every queue summed: completed below, failed stacked on top."""
    shown = _window(points, end, window)
    completed: dict[datetime, int] = {}
    failed: dict[datetime, int] = {}
    for point in shown:
        completed[point.sampled_at] = completed.get(point.sampled_at, 0) + point.completed
        failed[point.sampled_at] = failed.get(point.sampled_at, 0) + point.failed
    totals = [completed[moment] + failed[moment] for moment in completed]
    frame = Frame(end - window, end, nice_maximum(max(totals, default=0)))
    slot = (frame.right - frame.left) / max(window.total_seconds() / 60, 1)
    width = round(max(slot * 0.7, 1.0), 1)
    bars = []
    for moment in sorted(completed):
        x = round(frame.x(moment) - width, 1)
        done_top = frame.y(completed[moment])
        failed_top = frame.y(completed[moment] + failed[moment])
        label = moment.strftime("%H:%M")
        if completed[moment]:
            bars.append(
                Bar(
                    x,
                    done_top,
                    width,
                    round(frame.bottom - done_top, 1),
                    "completed",
                    f"{label}: {completed[moment]} completed",
                )
            )
        if failed[moment]:
            bars.append(
                Bar(
                    x,
                    failed_top,
                    width,
                    round(done_top - failed_top, 1),
                    "failed",
                    f"{label}: {failed[moment]} failed",
                )
            )
    return Chart(
        "Throughput (jobs finished per minute)",
        frame,
        _y_ticks(frame),
        _x_ticks(frame),
        [],
        bars,
        not shown,
    )
