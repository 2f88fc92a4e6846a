"""Which RescuePolicy applies to a rescue, and whether it opens a lower severity by itself."""

from __future__ import annotations

from typing import Any

import pytest

from rescue.core.model import Severity
from rescue.operator.policies import incident_labels, opens, selects

LABELS = {"namespace": "shop", "team": "payments", "severity": "warning"}


def _policy(match: dict[str, str] | None = None, open_: list[str] | None = None) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    if match is not None:
        policy["selector"] = {"matchLabels": match}
    if open_ is not None:
        policy["triage"] = {"open": open_}
    return policy


# --- selects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [{}, {"selector": None}, {"selector": {}}, {"selector": {"matchLabels": {}}}],
    ids=["no-selector", "null-selector", "empty-selector", "empty-matchLabels"],
)
def test_empty_selector_selects_every_alert(policy: dict[str, Any]) -> None:
    assert selects(policy, LABELS)
    assert selects(policy, {})


def test_selector_matching_all_its_labels_selects() -> None:
    assert selects(_policy({"team": "payments", "namespace": "shop"}), LABELS)


def test_selector_with_one_different_value_does_not_select() -> None:
    assert not selects(_policy({"team": "payments", "namespace": "other"}), LABELS)


def test_selector_naming_a_label_the_alert_lacks_does_not_select() -> None:
    assert not selects(_policy({"tier": "frontend"}), LABELS)


# --- incident_labels --------------------------------------------------------------------------


def test_incident_without_alerts_has_no_labels() -> None:
    assert incident_labels({"severity": "SEV3"}) == {}
    assert incident_labels({"alerts": []}) == {}


def test_incident_labels_are_those_all_alerts_share_with_equal_values() -> None:
    spec = {
        "alerts": [
            {"labels": {"team": "payments", "pod": "a", "namespace": "shop"}},
            {"labels": {"team": "payments", "pod": "b", "namespace": "shop"}},
            {"labels": {"team": "payments", "namespace": "shop", "extra": "x"}},
        ]
    }
    assert incident_labels(spec) == {"team": "payments", "namespace": "shop"}


def test_alert_without_labels_leaves_no_common_labels() -> None:
    spec = {"alerts": [{"labels": {"team": "payments"}}, {"fingerprint": "x"}]}
    assert incident_labels(spec) == {}


def test_single_alert_gives_all_its_labels() -> None:
    assert incident_labels({"alerts": [{"labels": LABELS}]}) == LABELS


# --- opens ------------------------------------------------------------------------------------


def test_selecting_policy_that_lists_the_severity_opens() -> None:
    policies = [_policy({"team": "payments"}, ["SEV3"])]
    assert opens(policies, severity=Severity.SEV3, labels=LABELS)


def test_selecting_policy_that_lists_another_severity_does_not_open() -> None:
    policies = [_policy({"team": "payments"}, ["SEV3"])]
    assert not opens(policies, severity=Severity.SEV4, labels=LABELS)


def test_policy_that_does_not_select_the_labels_does_not_open() -> None:
    policies = [_policy({"team": "search"}, ["SEV3", "SEV4"])]
    assert not opens(policies, severity=Severity.SEV3, labels=LABELS)


@pytest.mark.parametrize(
    "policy",
    [{}, {"triage": None}, {"triage": {}}, {"triage": {"open": None}}, _policy(None, [])],
    ids=["no-triage", "null-triage", "empty-triage", "null-open", "empty-open"],
)
def test_policy_without_open_severities_does_not_open(policy: dict[str, Any]) -> None:
    assert not opens([policy], severity=Severity.SEV3, labels=LABELS)


def test_no_policies_open_nothing() -> None:
    assert not opens([], severity=Severity.SEV3, labels=LABELS)


def test_any_one_selecting_policy_is_enough_to_open() -> None:
    policies = [
        _policy({"team": "search"}, ["SEV4"]),
        _policy({"team": "payments"}, []),
        _policy({}, ["SEV4"]),
    ]
    assert opens(policies, severity=Severity.SEV4, labels=LABELS)


def test_opens_accepts_a_one_pass_iterable_of_policies() -> None:
    policies = iter([_policy({"team": "payments"}, ["SEV3"])])
    assert opens(policies, severity=Severity.SEV3, labels=LABELS)
