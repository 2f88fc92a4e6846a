"""The diagnosis aids: links from the alerts, recent changes before the incident, one summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rescue.core.git import Commit
from rescue.operator import diagnosis

START = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def _commit(sha: str, minutes_before: int, subject: str = "Deploy") -> Commit:
    return Commit(
        sha=sha * 40,
        parents=(),
        committed=START - timedelta(minutes=minutes_before),
        author="Dev <dev@example.org>",
        subject=subject,
    )


def test_links_come_from_runbook_and_dashboard_annotations_and_the_generator_url() -> None:
    alerts = [
        {
            "annotations": {
                "runbook_url": "https://runbooks.example.org/checkout",
                "dashboard": "https://grafana.example.org/d/abc",
            },
            "generatorURL": "http://prometheus:9090/graph?g0.expr=errors",
        },
        {"annotations": {"runbook_url": "https://runbooks.example.org/other"}},
    ]
    assert diagnosis.links(alerts, "http://alertmanager:9093") == {
        "runbook": "https://runbooks.example.org/checkout",
        "dashboard": "https://grafana.example.org/d/abc",
        "query": "http://prometheus:9090/graph?g0.expr=errors",
        "alertmanager": "http://alertmanager:9093",
    }


def test_values_that_are_not_web_links_are_left_out() -> None:
    alerts = [{"annotations": {"runbook_url": "javascript:alert(1)"}, "generatorURL": ""}]
    assert diagnosis.links(alerts) == {}


def test_recent_changes_are_those_before_the_incident_within_the_lookback_newest_first() -> None:
    history = [
        _commit("a", -5, "after the incident"),
        _commit("b", 10, "Deploy checkout v2"),
        _commit("c", 120, "Deploy checkout v1"),
        _commit("d", 60 * 24 * 30, "a month ago"),
    ]
    changes = diagnosis.recent_changes(history, incident_start=START, lookback=timedelta(days=7))
    assert [c["subject"] for c in changes] == ["Deploy checkout v2", "Deploy checkout v1"]
    assert changes[0] == {
        "commit": "b" * 12,
        "at": "2026-12-03T09:50:00Z",
        "author": "Dev <dev@example.org>",
        "subject": "Deploy checkout v2",
    }


def test_summary_names_the_latest_change_and_earlier_rescues() -> None:
    aids = {
        "path": "apps/shop/checkout",
        "recentChanges": [
            {"commit": "b" * 12, "author": "Dev", "subject": "Deploy checkout v2", "at": "x"}
        ],
        "related": ["shop/checkout-1", "shop/checkout-2"],
        "links": {"runbook": "https://r"},
    }
    assert diagnosis.summary(aids) == (
        "Diagnosis aids: 1 recent change(s) to the target, latest bbbbbbbbbbbb by Dev: "
        "Deploy checkout v2; seen before in shop/checkout-1, shop/checkout-2; links: runbook."
    )


def test_summary_says_when_nothing_changed_and_the_issue_is_new() -> None:
    aids = {"path": "apps/shop/checkout", "recentChanges": [], "related": [], "links": {}}
    assert diagnosis.summary(aids) == (
        "Diagnosis aids: no change to apps/shop/checkout before the incident; "
        "no earlier rescue of this target or alert."
    )
