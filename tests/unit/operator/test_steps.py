"""The steps after Mitigate: Diagnose ends with a root cause, Resolve with a verified resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rescue.operator.lifecycle import Decision, walk

NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
DIAGNOSIS = {"rootCause": "pool too small", "category": "capacity"}
FIX = {"fix": "pool size from config"}


def _status(step: str, **extra: Any) -> dict[str, Any]:
    return {
        "phase": "Active",
        "step": step,
        "timeline": [{"at": "2026-12-03T09:00:00Z", "event": "rescue_detected", "message": "."}],
        "alertsFiring": 0,
        "resolvedAt": "2026-12-03T09:50:00Z",
        "recoveredAt": "2026-12-03T09:50:00Z",
        "mitigation": {"state": "Verified"},
        **extra,
    }


def _walk(status: dict[str, Any], spec: dict[str, Any], at: datetime = NOW) -> Decision:
    return walk(Decision(status=status), spec, now=at, stable_seconds=300)


def test_diagnose_waits_for_the_root_cause() -> None:
    assert _walk(_status("Diagnose"), {}).status["step"] == "Diagnose"


def test_a_recorded_root_cause_starts_resolve_and_a_verified_resolution_starts_review() -> None:
    decision = _walk(_status("Diagnose"), {"diagnosis": DIAGNOSIS, "resolution": FIX})
    assert [e.reason for e in decision.events] == ["step_resolve", "step_review"]
    assert decision.status["step"] == "Review"
    assert decision.status["restoredAt"] == "2026-12-03T10:00:00Z"
    assert "stayed resolved for 10 min 0 s" in decision.events[-1].message


def test_resolve_waits_out_the_stable_period_and_says_how_long() -> None:
    status = _status("Resolve", resolvedAt="2026-12-03T09:58:00Z")
    decision = _walk(status, {"diagnosis": DIAGNOSIS, "resolution": FIX})
    assert decision.status["step"] == "Resolve"
    assert decision.wait == 180
    later = _walk(
        decision.status, {"diagnosis": DIAGNOSIS, "resolution": FIX}, NOW + timedelta(seconds=180)
    )
    assert later.status["step"] == "Review"


def test_resolve_does_not_end_while_an_alert_fires_or_a_mitigation_is_under_way() -> None:
    spec = {"diagnosis": DIAGNOSIS, "resolution": FIX}
    firing = _status("Resolve", alertsFiring=1)
    assert _walk(firing, spec).status["step"] == "Resolve"
    pushing = _status("Resolve", mitigation={"state": "Committed"})
    del pushing["recoveredAt"]
    assert _walk(pushing, spec).status["step"] == "Resolve"


def test_resolve_needs_a_permanent_fix_or_an_escalation() -> None:
    spec = {"diagnosis": DIAGNOSIS}
    assert _walk(_status("Resolve"), spec).status["step"] == "Resolve"
    escalated = _status("Resolve", mitigation={"state": "Unverified", "escalatedTo": "design"})
    decision = _walk(escalated, spec)
    assert decision.status["step"] == "Review"
    assert "the incident was escalated" in decision.events[-1].message


def test_a_shelved_rescue_takes_no_step() -> None:
    paused = _status("Diagnose", phase="Paused")
    assert _walk(paused, {"diagnosis": DIAGNOSIS, "resolution": FIX}).events == []


def test_a_shelved_rescue_still_records_that_service_recovered() -> None:
    paused = _status("Diagnose", phase="Paused")
    del paused["recoveredAt"]
    decision = _walk(paused, {"diagnosis": DIAGNOSIS, "resolution": FIX})
    assert [e.reason for e in decision.events] == ["service_recovered"]
    assert decision.status["recoveredAt"] == "2026-12-03T09:50:00Z"
    assert decision.status["step"] == "Diagnose"


def test_walking_again_decides_nothing_new() -> None:
    spec = {"diagnosis": DIAGNOSIS, "resolution": FIX}
    first = _walk(_status("Diagnose"), spec)
    again = _walk(first.status, spec, NOW + timedelta(hours=1))
    assert again.events == []
    assert again.status == first.status
