"""The report reads the durations of core.measures from hand-built rescues whose numbers are
known: the incident starts at a round time and each step ends a round number of minutes later."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rescue.core import report, report_page
from rescue.core.incident import format_time

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
MONTH = timedelta(days=30)


def _rescue(
    name: str,
    *,
    severity: str = "SEV1",
    start: datetime = NOW - timedelta(days=1),
    phase: str = "Completed",
    minutes: dict[str, float] | None = None,
    namespace: str = "shop",
) -> dict[str, Any]:
    """A rescue whose steps end ``minutes`` after the incident's start."""
    at = {step: format_time(start + timedelta(minutes=m)) for step, m in (minutes or {}).items()}
    status: dict[str, Any] = {"phase": phase, "severity": severity, "target": f"{namespace}/api"}
    fields = {
        "detect": "openedAt",
        "triage": "triagedAt",
        "resolve": "recoveredAt",
        "conclude": "concludedAt",
    }
    for step, field in fields.items():
        if step in at:
            status[field] = at[step]
    if "mitigate" in at:
        status["mitigation"] = {"state": "Verified", "appliedAt": at["mitigate"]}
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"severity": severity, "incidentStart": format_time(start)},
        "status": status,
    }


def _summary(built: report.Report, severity: str) -> report.Summary:
    return next(s for s in built.summaries if s.severity == severity)


ALL_STEPS = {"detect": 1, "triage": 2, "mitigate": 10, "resolve": 30, "conclude": 600}


def test_the_mttr_of_a_severity_is_read_from_the_recovery_of_each_rescue() -> None:
    rescues = [
        _rescue("a", minutes={**ALL_STEPS, "resolve": 30}),
        _rescue("b", minutes={**ALL_STEPS, "resolve": 60}),
        _rescue("c", minutes={**ALL_STEPS, "resolve": 90, "mitigate": 40}),
        _rescue("d", minutes={**ALL_STEPS, "resolve": 240}),
    ]
    sev1 = _summary(report.build(rescues, now=NOW, since=MONTH), "SEV1")
    assert (sev1.incidents, sev1.opened, sev1.concluded, sev1.recovered) == (4, 4, 4, 4)
    assert sev1.mttr_mean == (30 + 60 + 90 + 240) * 60 / 4
    assert sev1.mttr_median == 75 * 60
    # Between the third and fourth of four values, 70% of the way.
    assert sev1.mttr_p90 == pytest.approx((90 + 0.7 * 150) * 60)
    assert sev1.mitigate_mean == (10 + 10 + 40 + 10) * 60 / 4
    assert sev1.detect_mean == 60


def test_a_rescue_without_recovery_counts_as_open_but_not_in_the_mttr() -> None:
    rescues = [
        _rescue("recovered", minutes={"detect": 1, "resolve": 20}),
        _rescue("still-firing", phase="Active", minutes={"detect": 2, "triage": 3}),
        _rescue("shelved", phase="Paused", minutes={"detect": 2}),
    ]
    built = report.build(rescues, now=NOW, since=MONTH)
    sev1 = _summary(built, "SEV1")
    assert (sev1.incidents, sev1.opened, sev1.still_open, sev1.recovered) == (3, 3, 2, 1)
    assert sev1.mttr_mean == sev1.mttr_median == sev1.mttr_p90 == 20 * 60
    assert sev1.mitigate_mean is None
    still = next(r for r in built.rows if r.name == "still-firing")
    assert "resolve" not in still.durations
    assert still.durations["triage"] == 180


def test_the_window_starts_exactly_since_before_now() -> None:
    edge = NOW - MONTH
    rescues = [
        _rescue("on-the-edge", start=edge),
        _rescue("a-second-earlier", start=edge - timedelta(seconds=1)),
        _rescue("ahead-of-our-clock", start=NOW + timedelta(seconds=30)),
    ]
    built = report.build(rescues, now=NOW, since=MONTH)
    assert [r.name for r in built.rows] == ["on-the-edge", "ahead-of-our-clock"]
    assert built.since == edge


def test_the_severity_filter_keeps_only_those_severities() -> None:
    rescues = [
        _rescue("one", severity="SEV1", minutes={"resolve": 10}),
        _rescue("two", severity="SEV2", minutes={"resolve": 20}),
        _rescue("three", severity="SEV3", minutes={"resolve": 30}),
    ]
    built = report.build(rescues, now=NOW, since=MONTH, severities=["SEV3", "SEV2"])
    assert [s.severity for s in built.summaries] == ["SEV2", "SEV3"]
    assert {r.name for r in built.rows} == {"two", "three"}
    assert _summary(built, "SEV2").mttr_mean == 1200


def test_the_severity_is_the_one_the_response_acted_on() -> None:
    """Triage raised it to SEV1 after the alert asked for SEV3."""
    rescue = _rescue("raised", severity="SEV1", minutes={"resolve": 5})
    rescue["spec"]["severity"] = "SEV3"
    built = report.build([rescue], now=NOW, since=MONTH)
    assert _summary(built, "SEV1").incidents == 1
    assert _summary(built, "SEV3").incidents == 0


def test_an_empty_cluster_still_lists_every_severity() -> None:
    built = report.build([], now=NOW, since=MONTH)
    assert [s.severity for s in built.summaries] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert all(s.incidents == 0 and s.mttr_mean is None for s in built.summaries)
    table = report.text(built, namespace=None)
    assert "all namespaces" in table
    assert "No rescue's incident started in this window." in table
    sev4 = next(line for line in table.splitlines() if line.startswith("SEV4"))
    assert sev4.split()[:6] == ["SEV4", "0", "0", "0", "0", "0"]
    assert sev4.split()[6:] == ["-"] * 5


def test_a_rescue_without_a_start_is_left_out_and_said_so() -> None:
    undated = {"metadata": {"namespace": "shop", "name": "x"}, "spec": {"severity": "SEV2"}}
    built = report.build([undated], now=NOW, since=MONTH)
    assert built.rows == () and built.undated == 1
    assert "1 rescue(s) left out" in report.text(built, namespace="shop")


def test_the_start_falls_back_to_the_earliest_alert() -> None:
    rescue = _rescue("alerts", minutes={"resolve": 45})
    del rescue["spec"]["incidentStart"]
    start = NOW - timedelta(days=1)
    rescue["spec"]["alerts"] = [
        {"startsAt": format_time(start + timedelta(minutes=5))},
        {"startsAt": format_time(start)},
    ]
    (row,) = report.build([rescue], now=NOW, since=MONTH).rows
    assert row.started == start
    assert row.durations["resolve"] == 45 * 60


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("3600s", 3600), (" 7D ", 7 * 86400)],
)
def test_since_takes_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert report.parse_window(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30", "d", "1.5h", "-3d", "1w", "12h30m", "0d", ""])
def test_a_bad_since_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(report.WindowError) as refused:
        report.parse_window(text)
    assert len(str(refused.value).splitlines()) == 1
    assert repr(text) in str(refused.value)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0 s"),
        (45, "45 s"),
        (725, "12 min 05 s"),
        (3900, "1 h 05 min"),
        (86400 * 2 + 3 * 3600 + 59, "2 d 03 h"),
    ],
)
def test_durations_read_in_their_two_largest_units(seconds: float | None, shown: str) -> None:
    assert report.human(seconds) == shown


def test_the_table_shows_each_rescue_with_its_durations() -> None:
    built = report.build([_rescue("pay", minutes=ALL_STEPS)], now=NOW, since=MONTH)
    lines = report.text(built, namespace="shop").splitlines()
    assert lines[0].startswith("Rescues in namespace shop whose incident started between")
    row = lines[-1]
    assert row.split()[:5] == ["shop", "pay", "SEV1", "Completed", "shop/api"]
    assert row.endswith("10 h 00 min")
    assert "1 min 00 s" in row and "30 min 00 s" in row


def test_the_json_has_stable_keys_and_seconds() -> None:
    built = report.build(
        [_rescue("pay", minutes={"detect": 1, "resolve": 65})], now=NOW, since=MONTH
    )
    document = json.loads(json.dumps(report.as_json(built, namespace="shop")))
    assert set(document) == {"namespace", "since", "until", "severities", "rescues", "undated"}
    assert document["since"] == "2026-11-03T12:00:00Z"
    sev1 = document["severities"][0]
    assert sev1 == {
        "severity": "SEV1",
        "incidents": 1,
        "opened": 1,
        "still_open": 0,
        "concluded": 0,
        "recovered": 1,
        "mttr_mean_seconds": 3900.0,
        "mttr_median_seconds": 3900.0,
        "mttr_p90_seconds": 3900.0,
        "time_to_mitigate_mean_seconds": None,
        "time_to_detect_mean_seconds": 60.0,
    }
    (rescue,) = document["rescues"]
    assert rescue["seconds"] == {
        "detect": 60.0,
        "triage": None,
        "mitigate": None,
        "resolve": 3900.0,
        "conclude": None,
    }


# --- the HTML page ------------------------------------------------------------------------------


def test_the_page_escapes_what_the_cluster_says() -> None:
    hostile = _rescue("x", minutes={"resolve": 30})
    hostile["metadata"]["name"] = '<script>alert("hi")</script>'
    hostile["status"]["target"] = "shop/<img src=x onerror=alert(1)>"
    page = report_page.render(report.build([hostile], now=NOW, since=MONTH), namespace="<ns>")
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt;" in page
    assert "&lt;ns&gt;" in page


def test_the_page_is_self_contained() -> None:
    page = report_page.render(
        report.build([_rescue("a", minutes={"resolve": 30})], now=NOW, since=MONTH),
        namespace=None,
    )
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "@import" not in page and "url(" not in page


def test_the_chart_has_a_bar_per_rescue_coloured_by_severity_and_the_hour_marked() -> None:
    rescues = [
        _rescue("quick", severity="SEV1", minutes={"resolve": 20}),
        _rescue("slow", severity="SEV2", minutes={"resolve": 150}),
        _rescue("open", severity="SEV3", phase="Active", minutes={"detect": 1}),
    ]
    svg = report_page.chart(report.build(rescues, now=NOW, since=MONTH).rows)
    assert svg.count('<g class="bar"') == 3
    bars = re.findall(r'<rect class="duration"[^>]*width="([\d.]+)"[^>]*fill="(#\w+)"', svg)
    assert [colour for _, colour in bars] == [
        report_page.COLOURS["SEV1"],
        report_page.COLOURS["SEV2"],
    ]
    widths = [float(width) for width, _ in bars]
    assert widths[1] == pytest.approx(widths[0] * 150 / 20, rel=0.01)
    assert "not recovered yet" in svg
    assert 'class="one-hour"' in svg
    # The axis reaches past the longest bar, in hours.
    assert ">3 h<" in svg


def test_a_short_window_still_shows_the_hour_for_scale() -> None:
    svg = report_page.chart(
        report.build([_rescue("a", minutes={"resolve": 4})], now=NOW, since=MONTH).rows
    )
    marker = re.search(r'class="one-hour" x1="([\d.]+)"', svg)
    width = re.search(r'<svg [^>]*width="(\d+)"', svg)
    assert marker is not None and width is not None
    assert float(marker.group(1)) < float(width.group(1))


def test_an_empty_page_says_there_is_nothing_to_chart() -> None:
    page = report_page.render(report.build([], now=NOW, since=MONTH), namespace="shop")
    assert "<svg" not in page
    assert "No rescue's incident started in this window." in page
    assert page.count("<tr>") == 5  # the header and the four severities
