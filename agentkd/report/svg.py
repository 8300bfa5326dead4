"""A very small SVG chart kit: axes with round ticks, lines, points with error bars, grouped bars.

Charts are strings of inline SVG (no script, no external asset), so a report's plots show in any browser,
with JavaScript off, and in the page source. Every mark carries a <title>: hovering shows its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable, Sequence

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0")
TEACHER_COLOUR = "#222222"

W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 30, 46, 48


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks: list[float] = []
    value = first
    while value < hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    return ticks


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def fmt_percent(value: float) -> str:
    return f"{value:.0%}"


def fmt_usd(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.2g}"


@dataclass
class Chart:
    """One plot area: data ranges mapped onto a fixed viewBox; marks are appended as SVG strings."""

    title: str
    x_label: str
    y_label: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    x_format: Callable[[float], str] = fmt_number
    y_format: Callable[[float], str] = fmt_number
    x_ticks: Sequence[float] | None = None
    y_ticks: Sequence[float] | None = None
    x_tick_labels: Sequence[str] | None = None
    kind: str = "chart"
    marks: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)
    """(label, colour, shape: line | dot | box)"""

    def __post_init__(self) -> None:
        if self.x_ticks is None:
            self.x_ticks = nice_ticks(*self.x_range)
            self.x_range = (min(self.x_range[0], self.x_ticks[0]), max(self.x_range[1], self.x_ticks[-1]))
        if self.y_ticks is None:
            self.y_ticks = nice_ticks(*self.y_range)
            self.y_range = (min(self.y_range[0], self.y_ticks[0]), max(self.y_range[1], self.y_ticks[-1]))

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        return LEFT + (value - lo) / ((hi - lo) or 1.0) * (W - LEFT - RIGHT)

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        return H - BOTTOM - (value - lo) / ((hi - lo) or 1.0) * (H - TOP - BOTTOM)

    def add(self, svg: str) -> None:
        self.marks.append(svg)

    def polyline(self, points: Sequence[tuple[float, float]], colour: str, label: str, *, dashed: bool = False,
                 dots: bool = True, tips: Sequence[str] | None = None) -> None:
        path = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.add(f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                 f"<title>{escape(label)}</title></polyline>")
        if dots:
            for n, (px, py) in enumerate(points):
                tip = tips[n] if tips else f"{label}: {self.x_format(px)}, {self.y_format(py)}"
                self.add(f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="3.5" fill="{colour}">'
                         f"<title>{escape(tip)}</title></circle>")
        self.legend.append((label, colour, "line"))

    def render(self) -> str:
        x0, x1, y0, y1 = LEFT, W - RIGHT, TOP, H - BOTTOM
        parts = [(f'<svg class="plot" data-plot="{escape(self.kind)}" viewBox="0 0 {W} {H}" role="img" '
                  f'aria-label="{escape(self.title)}" xmlns="http://www.w3.org/2000/svg">'),
                 f'<text class="title" x="{LEFT}" y="16">{escape(self.title)}</text>']
        for n, value in enumerate(self.y_ticks or []):
            py = self.y(value)
            parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{py:.1f}" y2="{py:.1f}"/>'
                         f'<text class="tick" x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end">{escape(self.y_format(value))}</text>')
        labels = self.x_tick_labels or [self.x_format(v) for v in (self.x_ticks or [])]
        for value, label in zip(self.x_ticks or [], labels):
            px = self.x(value)
            parts.append(f'<line class="tickmark" x1="{px:.1f}" x2="{px:.1f}" y1="{y1}" y2="{y1 + 4}"/>'
                         f'<text class="tick" x="{px:.1f}" y="{y1 + 17}" text-anchor="middle">{escape(label)}</text>')
        parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}"/>'
                     f'<line class="axis" x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}"/>')
        parts.append(f'<text class="label" x="{(x0 + x1) / 2:.0f}" y="{H - 8}" text-anchor="middle">{escape(self.x_label)}</text>'
                     f'<text class="label" transform="translate(14 {(y0 + y1) / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle">{escape(self.y_label)}</text>')
        parts.extend(self.marks)
        parts.append(self._legend())
        parts.append("</svg>")
        return "".join(parts)

    def _legend(self) -> str:
        """One row under the title, left to right (a legend only when there are two entries or more)."""
        if len(self.legend) < 2:
            return ""
        out, px = [], float(LEFT)
        for label, colour, shape in self.legend:
            if shape == "line":
                swatch = f'<line x1="{px:.0f}" x2="{px + 16:.0f}" y1="31" y2="31" stroke="{colour}" stroke-width="2"/>'
            else:
                swatch = f'<rect x="{px:.0f}" y="25" width="12" height="12" fill="{colour}"/>'
            out.append(f'<g class="legend-item">{swatch}<text class="legend" x="{px + 20:.0f}" y="35">{escape(label)}</text></g>')
            px += 28 + 6.2 * len(label)
        return "".join(out)


def colour(n: int) -> str:
    return PALETTE[n % len(PALETTE)]
