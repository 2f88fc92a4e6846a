"""The step durations and countable outcomes read from a rescue's record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rescue.core import measures

START = "2026-12-03T10:00:00Z"


def _spec(**extra: Any) -> dict[str, Any]:
    return {"severity": "SEV2", "incidentStart": START, **extra}


def test_each_duration_runs_from_the_incident_start_to_its_recorded_moment() -> None:
    status = {
        "severity": "SEV1",
        "openedAt": "2026-12-03T10:00:30Z",
        "triagedAt": "2026-12-03T10:00:30Z",
        "mitigation": {"appliedAt": "2026-12-03T10:04:00Z"},
        "recoveredAt": "2026-12-03T10:09:00Z",
        "concludedAt": "2026-12-04T10:00:00Z",
    }
    assert measures.durations(_spec(), status) == {
        "detect": 30.0,
        "triage": 30.0,
        "mitigate": 240.0,
        "resolve": 540.0,
        "conclude": 86400.0,
    }


def test_a_duration_appears_only_once_its_moment_is_recorded() -> None:
    assert measures.durations(_spec(), {"openedAt": "2026-12-03T10:01:00Z"}) == {"detect": 60.0}
    assert measures.durations(_spec(), {}) == {}


def test_without_incident_start_the_earliest_alert_start_is_used() -> None:
    spec = {
        "alerts": [
            {"startsAt": "2026-12-03T10:05:00Z"},
            {"startsAt": "2026-12-03T09:59:00Z"},
        ]
    }
    assert measures.durations(spec, {"openedAt": "2026-12-03T10:00:00Z"}) == {"detect": 60.0}


def test_a_moment_before_the_start_counts_as_zero_not_negative() -> None:
    assert measures.durations(_spec(), {"openedAt": "2026-12-03T09:59:00Z"}) == {"detect": 0.0}


def test_one_hour_is_a_bucket_edge_and_a_day_the_last() -> None:
    assert 3600.0 in measures.BUCKETS
    assert measures.BUCKETS[-1] == 86400.0
    assert list(measures.BUCKETS) == sorted(measures.BUCKETS)


@pytest.mark.parametrize(
    ("state", "concluded", "outcome"),
    [
        ("Verified", False, "applied"),
        ("Unverified", False, "ineffective"),
        ("Failed", False, "failed"),
        ("NoRegression", False, "not_a_regression"),
        ("Rejected", False, "proposed_only"),
        ("Proposed", True, "proposed_only"),
        ("PullRequestOpen", True, "proposed_only"),
        ("Proposed", False, None),
        ("Committed", False, None),
        ("NotApplicable", True, None),
    ],
)
def test_mitigation_outcomes_count_once_final(
    state: str, concluded: bool, outcome: str | None
) -> None:
    status: dict[str, Any] = {"mitigation": {"state": state, "strategy": "scale"}}
    if concluded:
        status["concludedAt"] = "2026-12-03T11:00:00Z"
    found = measures.outcomes(status).get("mitigation")
    assert found == (("scale", outcome) if outcome else None)


def test_outcomes_name_opening_conclusion_gates_and_escalations() -> None:
    status = {
        "severity": "SEV1",
        "openedAt": START,
        "concludedAt": START,
        "escalatedTo": "design",
        "mitigation": {
            "state": "Unverified",
            "gatesHeld": ["min_firing", "cooldown"],
            "escalatedTo": "design",
        },
    }
    assert measures.outcomes(status) == {
        "opened": ("SEV1",),
        "concluded": ("SEV1",),
        "mitigation": ("rollback", "ineffective"),
        "gate:min_firing": ("min_firing",),
        "gate:cooldown": ("cooldown",),
        "escalation:mitigation": ("design",),
        "escalation:recurring": ("design",),
    }


def test_open_for_counts_only_open_rescues() -> None:
    now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    assert measures.open_for({"phase": "Active", "openedAt": START}, now) == 3600.0
    assert measures.open_for({"phase": "Paused", "openedAt": START}, now) == 3600.0
    assert measures.open_for({"phase": "Completed", "openedAt": START}, now) is None
    assert measures.open_for({"phase": "Pending"}, now) is None
