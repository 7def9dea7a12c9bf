"""Small inline SVG charts for the HTML report: stacked columns over time and horizontal bars.

Hand-written SVG keeps the report one self-contained file that opens anywhere, offline, with no
script. Every label comes from the audit log and is XML-escaped here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Series:
    name: str
    color: str


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above value (so axis ticks are round numbers)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _fmt(number: float) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:g}M"
    if number >= 10_000:
        return f"{number / 1000:g}k"
    return f"{number:g}"


def legend(series: Sequence[Series]) -> str:
    items = "".join(f'<span class="key"><i style="background:{s.color}"></i>{escape(s.name)}</span>'
                    for s in series)
    return f'<div class="legend">{items}</div>'


def stacked_columns(labels: Sequence[str], values: Sequence[Sequence[int]], series: Sequence[Series],
                    width: int = 960, height: int = 260) -> str:
    """One column per label, its segments stacked in `series` order; y axis with round ticks."""
    left, right, top, bottom = 48, 8, 10, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = nice_ceiling(max((sum(v) for v in values), default=0))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):  # grid lines and y labels at 0, 25, 50, 75, 100 %
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_fmt(peak * i / 4)}</text>')
    count = max(len(labels), 1)
    slot = plot_w / count
    bar = max(slot * 0.8, 1)
    label_every = max(1, math.ceil(count / 12))
    for index, (label, stack) in enumerate(zip(labels, values)):
        x = left + index * slot + (slot - bar) / 2
        y = top + plot_h
        tip = escape(label) + ": " + ", ".join(f"{v} {escape(s.name)}" for s, v in zip(series, stack))
        parts.append(f"<g><title>{tip}</title>")
        for s, value in zip(series, stack):
            if value:
                h = plot_h * value / peak
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{s.color}"/>')
        parts.append("</g>")
        if index % label_every == 0:
            cx = left + index * slot + slot / 2
            parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 16}" class="axis" text-anchor="middle">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def short_label(label: str, max_chars: int) -> str:
    """A label that fits: ServiceAccounts as sa:NS:NAME, and an over-long one keeps its end (the name)."""
    if label.startswith("system:serviceaccount:"):
        label = "sa:" + label[len("system:serviceaccount:"):]
    return label if len(label) <= max_chars else "…" + label[-(max_chars - 1):]


def horizontal_bars(rows: Sequence[tuple[str, Sequence[int]]], series: Sequence[Series], width: int = 460,
                    label_width: int = 200) -> str:
    """One bar per row (label on the left, total on the right), segments stacked in `series` order."""
    row_h, gap = 22, 6
    height = max(len(rows), 1) * (row_h + gap) + 4
    plot_w = width - label_width - 56
    peak = max((sum(v) for _, v in rows), default=0) or 1
    max_chars = label_width // 7  # 12px text is about 6.5px per character
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for index, (label, stack) in enumerate(rows):
        y = 2 + index * (row_h + gap)
        shown = short_label(label, max_chars)
        parts.append(f'<g><title>{escape(label)}: {sum(stack)}</title>')
        parts.append(f'<text x="{label_width - 8}" y="{y + row_h * 0.7:.1f}" class="label" text-anchor="end">'
                     f'{escape(shown)}</text>')
        x = float(label_width)
        for s, value in zip(series, stack):
            if value:
                w = max(plot_w * value / peak, 1.5)
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h}" rx="3" fill="{s.color}"/>')
                x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + row_h * 0.7:.1f}" class="value">{sum(stack):,}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
