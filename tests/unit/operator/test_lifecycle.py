"""The lifecycle as a pure function: reconcile(spec, status) -> new status and Events.

Opening a rescue walks Detect -> Triage -> Mitigate in one reconcile: mitigation comes right
after triage. ``record_mitigation`` folds the Mitigate step's progress into a decision and hands
over to Diagnose when the mitigation is done.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescue.core.incident import format_time
from rescue.core.model import MAX_TIMELINE, LifecycleEvent, Phase, Severity, Step
from rescue.operator.lifecycle import (
    REFUSED,
    Decision,
    Emitted,
    condition,
    reconcile,
    record_mitigation,
)

NOW = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
MUCH_LATER = NOW + timedelta(hours=2)
TARGET = {"kind": "Deployment", "namespace": "shop", "name": "checkout"}


def _alert(
    status: str = "firing", fingerprint: str = "a", name: str = "ErrorRate"
) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "alertname": name,
        "status": status,
        "startsAt": "2026-12-03T09:55:00Z",
        "labels": {"alertname": name},
        "annotations": {},
    }


def _spec(severity: str = "SEV1", *statuses: str, **extra: Any) -> dict[str, Any]:
    """A Rescue spec with one alert per given status (one firing alert by default)."""
    alerts = [_alert(s, fingerprint=f"fp{i}") for i, s in enumerate(statuses or ("firing",))]
    return {"severity": severity, "target": TARGET, "alerts": alerts, **extra}


def _conclusion(**extra: Any) -> dict[str, Any]:
    """A conclusion with the items only conclude can supply: routing and action items."""
    return {
        "requestedAt": format_time(NOW),
        "route": "none",
        "actionItems": ["Alert on pool saturation"],
        **extra,
    }


#: What people record before a rescue can be concluded (root cause, fix, lessons).
READY = {
    "diagnosis": {"rootCause": "pool too small", "category": "capacity"},
    "resolution": {"fix": "pool size from config"},
    "review": {"lessons": "Load tests must cover payments."},
}


def _ready_spec(severity: str = "SEV1", **extra: Any) -> dict[str, Any]:
    return _spec(severity, **READY, **extra)


def _ready(severity: str = "SEV1") -> dict[str, Any]:
    """An Active rescue whose exit checklist is complete but for what conclude brings."""
    status = reconcile(_ready_spec(severity), {}, now=NOW).status
    status["restoredAt"] = format_time(NOW)
    return status


def _reasons(decision: Decision) -> list[str]:
    return [event.reason for event in decision.events]


def _active(severity: str = "SEV1") -> dict[str, Any]:
    return reconcile(_spec(severity), {}, now=NOW).status


def _paused() -> dict[str, Any]:
    return reconcile(_spec(paused=True), _active(), now=NOW).status


def _pending() -> dict[str, Any]:
    return reconcile(_spec("SEV3"), {}, now=NOW).status


def _completed() -> dict[str, Any]:
    return reconcile(_ready_spec(conclusion=_conclusion()), _ready(), now=NOW).status


# --- a new rescue -----------------------------------------------------------------------------


def test_new_low_severity_rescue_is_pending_at_detect() -> None:
    decision = reconcile(_spec("SEV3"), {}, now=NOW)
    assert (decision.status["phase"], decision.status["step"]) == ("Pending", "Detect")
    assert decision.status["detectedAt"] == "2026-12-03T10:00:00Z"
    assert _reasons(decision) == ["rescue_detected"]


def test_detection_event_names_severity_target_and_alerts() -> None:
    decision = reconcile(_spec("SEV3"), {}, now=NOW)
    assert decision.events[0].message == (
        "SEV3 incident detected on Deployment shop/checkout: ErrorRate."
    )


def test_detection_without_alerts_falls_back_to_the_title() -> None:
    spec = {"severity": "SEV4", "title": "Disk almost full"}
    decision = reconcile(spec, {}, now=NOW)
    assert decision.events[0].message == "SEV4 incident detected: Disk almost full."


def test_status_target_is_the_target_reference_or_a_dash() -> None:
    assert reconcile(_spec("SEV3"), {}, now=NOW).status["target"] == "shop/checkout"
    assert reconcile({"severity": "SEV3"}, {}, now=NOW).status["target"] == "-"


@pytest.mark.parametrize("severity", ["SEV1", "SEV2"])
def test_sev1_and_sev2_open_at_once_and_go_through_triage_into_mitigate(severity: str) -> None:
    decision = reconcile(_spec(severity), {}, now=NOW)
    status = decision.status
    assert (status["phase"], status["step"]) == ("Active", "Mitigate")
    assert status["openedAt"] == status["triagedAt"] == "2026-12-03T10:00:00Z"
    assert status["severity"] == severity
    assert _reasons(decision) == [
        "rescue_detected",
        "rescue_opened_v1",
        "step_triage",
        "step_mitigate",
    ]


def test_opening_announces_mitigation_after_triage_with_the_severity() -> None:
    decision = reconcile(_spec("SEV2"), {}, now=NOW)
    triage, mitigate = decision.events[-2:]
    assert triage == Emitted(
        "step_triage", "Triage started at severity SEV2 on Deployment shop/checkout."
    )
    assert mitigate == Emitted(
        "step_mitigate", "Mitigation started for SEV2; diagnosis comes after."
    )
    assert decision.status["timeline"][-1] == {
        "at": "2026-12-03T10:00:00Z",
        "event": "step_mitigate",
        "message": "Mitigation started for SEV2; diagnosis comes after.",
    }


@pytest.mark.parametrize("severity", ["SEV3", "SEV4"])
def test_sev3_and_sev4_stay_pending_without_a_policy(severity: str) -> None:
    status = reconcile(_spec(severity), {}, now=NOW).status
    assert status["phase"] == "Pending"
    assert "openedAt" not in status
    assert "severity" not in status


@pytest.mark.parametrize("severity", ["SEV3", "SEV4"])
def test_policy_opens_a_lower_severity_into_mitigate(severity: str) -> None:
    decision = reconcile(_spec(severity), {}, now=NOW, policy_opens=True)
    assert (decision.status["phase"], decision.status["step"]) == ("Active", "Mitigate")
    opened = next(e for e in decision.events if e.reason == LifecycleEvent.OPENED)
    assert opened.message == f"Rescue opened: {severity} is opened by policy."


def test_pending_rescue_opens_when_a_policy_appears_later() -> None:
    decision = reconcile(_spec("SEV3"), _pending(), now=LATER, policy_opens=True)
    assert (decision.status["phase"], decision.status["step"]) == ("Active", "Mitigate")
    assert decision.status["openedAt"] == format_time(LATER)
    assert decision.status["detectedAt"] == format_time(NOW)


def test_pending_rescue_raised_to_sev2_opens_without_a_retriage() -> None:
    decision = reconcile(_spec("SEV2"), _pending(), now=LATER)
    assert decision.status["phase"] == "Active"
    assert decision.status["severity"] == "SEV2"
    assert _reasons(decision) == ["rescue_opened_v1", "step_triage", "step_mitigate"]


def test_new_rescue_created_paused_opens_and_is_shelved_before_mitigating() -> None:
    decision = reconcile(_spec("SEV1", paused=True), {}, now=NOW)
    assert (decision.status["phase"], decision.status["step"]) == ("Paused", "Triage")
    assert _reasons(decision) == [
        "rescue_detected",
        "rescue_opened_v1",
        "step_triage",
        "rescue_shelved_v1",
    ]


def test_pending_rescue_stays_at_detect_and_does_not_start_mitigation() -> None:
    decision = reconcile(_spec("SEV3"), _pending(), now=LATER)
    assert (decision.status["phase"], decision.status["step"]) == ("Pending", "Detect")
    assert "step_mitigate" not in [e["event"] for e in decision.status["timeline"]]
    assert decision.events == []


# --- rescues recorded at Triage (by an operator from before Mitigate followed Triage) --------


def _at_triage(phase: str) -> dict[str, Any]:
    """A status as the operator recorded it before mitigation followed triage at once."""
    status = _active()
    status["timeline"] = [e for e in status["timeline"] if e["event"] != "step_mitigate"]
    status.update(phase=phase, step="Triage")
    if phase == "Paused":
        status["shelvedAt"] = format_time(NOW)
    if phase == "Completed":
        status["concludedAt"] = format_time(NOW)
    return status


def test_active_rescue_recorded_at_triage_moves_on_to_mitigate() -> None:
    decision = reconcile(_spec(), _at_triage("Active"), now=LATER)
    assert (decision.status["phase"], decision.status["step"]) == ("Active", "Mitigate")
    assert decision.events == [
        Emitted("step_mitigate", "Mitigation started for SEV1; diagnosis comes after.")
    ]
    assert decision.status["timeline"][-1]["at"] == format_time(LATER)


def test_shelved_rescue_recorded_at_triage_stays_at_triage_while_shelved() -> None:
    status = _at_triage("Paused")
    decision = reconcile(_spec(paused=True), status, now=LATER)
    assert decision.status == status
    assert decision.events == []


def test_completed_rescue_recorded_at_triage_never_moves_on_to_mitigate() -> None:
    status = _at_triage("Completed")
    decision = reconcile(_spec(conclusion=_conclusion()), status, now=LATER)
    assert decision.status == status
    assert decision.events == []


def test_resuming_a_rescue_shelved_at_triage_is_a_fixed_point_at_mitigate() -> None:
    first = reconcile(_spec(paused=False), _at_triage("Paused"), now=LATER)
    again = reconcile(_spec(paused=False), first.status, now=MUCH_LATER)
    assert _reasons(first) == ["rescue_resumed_v1", "step_mitigate"]
    assert (first.status["phase"], first.status["step"]) == ("Active", "Mitigate")
    assert again.events == []
    assert again.status == first.status


# --- shelve, resume, conclude -----------------------------------------------------------------


def test_paused_spec_shelves_an_active_rescue() -> None:
    spec = _spec(paused=True, pauseReason="waiting for the vendor", pausedBy="alice")
    decision = reconcile(spec, _active(), now=LATER)
    assert decision.status["phase"] == "Paused"
    assert decision.status["shelvedAt"] == format_time(LATER)
    assert decision.events == [
        Emitted("rescue_shelved_v1", "Rescue shelved: waiting for the vendor.")
    ]
    assert decision.status["timeline"][-1] == {
        "at": format_time(LATER),
        "event": "rescue_shelved_v1",
        "message": "Rescue shelved: waiting for the vendor.",
        "by": "alice",
    }


def test_shelving_without_a_reason_says_so() -> None:
    decision = reconcile(_spec(paused=True), _active(), now=LATER)
    assert decision.events[-1].message == "Rescue shelved: no reason given."


def test_unpaused_spec_resumes_a_paused_rescue() -> None:
    decision = reconcile(_spec(paused=False), _paused(), now=LATER)
    assert decision.status["phase"] == "Active"
    assert "shelvedAt" not in decision.status
    assert _reasons(decision) == ["rescue_resumed_v1"]


def test_conclusion_completes_an_active_rescue() -> None:
    conclusion = _conclusion(requestedBy="bob", summary="rolled back the bad release")
    decision = reconcile(_ready_spec(conclusion=conclusion), _ready(), now=LATER)
    assert decision.status["phase"] == "Completed"
    assert decision.status["concludedAt"] == format_time(LATER)
    assert decision.events == [
        Emitted("rescue_concluded_v1", "Rescue concluded: rolled back the bad release."),
        Emitted("findings_routed", "No findings to route; 1 action item(s) listed."),
    ]
    assert decision.status["timeline"][-2]["by"] == "bob"


def test_conclusion_without_summary_or_requester_says_only_that_it_concluded() -> None:
    decision = reconcile(_ready_spec(conclusion=_conclusion()), _ready(), now=LATER)
    assert decision.events[-2].message == "Rescue concluded."
    assert "by" not in decision.status["timeline"][-2]


def test_phase_changes_follow_only_the_contract_transitions() -> None:
    specs = [
        _ready_spec(),
        _ready_spec(paused=True),
        _ready_spec(paused=False),
        _ready_spec(conclusion=_conclusion()),
    ]
    status: dict[str, Any] = {}
    phases = []
    for minutes, spec in enumerate(specs):
        status = reconcile(spec, status, now=NOW + timedelta(minutes=minutes)).status
        status["restoredAt"] = format_time(NOW)  # the resolution was verified meanwhile
        phases.append(status["phase"])
    assert phases == ["Active", "Paused", "Active", "Completed"]
    assert [e["event"] for e in status["timeline"] if e["event"].endswith("_v1")] == [
        "rescue_opened_v1",
        "rescue_shelved_v1",
        "rescue_resumed_v1",
        "rescue_concluded_v1",
    ]


# --- refused requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "spec", "reason", "phase"),
    [
        pytest.param(
            _pending,
            _spec("SEV3", paused=True),
            "ShelveWhilePending",
            "Pending",
            id="shelve-pending",
        ),
        pytest.param(
            _pending,
            _spec("SEV3", conclusion=_conclusion()),
            "ConcludeWhilePending",
            "Pending",
            id="conclude-pending",
        ),
        pytest.param(
            _paused,
            _spec(paused=True, conclusion=_conclusion()),
            "ConcludeWhileShelved",
            "Paused",
            id="conclude-paused",
        ),
        pytest.param(
            _completed,
            _ready_spec(paused=True, conclusion=_conclusion()),
            "ShelveWhileCompleted",
            "Completed",
            id="shelve-completed",
        ),
    ],
)
def test_impossible_request_is_refused_with_a_condition_and_no_transition(
    status: Any, spec: dict[str, Any], reason: str, phase: str
) -> None:
    decision = reconcile(spec, status(), now=LATER)
    assert decision.status["phase"] == phase
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert (refused["status"], refused["reason"]) == ("True", reason)
    assert refused["message"]
    assert refused["lastTransitionTime"] == format_time(LATER)
    [event] = decision.events
    assert (event.reason, event.type, event.message) == (
        "transition_refused",
        "Warning",
        refused["message"],
    )


def test_shelve_while_pending_is_refused_with_a_condition() -> None:
    decision = reconcile(_spec("SEV3", paused=True), _pending(), now=LATER)
    assert decision.status["phase"] == "Pending"
    assert "shelvedAt" not in decision.status
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["reason"] == "ShelveWhilePending"
    assert "spec.paused" in refused["message"]


def test_conclude_while_paused_is_refused_and_says_to_resume_first() -> None:
    decision = reconcile(_spec(paused=True, conclusion=_conclusion()), _paused(), now=LATER)
    assert decision.status["phase"] == "Paused"
    assert "concludedAt" not in decision.status
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["reason"] == "ConcludeWhileShelved"
    assert "resume" in refused["message"]


def test_shelving_in_the_same_reconcile_as_concluding_is_refused_after_completion() -> None:
    spec = _ready_spec(paused=True, conclusion=_conclusion())
    decision = reconcile(spec, _ready(), now=LATER)
    assert decision.status["phase"] == "Completed"
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["reason"] == "ShelveWhileCompleted"
    assert _reasons(decision) == ["rescue_concluded_v1", "findings_routed", "transition_refused"]


def test_unpausing_a_completed_rescue_changes_nothing() -> None:
    completed = _completed()
    decision = reconcile(_spec(paused=False, conclusion=_conclusion()), completed, now=LATER)
    assert decision.status == completed
    assert decision.events == []


def test_withdrawn_request_clears_the_refusal_without_an_event() -> None:
    refused = reconcile(_spec("SEV3", paused=True), _pending(), now=LATER).status
    decision = reconcile(_spec("SEV3", paused=False), refused, now=MUCH_LATER)
    cleared = condition(decision.status, REFUSED)
    assert cleared == {
        "type": REFUSED,
        "status": "False",
        "reason": "NoRefusal",
        "message": "",
        "lastTransitionTime": format_time(MUCH_LATER),
    }
    assert decision.events == []
    assert not decision.changed


def test_a_different_refusal_replaces_the_reason_and_is_recorded_again() -> None:
    first = reconcile(_spec("SEV3", paused=True), _pending(), now=LATER).status
    spec = _spec("SEV3", paused=True, conclusion=_conclusion())
    decision = reconcile(spec, first, now=MUCH_LATER)
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["reason"] == "ConcludeWhilePending"
    assert refused["lastTransitionTime"] == format_time(LATER)  # it stayed True
    assert _reasons(decision) == ["transition_refused"]
    assert len(decision.status["conditions"]) == 1


def test_a_refusal_is_recorded_again_after_it_was_cleared() -> None:
    refused = reconcile(_spec("SEV3", paused=True), _pending(), now=LATER).status
    cleared = reconcile(_spec("SEV3", paused=False), refused, now=LATER).status
    decision = reconcile(_spec("SEV3", paused=True), cleared, now=MUCH_LATER)
    again = condition(decision.status, REFUSED)
    assert again is not None
    assert (again["status"], again["lastTransitionTime"]) == ("True", format_time(MUCH_LATER))
    assert _reasons(decision) == ["transition_refused"]


def test_resume_is_honoured_while_a_refused_conclusion_is_pending() -> None:
    refused = reconcile(_spec(paused=True, conclusion=_conclusion()), _paused(), now=LATER)
    decision = reconcile(_spec(paused=False, conclusion=_conclusion()), refused.status, now=LATER)
    assert LifecycleEvent.RESUMED.value in _reasons(decision)
    assert decision.status["phase"] != Phase.PAUSED.value


def test_condition_of_a_status_without_it_is_none() -> None:
    assert condition(_active(), REFUSED) is None
    assert condition({}, REFUSED) is None


# --- the fixed point --------------------------------------------------------------------------


_SCENARIOS: dict[str, tuple[Any, dict[str, Any], bool]] = {
    "new-sev1": (dict, _spec("SEV1"), False),
    "new-sev3": (dict, _spec("SEV3"), False),
    "new-sev3-policy": (dict, _spec("SEV3"), True),
    "new-paused": (dict, _spec("SEV2", paused=True), False),
    "shelve": (_active, _spec(paused=True), False),
    "resume": (_paused, _spec(paused=False), False),
    "conclude": (_active, _spec(conclusion=_conclusion()), False),
    "conclude-and-shelve": (_active, _spec(paused=True, conclusion=_conclusion()), False),
    "refuse-shelve-pending": (_pending, _spec("SEV3", paused=True), False),
    "refuse-conclude-pending": (_pending, _spec("SEV3", conclusion=_conclusion()), False),
    "refuse-conclude-paused": (_paused, _spec(paused=True, conclusion=_conclusion()), False),
    "refuse-shelve-completed": (
        _completed,
        _ready_spec(paused=True, conclusion=_conclusion()),
        False,
    ),
    "retriage": (_active, _spec("SEV2"), False),
    "alerts-resolve": (_active, _spec("SEV1", "resolved"), False),
    "alerts-grow": (_active, _spec("SEV1", "firing", "firing"), False),
}


@pytest.mark.parametrize(("start", "spec", "policy"), _SCENARIOS.values(), ids=_SCENARIOS.keys())
def test_reconcile_on_its_own_result_changes_nothing_and_emits_nothing(
    start: Any, spec: dict[str, Any], policy: bool
) -> None:
    # A stable period longer than the wait: recovery, which time alone brings, is tested below.
    year = 365 * 86400
    first = reconcile(spec, start(), now=NOW, policy_opens=policy, stable_seconds=year)
    again = reconcile(spec, first.status, now=MUCH_LATER, policy_opens=policy, stable_seconds=year)
    assert first.changed
    assert again.status == first.status
    assert again.events == []
    assert not again.changed


def test_reconcile_does_not_modify_the_spec_or_status_it_is_given() -> None:
    spec = _spec(paused=True, conclusion=_conclusion())
    status = _active()
    before = (copy.deepcopy(spec), copy.deepcopy(status))
    reconcile(spec, status, now=LATER)
    assert (spec, status) == before


_spec_states = st.fixed_dictionaries(
    {
        "severity": st.sampled_from([s.value for s in Severity]),
        "paused": st.booleans(),
        "conclusion": st.none() | st.just(_conclusion(summary="done")),
        "statuses": st.lists(st.sampled_from(["firing", "resolved"]), max_size=3),
        "policy": st.booleans(),
    }
)


@settings(database=None, deadline=None, max_examples=300)
@given(history=st.lists(_spec_states, min_size=1, max_size=8))
def test_every_reconcile_along_any_history_is_a_fixed_point_of_itself(
    history: list[dict[str, Any]],
) -> None:
    status: dict[str, Any] = {}
    for minute, state in enumerate(history):
        spec = _spec(state["severity"], paused=state["paused"])
        spec["alerts"] = [_alert(s, fingerprint=f"fp{i}") for i, s in enumerate(state["statuses"])]
        if state["conclusion"]:
            spec["conclusion"] = state["conclusion"]
        now = NOW + timedelta(minutes=minute)
        status = reconcile(spec, status, now=now, policy_opens=state["policy"]).status
        again = reconcile(
            spec, status, now=now + timedelta(seconds=30), policy_opens=state["policy"]
        )
        assert again.status == status
        assert again.events == []
        assert status["phase"] in {p.value for p in Phase}
        assert status["step"] in {s.value for s in Step}


@settings(database=None, deadline=None, max_examples=200)
@given(history=st.lists(_spec_states, min_size=1, max_size=8))
def test_an_active_rescue_never_rests_at_triage_along_any_history(
    history: list[dict[str, Any]],
) -> None:
    status: dict[str, Any] = {}
    for minute, state in enumerate(history):
        spec = _spec(state["severity"], paused=state["paused"])
        spec["alerts"] = [_alert(s, fingerprint=f"fp{i}") for i, s in enumerate(state["statuses"])]
        if state["conclusion"]:
            spec["conclusion"] = state["conclusion"]
        now = NOW + timedelta(minutes=minute)
        status = reconcile(spec, status, now=now, policy_opens=state["policy"]).status
        if status["phase"] == "Pending":
            assert status["step"] == "Detect"
        elif status["phase"] == "Active":
            assert status["step"] == "Mitigate"


# --- timeline, alert counts, re-triage --------------------------------------------------------


def test_timeline_is_bounded_and_keeps_the_first_entry() -> None:
    status = _active()
    first = status["timeline"][0]
    filler = [
        {"at": format_time(NOW), "event": "note", "message": str(i)}
        for i in range(MAX_TIMELINE - len(status["timeline"]))
    ]
    status["timeline"] = [*status["timeline"], *filler]
    assert len(status["timeline"]) == MAX_TIMELINE
    second = status["timeline"][1]

    timeline = reconcile(_spec(paused=True), status, now=LATER).status["timeline"]
    assert len(timeline) == MAX_TIMELINE
    assert timeline[0] == first
    assert second not in timeline
    assert timeline[-1]["event"] == "rescue_shelved_v1"


def test_timeline_entries_carry_time_event_and_message() -> None:
    timeline = reconcile(_spec("SEV1"), {}, now=NOW).status["timeline"]
    assert [(e["at"], e["event"]) for e in timeline] == [
        ("2026-12-03T10:00:00Z", "rescue_detected"),
        ("2026-12-03T10:00:00Z", "rescue_opened_v1"),
        ("2026-12-03T10:00:00Z", "step_triage"),
        ("2026-12-03T10:00:00Z", "step_mitigate"),
    ]
    assert all(e["message"] for e in timeline)


def test_first_alert_count_is_recorded_without_an_event() -> None:
    decision = reconcile(_spec("SEV3", "firing", "firing", "resolved"), {}, now=NOW)
    assert decision.status["alertsFiring"] == 2
    assert "alerts_firing" not in _reasons(decision)


def test_alert_count_change_is_recorded_once() -> None:
    status = reconcile(_spec("SEV1", "firing", "firing"), {}, now=NOW).status
    spec = _spec("SEV1", "firing", "resolved")
    changed = reconcile(spec, status, now=LATER)
    assert changed.status["alertsFiring"] == 1
    assert changed.events == [Emitted("alerts_firing", "1 of 2 alert(s) firing (was 2).")]
    assert reconcile(spec, changed.status, now=MUCH_LATER).events == []


def test_all_alerts_resolved_is_recorded_with_a_resolved_time() -> None:
    decision = reconcile(_spec("SEV1", "resolved"), _active(), now=LATER)
    assert decision.status["alertsFiring"] == 0
    assert decision.status["resolvedAt"] == format_time(LATER)
    assert _reasons(decision) == ["alerts_resolved"]


def test_alert_firing_again_clears_the_resolved_time() -> None:
    resolved = reconcile(_spec("SEV1", "resolved"), _active(), now=LATER).status
    decision = reconcile(_spec("SEV1", "firing"), resolved, now=MUCH_LATER)
    assert decision.status["alertsFiring"] == 1
    assert "resolvedAt" not in decision.status
    assert decision.events == [Emitted("alerts_firing", "1 of 1 alert(s) firing (was 0).")]


def test_severity_change_without_a_note_is_recorded_as_caused_by_the_alerts() -> None:
    decision = reconcile(_spec("SEV3"), _active("SEV1"), now=LATER)
    assert decision.status["severity"] == "SEV3"
    assert decision.events == [
        Emitted(
            "rescue_retriaged",
            "Severity changed from SEV1 to SEV3: an alert joined the incident or fired again.",
        )
    ]
    assert decision.status["phase"] == "Active"


def test_severity_set_by_a_person_is_recorded_with_who_why_and_the_old_value() -> None:
    spec = _spec("SEV2")
    spec["triageNote"] = {"severity": "SEV2", "reason": "only EU users affected", "by": "ana"}
    decision = reconcile(spec, _active("SEV1"), now=LATER)
    entry = decision.status["timeline"][-1]
    assert entry["event"] == "rescue_retriaged"
    assert entry["message"] == "Severity changed from SEV1 to SEV2 by ana: only EU users affected."
    assert entry["by"] == "ana"
    assert reconcile(spec, decision.status, now=MUCH_LATER).events == []


def test_root_cause_and_fix_are_recorded_once_each() -> None:
    spec = _spec("SEV1")
    spec["diagnosis"] = {"rootCause": "a missing index", "category": "data", "by": "ana"}
    spec["resolution"] = {"fix": "add the index", "commit": "0123456789abcdef0123", "by": "bo"}
    decision = reconcile(spec, _active("SEV1"), now=LATER)
    assert [(e.reason, e.message) for e in decision.events] == [
        ("root_cause_recorded", "Root cause (data): a missing index."),
        ("fix_recorded", "Permanent fix: add the index (commit 0123456789ab)."),
    ]
    assert decision.status["diagnosis"]["rootCause"] == "a missing index"
    assert reconcile(spec, decision.status, now=MUCH_LATER).events == []


def test_severity_change_before_triage_is_not_a_retriage() -> None:
    decision = reconcile(_spec("SEV4"), _pending(), now=LATER)
    assert decision.events == []
    assert "severity" not in decision.status


def test_retriage_is_recorded_while_paused() -> None:
    decision = reconcile(_spec("SEV2", paused=True), _paused(), now=LATER)
    assert decision.status["phase"] == "Paused"
    assert _reasons(decision) == ["rescue_retriaged"]


# --- record_mitigation ------------------------------------------------------------------------

MITIGATION = {"state": "Committed", "strategy": "rollback", "commit": "c0ffee" * 6 + "c0fe"}


def _mitigating() -> Decision:
    """The decision of the reconcile that opened a SEV1 rescue, now at Mitigate."""
    return reconcile(_spec(), {}, now=NOW)


def _record(decision: Decision | None = None, **extra: Any) -> Decision:
    arguments: dict[str, Any] = {
        "now": LATER,
        "mitigation": MITIGATION,
        "entries": [],
        "conditions": [],
        "done": False,
        **extra,
    }
    return record_mitigation(decision or _mitigating(), **arguments)


def test_record_mitigation_stores_the_mitigation_in_the_status() -> None:
    decision = _record()
    assert decision.status["mitigation"] == MITIGATION


def test_record_mitigation_replaces_an_earlier_mitigation_record() -> None:
    first = _record(mitigation={"state": "Held", "heldBy": "min_firing"})
    decision = _record(first, mitigation={"state": "Committed"})
    assert decision.status["mitigation"] == {"state": "Committed"}


def test_record_mitigation_appends_entries_to_the_timeline_and_as_events() -> None:
    opened = _mitigating()
    entries = [
        ("mitigation_committed", "Committed abc to main.", False),
        ("mitigation_retrying", "The repository cannot be reached.", True),
    ]
    decision = _record(opened, entries=entries)
    assert decision.events == [
        *opened.events,
        Emitted("mitigation_committed", "Committed abc to main.", "Normal"),
        Emitted("mitigation_retrying", "The repository cannot be reached.", "Warning"),
    ]
    assert decision.status["timeline"][-2:] == [
        {
            "at": format_time(LATER),
            "event": "mitigation_committed",
            "message": "Committed abc to main.",
        },
        {
            "at": format_time(LATER),
            "event": "mitigation_retrying",
            "message": "The repository cannot be reached.",
        },
    ]


def test_record_mitigation_without_entries_adds_no_event_and_no_timeline_entry() -> None:
    opened = _mitigating()
    decision = _record(opened)
    assert decision.events == opened.events
    assert decision.status["timeline"] == opened.status["timeline"]


def test_record_mitigation_sets_a_new_condition_with_its_transition_time() -> None:
    conditions = [("GitReachable", False, "GitUnreachable", "no route to host")]
    decision = _record(conditions=conditions)
    assert condition(decision.status, "GitReachable") == {
        "type": "GitReachable",
        "status": "False",
        "reason": "GitUnreachable",
        "message": "no route to host",
        "lastTransitionTime": format_time(LATER),
    }


def test_record_mitigation_keeps_the_transition_time_of_an_unchanged_condition_status() -> None:
    first = _record(conditions=[("GitReachable", False, "GitUnreachable", "timeout")])
    decision = _record(
        first,
        now=MUCH_LATER,
        conditions=[("GitReachable", False, "GitAuthFailed", "credentials refused")],
    )
    updated = condition(decision.status, "GitReachable")
    assert updated is not None
    assert (updated["reason"], updated["message"]) == ("GitAuthFailed", "credentials refused")
    assert updated["lastTransitionTime"] == format_time(LATER)
    assert len(decision.status["conditions"]) == 1


def test_record_mitigation_moves_the_transition_time_when_a_condition_flips() -> None:
    first = _record(conditions=[("GitReachable", False, "GitUnreachable", "timeout")])
    decision = _record(first, now=MUCH_LATER, conditions=[("GitReachable", True, "Reachable", "")])
    flipped = condition(decision.status, "GitReachable")
    assert flipped is not None
    assert (flipped["status"], flipped["lastTransitionTime"]) == ("True", format_time(MUCH_LATER))


def test_record_mitigation_when_done_moves_from_mitigate_to_diagnose() -> None:
    entries = [("mitigation_verified", "The alerts resolved after the rollback.", False)]
    decision = _record(entries=entries, done=True)
    assert (decision.status["phase"], decision.status["step"]) == ("Active", "Diagnose")
    assert _reasons(decision)[-2:] == ["mitigation_verified", "step_diagnose"]
    assert decision.status["timeline"][-1] == {
        "at": format_time(LATER),
        "event": "step_diagnose",
        "message": "Diagnosis started: find the root cause now that mitigation is done.",
    }


def test_record_mitigation_when_not_done_stays_at_mitigate() -> None:
    decision = _record(entries=[("gate_held_min_firing", "Held.", False)], done=False)
    assert (decision.status["phase"], decision.status["step"]) == ("Active", "Mitigate")
    assert "step_diagnose" not in _reasons(decision)


def test_record_mitigation_done_again_does_not_record_diagnose_twice() -> None:
    diagnosing = _record(done=True)
    decision = _record(diagnosing, now=MUCH_LATER, done=True)
    assert decision.status["step"] == "Diagnose"
    assert _reasons(decision).count("step_diagnose") == 1
    events = [e["event"] for e in decision.status["timeline"]]
    assert events.count("step_diagnose") == 1


def test_record_mitigation_does_not_modify_the_decision_it_is_given() -> None:
    opened = _mitigating()
    before = (copy.deepcopy(opened.status), list(opened.events))
    _record(
        opened,
        entries=[("mitigation_committed", "Committed.", False)],
        conditions=[("GitReachable", True, "Reachable", "")],
        done=True,
    )
    assert (opened.status, opened.events) == before


@pytest.mark.parametrize("done", [False, True], ids=["in-progress", "done"])
def test_reconcile_on_a_recorded_mitigation_changes_nothing_and_emits_nothing(done: bool) -> None:
    recorded = _record(
        entries=[("mitigation_committed", "Committed.", False)],
        conditions=[("GitReachable", True, "Reachable", "")],
        done=done,
    )
    again = reconcile(_spec(), recorded.status, now=MUCH_LATER)
    assert again.status == recorded.status
    assert again.events == []


def test_resume_adds_the_time_shelved_to_the_paused_total_and_says_how_long() -> None:
    resumed = reconcile(_spec(paused=False), _paused(), now=LATER)
    assert resumed.status["pausedSeconds"] == 300
    assert resumed.events[0].message == "Rescue resumed after 5 min 0 s shelved."
    again = reconcile(_spec(paused=True), resumed.status, now=MUCH_LATER).status
    twice = reconcile(_spec(paused=False), again, now=MUCH_LATER + timedelta(seconds=30))
    assert twice.status["pausedSeconds"] == 330


def test_a_long_incident_folds_routine_entries_and_keeps_every_decision() -> None:
    # One alert flapping for hours beside one that keeps firing: an entry at every change.
    status = _active()
    decisions = [e["event"] for e in status["timeline"]]
    recorded = decisions.count("alerts_firing")
    for minute in range(300):
        flapping = "firing" if minute % 2 else "resolved"
        decision = reconcile(
            _spec("SEV1", "firing", flapping), status, now=NOW + timedelta(minutes=minute)
        )
        recorded += sum(1 for e in decision.events if e.reason == "alerts_firing")
        status = decision.status
    last = reconcile(_spec("SEV1", "firing", paused=True), status, now=MUCH_LATER)
    recorded += sum(1 for e in last.events if e.reason == "alerts_firing")
    shelved = last.status

    timeline = shelved["timeline"]
    events = [e["event"] for e in timeline]
    assert len(timeline) <= MAX_TIMELINE
    for event in [*decisions, "rescue_shelved_v1"]:
        assert event in events
    assert events.index("timeline_summarised") == 1
    summary = shelved["timelineSummary"]
    assert set(summary["events"]) == {"alerts_firing"}
    # Nothing is lost: the entries shown plus those counted are all that were recorded.
    assert events.count("alerts_firing") + summary["events"]["alerts_firing"] == recorded
    assert f"{summary['count']} earlier entries" in timeline[1]["message"]


def test_conclude_is_refused_with_every_missing_item_of_the_exit_checklist() -> None:
    decision = reconcile(_spec(conclusion={"requestedAt": format_time(NOW)}), _active(), now=LATER)
    assert decision.status["phase"] == "Active"
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["reason"] == "ConcludeChecklist"
    for item in (
        "service restored",
        "root cause (rescue diagnose",
        "permanent fix or escalation",
        "post-incident review (rescue review",
        "action items",
        "findings routed",
    ):
        assert item in refused["message"]


def test_conclude_names_only_what_is_still_missing() -> None:
    spec = _ready_spec(conclusion={"requestedAt": format_time(NOW), "route": "design"})
    decision = reconcile(spec, _ready(), now=LATER)
    refused = condition(decision.status, REFUSED)
    assert refused is not None
    assert refused["message"] == (
        "The exit checklist is not complete; missing: action items (conclude --action-item ...)."
    )


def test_a_sev3_needs_no_lessons_and_an_escalation_stands_in_for_a_fix() -> None:
    spec = _spec(
        "SEV3",
        diagnosis=READY["diagnosis"],
        conclusion=_conclusion(route="design"),
    )
    opened = reconcile(_spec("SEV3", diagnosis=READY["diagnosis"]), {}, now=NOW, policy_opens=True)
    status = {**opened.status, "restoredAt": format_time(NOW)}
    decision = reconcile(spec, status, now=LATER)
    assert decision.status["phase"] == "Completed"


def test_conclusion_routes_the_findings_with_their_action_items() -> None:
    conclusion = _conclusion(route="design", requestedBy="ana", actionItems=["a", "b"])
    decision = reconcile(_ready_spec(conclusion=conclusion), _ready(), now=LATER)
    assert decision.status["routedTo"] == "design"
    assert decision.events[-1] == Emitted(
        "findings_routed", "Findings routed to design with 2 action item(s): a; b."
    )
    assert decision.status["timeline"][-1]["by"] == "ana"


def test_conclude_waits_for_the_review_to_be_committed_as_it_now_reads() -> None:
    from rescue.core.review import basis

    spec = _ready_spec(conclusion=_conclusion())
    stale = {**_ready(), "review": {"commit": "c" * 40, "trigger": "an-older-digest"}}
    refused = condition(reconcile(spec, stale, now=LATER).status, REFUSED)
    assert refused is not None
    assert (
        "the post-incident review stored in the GitOps repository as it now reads"
        in (refused["message"])
    )

    current = {**_ready(), "review": {"commit": "c" * 40, "trigger": basis(spec)}}
    assert reconcile(spec, current, now=LATER).status["phase"] == "Completed"


@pytest.mark.parametrize(("severity", "refused"), [("SEV2", True), ("SEV3", True), ("SEV4", False)])
def test_a_review_never_stored_blocks_conclusion_where_the_policy_stores_reviews(
    severity: str, refused: bool
) -> None:
    spec = _ready_spec(severity, conclusion=_conclusion())
    status = reconcile(_ready_spec(severity), {}, now=NOW, policy_opens=True).status
    status["restoredAt"] = format_time(NOW)
    nowhere = reconcile(spec, status, now=LATER, policy_opens=True)
    assert nowhere.status["phase"] == "Completed"  # no repository: nowhere to store it
    decision = reconcile(spec, status, now=LATER, policy_opens=True, reviews_stored=True)
    assert (decision.status["phase"] == "Active") is refused
    if refused:
        message = condition(decision.status, REFUSED)["message"]  # type: ignore[index]
        assert "GitReachable condition" in message


# --- recovery (the end of the MTTR) -------------------------------------------------------------


def test_recovery_is_the_moment_alerts_resolved_once_they_stay_resolved() -> None:
    resolved = reconcile(_spec("SEV1", "resolved"), _active(), now=NOW, stable_seconds=300)
    assert resolved.status["resolvedAt"] == format_time(NOW)
    assert "recoveredAt" not in resolved.status
    assert resolved.wait == 300

    early = reconcile(_spec("SEV1", "resolved"), resolved.status, now=NOW + timedelta(seconds=200))
    assert "recoveredAt" not in early.status

    stable = reconcile(
        _spec("SEV1", "resolved"),
        resolved.status,
        now=NOW + timedelta(seconds=301),
        stable_seconds=300,
    )
    assert stable.status["recoveredAt"] == format_time(NOW)
    assert _reasons(stable) == ["service_recovered"]
    later = reconcile(_spec("SEV1", "resolved"), stable.status, now=MUCH_LATER)
    assert later.events == [] and later.status["recoveredAt"] == format_time(NOW)


def test_recovery_waits_while_a_mitigation_is_still_under_way() -> None:
    status = _active()
    status["mitigation"] = {"state": "Committed"}
    resolved = reconcile(_spec("SEV1", "resolved"), status, now=NOW)
    later = reconcile(_spec("SEV1", "resolved"), resolved.status, now=MUCH_LATER)
    assert "recoveredAt" not in later.status


def test_an_alert_firing_again_before_the_stable_period_ends_is_no_recovery() -> None:
    resolved = reconcile(_spec("SEV1", "resolved"), _active(), now=NOW)
    refired = reconcile(_spec("SEV1", "firing"), resolved.status, now=NOW + timedelta(seconds=60))
    later = reconcile(_spec("SEV1", "firing"), refired.status, now=MUCH_LATER)
    assert "recoveredAt" not in later.status


def test_resolution_is_dated_by_the_alerts_end_not_by_the_notification() -> None:
    spec = _spec("SEV1", "resolved", "resolved")
    spec["alerts"][0]["endsAt"] = "2026-12-03T09:57:00Z"
    spec["alerts"][1]["endsAt"] = "2026-12-03T09:58:30Z"
    decision = reconcile(spec, _active(), now=NOW)
    assert decision.status["resolvedAt"] == "2026-12-03T09:58:30Z"


@pytest.mark.parametrize(
    "ends", ["2026-12-03T09:00:00Z", "2026-12-03T11:00:00Z", "not a time"], ids=str
)
def test_an_implausible_alert_end_dates_the_resolution_now(ends: str) -> None:
    spec = _spec("SEV1", "resolved")
    spec["alerts"][0]["endsAt"] = ends  # before its start, in the future, unreadable
    decision = reconcile(spec, _active(), now=NOW)
    assert decision.status["resolvedAt"] == format_time(NOW)
