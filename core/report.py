"""``rescue report``: how fast the incidents of a period were handled, read from the rescues.

Prometheus keeps the same durations as histograms, but only from the day it started scraping
and at the precision of its buckets. The rescues themselves hold every moment exactly, so this
report can answer "what was our MTTR for SEV1 last month?" on any cluster, from the record alone.

The durations are ``core.measures``'s, so the report and the dashboards agree on what each
number means. A rescue belongs to the window when its incident started within it; every figure
of a severity (opened, concluded, still open, the means and percentiles) is about those rescues.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rescue.core import measures
from rescue.core.incident import format_time
from rescue.core.model import Severity

#: Units ``--since`` accepts, in seconds.
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_WINDOW = re.compile(r"(\d+)([dhms])")


class WindowError(ValueError):
    """A ``--since`` value that is not a positive whole number of days, hours, minutes or
    seconds."""


def parse_window(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or ``3600s`` as a duration."""
    found = _WINDOW.fullmatch(text.strip().lower())
    if found is None:
        raise WindowError(
            f"{text!r} is not a duration; write a whole number and a unit, "
            "as in 30d, 12h, 90m or 3600s"
        )
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds == 0:
        raise WindowError(f"{text!r} is an empty window; give a duration above zero")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Row:
    """One rescue of the window, with the durations its record holds so far."""

    namespace: str
    name: str
    severity: str
    phase: str
    still_open: bool
    target: str
    started: datetime
    durations: Mapping[str, float]


@dataclass(frozen=True)
class Summary:
    """The figures of one severity; a mean or percentile is None when no rescue got there."""

    severity: str
    incidents: int
    opened: int
    concluded: int
    still_open: int
    recovered: int
    mttr_mean: float | None
    mttr_median: float | None
    mttr_p90: float | None
    mitigate_mean: float | None
    detect_mean: float | None


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    summaries: tuple[Summary, ...]
    rows: tuple[Row, ...]
    #: Rescues left out because their record says nothing about when the incident started.
    undated: int


def build(
    rescues: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    since: timedelta,
    severities: Collection[str] = (),
) -> Report:
    """The report over the rescues whose incident started in ``since`` before ``now``.

    ``severities`` keeps only those; empty keeps all. SEV1 to SEV4 are always summarised,
    with zero incidents when none occurred.
    """
    start_of_window = now - since
    rows: list[Row] = []
    undated = 0
    for body in rescues:
        spec, status = body.get("spec") or {}, body.get("status") or {}
        severity = measures.severity_of(spec, status)
        if severities and severity not in severities:
            continue
        started = measures.incident_start(spec, status)
        if started is None:
            undated += 1
            continue
        # A start after ``now`` (clocks apart) still belongs to the window.
        if started < start_of_window:
            continue
        meta = body.get("metadata") or {}
        rows.append(
            Row(
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                severity=severity,
                phase=str(status.get("phase") or "-"),
                still_open=measures.is_open(status),
                target=_target(spec, status),
                started=started,
                durations=measures.durations(spec, status),
            )
        )
    rows.sort(key=lambda r: (r.started, r.namespace, r.name))

    shown = [s.value for s in Severity if not severities or s.value in severities]
    shown += sorted({r.severity for r in rows} - set(shown))
    summaries = tuple(
        _summary(severity, [r for r in rows if r.severity == severity]) for severity in shown
    )
    return Report(
        since=start_of_window,
        until=now,
        summaries=summaries,
        rows=tuple(rows),
        undated=undated,
    )


def _target(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    if status.get("target"):
        return str(status["target"])
    target = spec.get("target") or {}
    if target.get("name"):
        return f"{target.get('namespace') or '-'}/{target['name']}"
    return "-"


def _summary(severity: str, rows: list[Row]) -> Summary:
    def taken(step: str) -> list[float]:
        return sorted(r.durations[step] for r in rows if step in r.durations)

    resolve = taken("resolve")
    return Summary(
        severity=severity,
        incidents=len(rows),
        # A rescue opened, concluded or recovered exactly when its step has a duration.
        opened=len(taken("detect")),
        concluded=len(taken("conclude")),
        still_open=sum(1 for r in rows if r.still_open),
        recovered=len(resolve),
        mttr_mean=_mean(resolve),
        mttr_median=quantile(resolve, 0.5),
        mttr_p90=quantile(resolve, 0.9),
        mitigate_mean=_mean(taken("mitigate")),
        detect_mean=_mean(taken("detect")),
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def quantile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values, interpolating between the two nearest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- for people and for scripts ----------------------------------------------------------------


def human(seconds: float | None) -> str:
    """A duration in its two largest units, as in ``45 s``, ``12 min 05 s``, ``1 h 05 min``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def heading(report: Report, *, namespace: str | None) -> str:
    where = f"namespace {namespace}" if namespace else "all namespaces"
    return (
        f"Rescues in {where} whose incident started between {clock(report.since)} "
        f"and {clock(report.until)} UTC."
    )


SUMMARY_COLUMNS = (
    "SEVERITY",
    "INCIDENTS",
    "OPENED",
    "STILL OPEN",
    "CONCLUDED",
    "RECOVERED",
    "MTTR MEAN",
    "MTTR MEDIAN",
    "MTTR P90",
    "TO MITIGATE (MEAN)",
    "TO DETECT (MEAN)",
)
ROW_COLUMNS = (
    "NAMESPACE",
    "NAME",
    "SEVERITY",
    "PHASE",
    "TARGET",
    "STARTED (UTC)",
    *(step.upper() for step in measures.STEPS),
)


def summary_cells(summary: Summary) -> list[str]:
    return [
        summary.severity,
        str(summary.incidents),
        str(summary.opened),
        str(summary.still_open),
        str(summary.concluded),
        str(summary.recovered),
        human(summary.mttr_mean),
        human(summary.mttr_median),
        human(summary.mttr_p90),
        human(summary.mitigate_mean),
        human(summary.detect_mean),
    ]


def row_cells(row: Row) -> list[str]:
    return [
        row.namespace,
        row.name,
        row.severity,
        row.phase,
        row.target,
        clock(row.started),
        *(human(row.durations.get(step)) for step in measures.STEPS),
    ]


def _columns(header: Iterable[str], rows: list[list[str]]) -> str:
    lines = [list(header), *rows]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def text(report: Report, *, namespace: str | None) -> str:
    """The report as a terminal shows it: the severities, then one line per rescue."""
    parts = [
        heading(report, namespace=namespace),
        "",
        _columns(SUMMARY_COLUMNS, [summary_cells(s) for s in report.summaries]),
        "",
    ]
    if report.rows:
        parts.append(_columns(ROW_COLUMNS, [row_cells(r) for r in report.rows]))
    else:
        parts.append("No rescue's incident started in this window.")
    if report.undated:
        parts += ["", f"{report.undated} rescue(s) left out: their record has no start time."]
    return "\n".join(parts)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def as_json(report: Report, *, namespace: str | None) -> dict[str, Any]:
    """The report for scripts. The keys are stable; durations are in seconds, null when no
    rescue got there; times are RFC 3339 in UTC."""
    return {
        "namespace": namespace,
        "since": format_time(report.since),
        "until": format_time(report.until),
        "severities": [
            {
                "severity": s.severity,
                "incidents": s.incidents,
                "opened": s.opened,
                "still_open": s.still_open,
                "concluded": s.concluded,
                "recovered": s.recovered,
                "mttr_mean_seconds": _seconds(s.mttr_mean),
                "mttr_median_seconds": _seconds(s.mttr_median),
                "mttr_p90_seconds": _seconds(s.mttr_p90),
                "time_to_mitigate_mean_seconds": _seconds(s.mitigate_mean),
                "time_to_detect_mean_seconds": _seconds(s.detect_mean),
            }
            for s in report.summaries
        ],
        "rescues": [
            {
                "namespace": r.namespace,
                "name": r.name,
                "severity": r.severity,
                "phase": r.phase,
                "target": r.target,
                "started": format_time(r.started),
                "seconds": {step: _seconds(r.durations.get(step)) for step in measures.STEPS},
            }
            for r in report.rows
        ],
        "undated": report.undated,
    }
