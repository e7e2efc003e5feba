"""Small server-rendered SVG charts: a line chart and a stacked bar chart, with axes, labels and a tooltip
(`<title>`) on each data point. No script and nothing fetched: the page works offline and in any browser.

Every data point is one element of class `point` (a bar segment, a dot), so a test can count them. Every
text is escaped here: labels come from the store (a skip reason, a field name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 26
PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#78716c"]


@dataclass(frozen=True)
class Line:
    name: str
    values: Sequence[float | None]  # one per x label; None: no point there


@dataclass(frozen=True)
class Stack:
    name: str
    values: Sequence[float]  # one per x label


def _ticks(top: float) -> list[float]:
    """Round values from 0 to at least `top` for the y axis (about four steps)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10, 20) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 6))
    return ticks


def _number(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


class _Frame:
    """The plot area, its axes and grid; maps (index, value) to pixels."""

    def __init__(self, labels: Sequence[str], top: float, percent: bool):
        self.labels, self.percent = list(labels), percent
        self.ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if percent else _ticks(top)
        self.top = self.ticks[-1] or 1.0
        self.plot_w, self.plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.slot = self.plot_w / max(1, len(self.labels))

    def x(self, index: int) -> float:
        return LEFT + self.slot * (index + 0.5)

    def y(self, value: float) -> float:
        return TOP + self.plot_h * (1 - min(value, self.top) / self.top)

    def axes(self, y_title: str) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
            parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f"{escape(_number(tick, self.percent))}</text>")  # fmt: skip
        every = max(1, len(self.labels) // 10)  # at most ten x labels: the rest are in the tooltips
        for index, label in enumerate(self.labels):
            if index % every == 0 or index == len(self.labels) - 1:
                parts.append(f'<text class="tick" x="{self.x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                             f'text-anchor="middle">{escape(label)}</text>')  # fmt: skip
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + self.plot_h}" x2="{WIDTH - RIGHT}" '
                     f'y2="{TOP + self.plot_h}"/>')  # fmt: skip
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + self.plot_h}"/>')
        parts.append(f'<text class="axis-title" x="12" y="{TOP + self.plot_h / 2:.1f}" '
                     f'transform="rotate(-90 12 {TOP + self.plot_h / 2:.1f})" text-anchor="middle">'
                     f"{escape(y_title)}</text>")  # fmt: skip
        return parts


def _legend(names: Sequence[str]) -> str:
    """The series' names and colours, as HTML under the chart: it wraps however long the names are."""
    items = "".join(f'<span><i style="background:{PALETTE[index % len(PALETTE)]}"></i>{escape(name)}</span>'
                    for index, name in enumerate(names))  # fmt: skip
    return f'<div class="legend">{items}</div>'


def _svg(title: str, parts: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')  # fmt: skip


def empty(title: str, why: str) -> str:
    """A chart with nothing to draw yet, saying why (no points)."""
    return _svg(title, [f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
                        f"{escape(why)}</text>"])  # fmt: skip


def line_chart(title: str, labels: Sequence[str], lines: Sequence[Line], *, y_title: str = "",
               percent: bool = False, unit: str = "") -> str:  # fmt: skip
    """One line per series over the x labels; each value a dot with its tooltip."""
    values = [v for line in lines for v in line.values if v is not None]
    if not values:
        return empty(title, "no data yet")
    frame = _Frame(labels, max(values), percent)
    parts = frame.axes(y_title)
    for index, line in enumerate(lines):
        color = PALETTE[index % len(PALETTE)]
        known = [(i, v) for i, v in enumerate(line.values) if v is not None]
        if len(known) > 1:
            path = " ".join(f"{frame.x(i):.1f},{frame.y(v):.1f}" for i, v in known)
            parts.append(f'<polyline class="line" points="{path}" fill="none" stroke="{color}"/>')
        for i, v in known:
            tip = f"{line.name} · {labels[i]}: {_number(v, percent)}{unit}"
            parts.append(f'<circle class="point" cx="{frame.x(i):.1f}" cy="{frame.y(v):.1f}" r="4" '
                         f'fill="{color}"><title>{escape(tip)}</title></circle>')  # fmt: skip
    return _svg(title, parts) + _legend([line.name for line in lines])


def bar_chart(title: str, labels: Sequence[str], stacks: Sequence[Stack], *, y_title: str = "",
              unit: str = "") -> str:  # fmt: skip
    """Stacked bars, one per x label; each non-zero segment a point with its tooltip."""
    totals = [sum(stack.values[i] for stack in stacks) for i in range(len(labels))]
    if not labels or not stacks:
        return empty(title, "no data yet")
    frame = _Frame(labels, max(totals) if totals else 0, False)
    parts = frame.axes(y_title)
    width = min(40.0, frame.slot * 0.6)
    for i, label in enumerate(labels):
        base = 0.0
        for index, stack in enumerate(stacks):
            value = stack.values[i]
            if value <= 0 and not (totals[i] == 0 and index == 0):
                continue
            top = frame.y(base + value)
            height = max(frame.y(base) - top, 1.0)  # a zero still shows, as a hairline on the axis
            tip = f"{stack.name} · {label}: {_number(value, False)}{unit}"
            parts.append(f'<rect class="point" x="{frame.x(i) - width / 2:.1f}" y="{top if value > 0 else top - 1:.1f}" '
                         f'width="{width:.1f}" height="{height:.1f}" fill="{PALETTE[index % len(PALETTE)]}">'
                         f"<title>{escape(tip)}</title></rect>")  # fmt: skip
            base += value
    return _svg(title, parts) + _legend([stack.name for stack in stacks])
