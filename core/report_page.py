"""``rescue report --html``: the report as one self-contained page to attach or share.

Everything is inline (styles, and the chart as SVG), so the page opens anywhere without a
network, a script or a font download. Names, targets and every other string read from the
cluster are escaped: a rescue is written by whoever can post alerts, so its text is not trusted.
"""

from __future__ import annotations

import math
from html import escape

from rescue.core.report import (
    ROW_COLUMNS,
    SUMMARY_COLUMNS,
    Report,
    Row,
    heading,
    human,
    row_cells,
    summary_cells,
)

#: Bar colours, the worst severity the most alarming.
COLOURS = {"SEV1": "#c62828", "SEV2": "#ef6c00", "SEV3": "#f9a825", "SEV4": "#607d8b"}
OTHER_COLOUR = "#9e9e9e"
HOUR = 3600.0

#: Chart geometry, in SVG user units.
_LABELS = 280
_PLOT = 600
_BAR = 16
_PITCH = 24
_TOP = 12
_AXIS = 30
_LEGEND = 24

#: Axis steps to choose from: round numbers of minutes, hours and days.
_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #212121; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.3em 0.8em; text-align: left; }
th { background: #f5f5f5; } td.num { text-align: right; }
svg text { font-size: 12px; fill: #424242; }
""".strip()


def _table(header: tuple[str, ...], rows: list[list[str]], *, numeric_from: int) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>'
            if i >= numeric_from
            else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _tick_label(seconds: float) -> str:
    whole = int(seconds)
    if whole == 0:
        return "0"
    if whole % 86400 == 0:
        return f"{whole // 86400} d"
    if whole % 3600 == 0:
        return f"{whole // 3600} h"
    if whole > 3600:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 60} min"


def _axis_end(longest: float) -> tuple[float, float]:
    """The axis's end and step: at least an hour, so the one-hour marker always shows."""
    span = max(longest, HOUR) * 1.05
    step = next((s for s in _STEPS if span / s <= 6), _STEPS[-1])
    return math.ceil(span / step) * step, float(step)


def chart(rows: tuple[Row, ...]) -> str:
    """Time to resolve per rescue: one horizontal bar each, coloured by severity, with the
    one-hour mark; a rescue not yet recovered has its row but no bar."""
    resolved = [r.durations["resolve"] for r in rows if "resolve" in r.durations]
    end, step = _axis_end(max(resolved, default=0.0))
    base = _TOP + len(rows) * _PITCH + 4
    height = base + _AXIS + _LEGEND
    width = _LABELS + _PLOT + 20

    def x(seconds: float) -> float:
        return _LABELS + seconds / end * _PLOT

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Time to resolve per rescue">'
    ]

    for i, row in enumerate(rows):
        top = _TOP + i * _PITCH
        middle = top + _BAR / 2 + 4
        colour = COLOURS.get(row.severity, OTHER_COLOUR)
        name = f"{row.namespace}/{row.name}"
        label = name if len(name) <= 36 else name[:35] + "…"
        parts.append(f'<g class="bar" data-severity="{escape(row.severity)}">')
        seconds = row.durations.get("resolve")
        if seconds is None:
            tip = f"{name} ({row.severity}): not recovered yet"
            parts.append(
                f'<text x="{_LABELS + 6}" y="{middle}" font-style="italic">not recovered yet</text>'
            )
        else:
            tip = f"{name} ({row.severity}): recovered after {human(seconds)}"
            parts.append(
                f'<rect class="duration" x="{_LABELS}" y="{top}" '
                f'width="{max(x(seconds) - _LABELS, 1.0):.1f}" height="{_BAR}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{_LABELS - 8}" y="{middle}" text-anchor="end">{escape(label)}</text>'
            f"<title>{escape(tip)}</title></g>"
        )

    # The axis, its ticks, the one-hour marker, and the legend under them.
    parts.append(
        f'<line x1="{_LABELS}" y1="{base}" x2="{_LABELS + _PLOT}" y2="{base}" stroke="#757575"/>'
    )
    tick = 0.0
    while tick <= end:
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{base}" x2="{x(tick):.1f}" y2="{base + 5}" '
            'stroke="#757575"/>'
            f'<text x="{x(tick):.1f}" y="{base + 18}" text-anchor="middle">'
            f"{_tick_label(tick)}</text>"
        )
        tick += step
    parts.append(
        f'<line class="one-hour" x1="{x(HOUR):.1f}" y1="{_TOP - 8}" x2="{x(HOUR):.1f}" '
        f'y2="{base}" stroke="#212121" stroke-dasharray="4 3"/>'
    )
    legend_y = base + _AXIS
    for i, (severity, colour) in enumerate(COLOURS.items()):
        left = _LABELS + i * 70
        parts.append(
            f'<rect x="{left}" y="{legend_y}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 16}" y="{legend_y + 10}">{severity}</text>'
        )
    parts.append(
        f'<text x="{_LABELS + 4 * 70 + 10}" y="{legend_y + 10}">dashed line: one hour</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def render(report: Report, *, namespace: str | None) -> str:
    """The whole page: the summary by severity, the chart, and one table row per rescue."""
    summary = _table(SUMMARY_COLUMNS, [summary_cells(s) for s in report.summaries], numeric_from=1)
    if report.rows:
        per_rescue = (
            f"<h2>Time to resolve per rescue</h2>\n{chart(report.rows)}\n<h2>Rescues</h2>\n"
            + _table(ROW_COLUMNS, [row_cells(r) for r in report.rows], numeric_from=6)
        )
    else:
        per_rescue = "<p>No rescue's incident started in this window.</p>"
    undated = (
        f"<p>{report.undated} rescue(s) left out: their record has no start time.</p>"
        if report.undated
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Rescue report</title>
<style>
{_STYLE}
</style>
</head>
<body>
<h1>Incident response report</h1>
<p>{escape(heading(report, namespace=namespace))} Durations run from the incident's start (its
first alert firing) to the moment each step ended; MTTR is the time to verified recovery.</p>
<h2>By severity</h2>
{summary}
{per_rescue}
{undated}
</body>
</html>
"""
