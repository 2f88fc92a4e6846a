"""Every figure beside the baseline it should be compared with, in the terminal and in Markdown.

A figure alone invites the wrong reading (is 60 notifications per second fast on two cores?),
so each row carries its baseline, the ratio between the two, and the target it is held to with
whether it was met. The same rows go to the JSON record and to the README.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    part: str
    figure: str
    value: float
    unit: str  # "/s", "ms", "s", "MiB" or "" (a count)
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None  # None: no target, or not measurable at this size
    runs: int = 1  # how many runs the value is the median of

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or math.isnan(self.value):
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        fields = {k: v for k, v in data.items() if k != "ratio"}
        return cls(**fields)


def number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "/s":
        return f"{value:,.1f}/s"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "%":
        return f"{value:+.1f}%"
    return f"{value:,.0f}"


def _cells(row: Row) -> list[str]:
    baseline = number(row.baseline, row.unit)
    if row.baseline_label:
        baseline = f"{baseline} ({row.baseline_label})"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
    state = {True: "met", False: "MISSED", None: ""}[row.met]
    target = f"{row.target}: {state}" if row.target and state else row.target
    runs = f"{row.runs}" if row.runs > 1 else ""
    return [row.figure, number(row.value, row.unit), baseline, ratio, target, runs]


HEADER = ["figure", "value", "baseline", "ratio", "target", "runs"]


def table(rows: Sequence[Row]) -> str:
    """A plain-text table, one section per part."""
    cells = [_cells(row) for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(HEADER)]

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [
            v.rjust(w) if i < 3 else v.ljust(w)
            for i, (v, w) in enumerate(zip(values[1:], widths[1:], strict=True), start=1)
        ]
        return "  ".join(parts).rstrip()

    out = [line(HEADER), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    part = None
    for row, values in zip(rows, cells, strict=True):
        if row.part != part:
            part = row.part
            out.append(f"[{part}]")
        out.append(line(values))
    return "\n".join(out)


def markdown(rows: Sequence[Row]) -> str:
    out = ["| part | figure | value | baseline | ratio | target |", "|---|---|---|---|---|---|"]
    for row in rows:
        figure, value, baseline, ratio, target, runs = _cells(row)
        if runs:
            figure += f" (median of {runs})"
        out.append(f"| {row.part} | {figure} | {value} | {baseline} | {ratio} | {target} |")
    return "\n".join(out)


@dataclass
class PartResult:
    """What one part of the benchmark hands back: its rows and everything behind them."""

    name: str
    rows: list[Row]
    details: dict[str, Any]
