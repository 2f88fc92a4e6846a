"""Verification's window counts only the time a rescue was active, not the time it was shelved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rescue.core.model import Severity, Target
from rescue.core.policy import Policy
from rescue.operator import verification
from rescue.operator.outcome import Applied, Facts, RescueView, Result

PUSHED = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
POLICY = Policy.parse("shop", "shop", {"gates": {"verifyWithinSeconds": 600}})


class NoController:
    """An environment where no GitOps controller deploys the target (only the alert counts)."""

    def repository(self, policy: Policy) -> Any:
        raise AssertionError("no repository is needed without a repository in the policy")

    def forge(self, policy: Policy) -> Any:
        raise AssertionError("no forge is needed to verify")

    def applied(self, repository: Any, path: str) -> Applied | None:
        return None


def _view(paused: int, mitigation: dict[str, Any]) -> RescueView:
    return RescueView(
        namespace="shop",
        name="r",
        severity=Severity.SEV1,
        target=Target(namespace="shop", name="checkout"),
        incident_start=PUSHED,
        alertname="A",
        fingerprint="f",
        firing=1,
        mitigation=mitigation,
        paused_seconds=paused,
    )


def _verify(paused: int, mitigation: dict[str, Any], minutes: int) -> Result:
    return verification.verify(
        _view(paused, mitigation),
        POLICY,
        Facts(now=PUSHED + timedelta(minutes=minutes)),
        NoController(),
        Result(mitigation=dict(mitigation)),
    )


def test_a_firing_alert_past_the_window_makes_the_mitigation_unverified() -> None:
    result = _verify(
        0,
        {
            "state": "Committed",
            "commit": "c" * 40,
            "pushedAt": "2026-12-03T10:00:00Z",
            "pausedAtPush": 0,
        },
        11,
    )
    assert result.mitigation["state"] == "Unverified"
    assert result.done


def test_time_shelved_after_the_push_does_not_use_up_the_window() -> None:
    # Eleven minutes after the push, of which five were spent shelved: six count, within ten.
    mitigation = {
        "state": "Committed",
        "commit": "c" * 40,
        "pushedAt": "2026-12-03T10:00:00Z",
        "pausedAtPush": 0,
    }
    result = _verify(300, mitigation, 11)
    assert result.mitigation["state"] == "Committed"
    assert not result.done
    assert result.retry_after is not None


def test_without_a_controller_the_push_dates_the_mitigation_applied() -> None:
    view = _view(0, {"state": "Committed", "commit": "c" * 40, "pushedAt": "2026-12-03T10:00:00Z"})
    resolved = RescueView(**{**view.__dict__, "firing": 0})
    result = verification.verify(
        resolved,
        POLICY,
        Facts(now=PUSHED + timedelta(minutes=7)),
        NoController(),
        Result(mitigation=dict(view.mitigation)),
    )
    assert result.mitigation["state"] == "Verified"
    assert result.mitigation["appliedAt"] == "2026-12-03T10:00:00Z"
    assert result.mitigation["verifiedAt"] == "2026-12-03T10:07:00Z"
