"""Which mapping reads an alert's severity: the selecting policy's triage, else the flags'."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rescue.core import kube
from rescue.core.model import DEFAULT_SEVERITY_MAP, Severity
from rescue.core.policy import Policy
from rescue.webhook.intake import IntakeConfig, build_rescue, reading, severity_of
from rescue.webhook.payload import Notification
from rescue.webhook.policies import PolicySource

FLAGS = IntakeConfig(severity_map={**DEFAULT_SEVERITY_MAP, "urgent": Severity.SEV1})


def _notification(*labels: dict[str, str]) -> Notification:
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": "CheckoutErrors", "namespace": "shop", **extra},
            "annotations": {},
            "startsAt": "2026-12-03T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{i:016x}",
        }
        for i, extra in enumerate(labels)
    ]
    return Notification.model_validate(
        {
            "version": "4",
            "groupKey": '{}:{alertname="CheckoutErrors"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "rescue",
            "groupLabels": {"alertname": "CheckoutErrors"},
            "commonLabels": {"alertname": "CheckoutErrors", "namespace": "shop", "team": "shop"},
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": alerts,
        }
    )


def _policy(name: str = "shop", **triage: Any) -> Policy:
    return Policy.parse("shop", name, {"triage": triage})


# --- the reading ----------------------------------------------------------------------------


def test_without_a_policy_the_flags_decide() -> None:
    read = reading(FLAGS)
    assert (read.label, read.policy) == ("severity", None)
    assert severity_of(_notification({"severity": "urgent"}), FLAGS, read) is Severity.SEV1


def test_a_policy_that_says_nothing_about_severity_leaves_it_to_the_flags() -> None:
    read = reading(FLAGS, _policy(open=["SEV3"]))
    assert read.policy is None
    assert read.mapping == FLAGS.severity_map


def test_the_policys_values_win_over_the_flags_and_the_flags_fill_the_rest() -> None:
    read = reading(FLAGS, _policy(severityMap={"critical": "SEV2", "P3": "SEV3"}))
    assert read.policy == "shop/shop"
    assert read.of({"severity": "critical"}) is Severity.SEV2  # the policy's
    assert read.of({"severity": "p3"}) is Severity.SEV3  # the policy's, case-insensitively
    assert read.of({"severity": "urgent"}) is Severity.SEV1  # the flags'
    assert read.of({"severity": "sev4"}) is Severity.SEV4  # sevN always means itself
    assert read.of({"severity": "unheard-of"}) is FLAGS.default_severity


def test_a_policy_may_read_another_label() -> None:
    read = reading(FLAGS, _policy(severityLabel="priority", severityMap={"p1": "SEV1"}))
    assert read.of({"priority": "P1", "severity": "info"}) is Severity.SEV1
    assert read.of({"severity": "critical"}) is FLAGS.default_severity  # label absent


def test_a_policy_naming_no_label_reads_the_flags_label() -> None:
    flags = IntakeConfig(severity_label="level")
    read = reading(flags, _policy(severityMap={"p2": "SEV2"}))
    assert read.of({"level": "p2"}) is Severity.SEV2


def test_the_worst_firing_alert_decides_under_the_policys_reading() -> None:
    read = reading(FLAGS, _policy(severityMap={"critical": "SEV2", "page": "SEV3"}))
    both = _notification({"severity": "page"}, {"severity": "critical"})
    assert severity_of(both, FLAGS, read) is Severity.SEV2
    body = build_rescue(both, FLAGS, "shop", read)
    assert body["spec"]["severity"] == "SEV2"


# --- choosing the policy --------------------------------------------------------------------


class Listing(kube.ListCache):
    """A listing with fixed answers, counting the calls."""

    def __init__(self, answer: list[kube.Body] | kube.KubeError) -> None:
        self.answer = answer
        self.calls = 0

    def get(self, namespace: str) -> list[kube.Body]:
        self.calls += 1
        if isinstance(self.answer, kube.KubeError):
            raise self.answer
        return list(self.answer)


def _body(name: str, spec: dict[str, Any], version: str = "1") -> kube.Body:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": spec}


def test_the_most_specific_selecting_policy_is_chosen() -> None:
    source = PolicySource(
        Listing(
            [
                _body("everyone", {"triage": {"severityMap": {"critical": "SEV3"}}}),
                _body(
                    "shop",
                    {
                        "selector": {"matchLabels": {"team": "shop"}},
                        "triage": {"severityMap": {"critical": "SEV2"}},
                    },
                ),
                _body("cart", {"selector": {"matchLabels": {"team": "cart", "x": "y"}}}),
            ]
        )
    )
    chosen = source.select("shop", {"team": "shop", "alertname": "A"})
    assert chosen is not None and chosen.name == "shop"
    assert reading(FLAGS, chosen).of({"severity": "critical"}) is Severity.SEV2


def test_an_unusable_policy_is_ignored_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listing = Listing(
        [
            _body(
                "broken",
                {"selector": {"matchLabels": {"team": "shop"}}, "gates": {"maxPerDay": -1}},
            ),
            _body("fallback", {"triage": {"severityMap": {"critical": "SEV4"}}}),
        ]
    )
    source = PolicySource(listing)
    with caplog.at_level(logging.WARNING, logger="rescue.webhook.policies"):
        for _ in range(3):
            chosen = source.select("shop", {"team": "shop"})
            assert chosen is not None and chosen.name == "fallback"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "shop/broken" in warnings[0] and "gates.maxPerDay" in warnings[0]

    # A new version of it is worth a warning of its own.
    listing.answer[0]["metadata"]["resourceVersion"] = "2"
    with caplog.at_level(logging.WARNING, logger="rescue.webhook.policies"):
        source.select("shop", {"team": "shop"})
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_a_refusal_to_list_falls_back_to_the_flags_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = PolicySource(Listing(kube.KubeRejected("forbidden", status=403)))
    with caplog.at_level(logging.WARNING, logger="rescue.webhook.policies"):
        assert source.select("shop", {}) is None
        assert source.select("shop", {}) is None
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "may not list RescuePolicies in shop" in warning


def test_an_unreachable_api_server_is_left_to_the_caller() -> None:
    source = PolicySource(Listing(kube.KubeUnavailable("no answer")))
    with pytest.raises(kube.KubeUnavailable):
        source.select("shop", {})
