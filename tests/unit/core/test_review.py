"""The review is PROCESS.md's template filled from the rescue's record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rescue.core.model import Severity
from rescue.core.review import path_for, render, required

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def _rescue(severity: str = "SEV1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "checkout-down"},
        "spec": {
            "severity": severity,
            "title": "Checkout is failing 12% of requests",
            "incidentStart": "2026-12-03T10:00:00Z",
            "alerts": [{"alertname": "CheckoutErrorRate", "annotations": {}}],
            **spec,
        },
        "status": {
            "target": "shop/checkout",
            "resolvedAt": "2026-12-03T10:42:00Z",
            "timeline": [
                {"at": "2026-12-03T10:00:05Z", "event": "rescue_opened_v1", "message": "Opened."},
                {
                    "at": "2026-12-03T10:01:00Z",
                    "event": "mitigation_committed",
                    "message": "Pushed.",
                },
            ],
            "mitigation": {
                "state": "Verified",
                "strategy": "rollback",
                "commit": "73ab5c6ee981d8d0aa0dda487493ef72379070fe",
                "path": "apps/shop/checkout",
                "suspect": {"commit": "06951d6a497bc3278e", "subject": "Deploy checkout 1.5.0"},
                "lkg": "1b3a127f7db6735c1d18",
            },
        },
    }


@pytest.mark.parametrize(
    ("severity", "kind"),
    [
        (Severity.SEV1, "post-mortem"),
        (Severity.SEV2, "post-mortem"),
        (Severity.SEV3, "brief"),
        (Severity.SEV4, "none"),
    ],
)
def test_what_each_severity_requires(severity: Severity, kind: str) -> None:
    assert required(severity) == kind


def test_a_sev1_review_has_every_section_of_the_template_in_order() -> None:
    text = render(_rescue(), now=NOW)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "## Incident: Checkout is failing 12% of requests",
        "### Timeline",
        "### Root Cause",
        "### Mitigation",
        "### Resolution",
        "### Lessons Learned",
        "### Action Items",
    ]
    assert "**Severity:** SEV1" in text
    assert "**Duration:** 2026-12-03T10:00:00Z to 2026-12-03T10:42:00Z (42 min)" in text
    assert "- 10:01 -- Pushed." in text
    assert "Rollback committed as `73ab5c6ee981` to `apps/shop/checkout`." in text
    assert "Suspect change: `06951d6a497b` (Deploy checkout 1.5.0)" in text


def test_what_people_recorded_fills_root_cause_resolution_lessons_and_items() -> None:
    text = render(
        _rescue(
            diagnosis={"rootCause": "pool too small", "category": "capacity"},
            resolution={"fix": "pool size from config", "commit": "abc1234"},
            review={"lessons": "Load tests must cover the payment flow.", "actionItems": ["b"]},
            conclusion={"requestedAt": "2026-12-03T11:00:00Z", "actionItems": ["a"]},
        ),
        now=NOW,
    )
    assert "pool too small (category: capacity)" in text
    assert "pool size from config (commit `abc1234`)" in text
    assert "Load tests must cover the payment flow." in text
    assert "- What went well" not in text
    assert text.endswith("### Action Items\n- [ ] a\n- [ ] b\n")


def test_what_is_missing_says_how_to_record_it() -> None:
    text = render(_rescue(), now=NOW)
    assert "`rescue diagnose NAME --root-cause ...`" in text
    assert "`rescue resolve NAME --fix ...`" in text
    assert "- [ ] _none listed yet_" in text


def test_a_sev3_write_up_is_brief_and_an_open_incident_says_so() -> None:
    rescue = _rescue("SEV3")
    del rescue["status"]["resolvedAt"]
    text = render(rescue, now=NOW)
    assert "### Timeline" not in text
    assert "### Lessons Learned" not in text
    assert "still open (2 h 0 min so far)" in text


def test_the_review_lives_under_the_policys_directory_by_namespace_and_name() -> None:
    assert path_for("shop", "checkout-1") == "postmortems/shop/checkout-1.md"
    assert path_for("shop", "checkout-1", directory="docs/reviews/") == (
        "docs/reviews/shop/checkout-1.md"
    )
