"""The results table every part prints: one row per measurement, its target, and met or not."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured number; ``limit`` and ``higher_is_better`` make it a target, met or not."""

    part: str
    metric: str
    value: float
    unit: str
    limit: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        if math.isnan(self.value):
            return "not measured"
        met = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "met" if met else "NOT MET"

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {_number(self.limit)} {self.unit}".rstrip()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _number(value: float) -> str:
    if math.isnan(value):
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: pasted as is into BENCHMARKS.md."""
    header = ("part", "metric", "value", "target", "verdict", "note")
    lines = [[row.part, row.metric, f"{_number(row.value)} {row.unit}".rstrip(), row.target, row.verdict, row.note]
             for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([render(header), render(["-" * w for w in widths]), *(render(line) for line in lines)])
