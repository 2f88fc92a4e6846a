"""The operator's metrics: what is still to count, the claim, and the gauges of open rescues."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from rescue.core import kube
from rescue.core.policy import Policy
from rescue.operator import telemetry

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
START = "2026-12-03T10:00:00Z"


def _body(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "r1", "resourceVersion": "41"},
        "spec": {"severity": "SEV1", "incidentStart": START, **spec},
        "status": status,
    }


def test_pending_lists_durations_and_outcomes_not_yet_counted() -> None:
    status = {"phase": "Active", "severity": "SEV1", "openedAt": "2026-12-03T10:01:00Z"}
    assert telemetry.pending({"incidentStart": START}, status) == {
        "time:detect": 60.0,
        "opened": ("SEV1",),
    }
    status["counted"] = ["time:detect", "opened"]
    assert telemetry.pending({"incidentStart": START}, status) == {}


def test_the_claim_is_tied_to_the_version_read_and_adds_to_what_is_counted() -> None:
    body = _body({"phase": "Active", "counted": ["opened"]})
    assert telemetry.claim_ops(body, ["time:detect"]) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/status/counted", "value": ["opened", "time:detect"]},
    ]


def _scrape(metrics: telemetry.OperatorMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_observed_facts_show_under_their_metric_names() -> None:
    metrics = telemetry.OperatorMetrics(CollectorRegistry())
    metrics.observe("time:resolve", 540.0, severity="SEV1", namespace="shop")
    metrics.observe("opened", ("SEV1",), severity="SEV1", namespace="shop")
    metrics.observe("mitigation", ("rollback", "applied"), severity="SEV1", namespace="shop")
    metrics.observe("gate:cooldown", ("cooldown",), severity="SEV1", namespace="shop")
    metrics.observe("escalation:recurring", ("design",), severity="SEV1", namespace="shop")
    metrics.observe("from:a-newer-version", ("x",), severity="SEV1", namespace="shop")
    text = _scrape(metrics)
    assert 'rescue_time_to_resolve_seconds_sum{severity="SEV1"} 540.0' in text
    assert 'rescue_time_to_resolve_seconds_bucket{le="600.0",severity="SEV1"} 1.0' in text
    assert 'rescue_time_to_resolve_seconds_bucket{le="300.0",severity="SEV1"} 0.0' in text
    assert 'rescue_opened_total{severity="SEV1"} 1.0' in text
    assert 'rescue_mitigations_total{outcome="applied",strategy="rollback"} 1.0' in text
    assert 'rescue_gate_holds_total{reason="cooldown"} 1.0' in text
    assert 'rescue_escalations_total{destination="design"} 1.0' in text


def test_the_namespace_label_is_there_only_when_asked_for() -> None:
    metrics = telemetry.OperatorMetrics(CollectorRegistry(), namespace_label=True)
    metrics.observe("time:detect", 5.0, severity="SEV2", namespace="shop")
    assert 'rescue_time_to_detect_seconds_count{namespace="shop",severity="SEV2"} 1.0' in (
        _scrape(metrics)
    )


def _open(name: str, severity: str, opened: str, phase: str = "Active") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name},
        "spec": {"severity": severity, "alerts": [{"labels": {"team": "pay"}}]},
        "status": {"phase": phase, "severity": severity, "openedAt": opened},
    }


def test_open_rescues_are_overdue_by_their_policy_or_the_default_limit() -> None:
    strict = Policy.parse(
        "shop",
        "strict",
        {
            "selector": {"matchLabels": {"team": "pay"}},
            "escalation": {"maxOpenSeconds": {"SEV2": 600}},
        },
    )
    rescues = [
        _open("a", "SEV1", "2026-12-03T06:00:00Z"),  # 6 h: over the default 4 h
        _open("b", "SEV1", "2026-12-03T11:00:00Z", phase="Paused"),  # 1 h
        _open("c", "SEV2", "2026-12-03T11:30:00Z"),  # 30 min, policy allows 10
        _open("d", "SEV3", "2026-12-01T00:00:00Z"),  # no limit for SEV3
        _open("e", "SEV1", "2026-12-01T00:00:00Z", phase="Completed"),
    ]
    registry = CollectorRegistry()
    registry.register(telemetry.OpenRescues(lambda: (rescues, [strict]), clock=lambda: NOW))
    text = generate_latest(registry).decode()
    assert 'rescue_open{phase="Active",severity="SEV1"} 1.0' in text
    assert 'rescue_open{phase="Paused",severity="SEV1"} 1.0' in text
    assert 'rescue_open{phase="Active",severity="SEV4"} 0.0' in text
    assert 'rescue_open_overdue{severity="SEV1"} 1.0' in text
    assert 'rescue_open_overdue{severity="SEV2"} 1.0' in text
    assert 'rescue_open_overdue{severity="SEV3"} 0.0' in text
    assert 'rescue_open_oldest_seconds{severity="SEV1"} 21600.0' in text


def test_gauges_are_left_out_not_zeroed_when_the_rescues_cannot_be_listed() -> None:
    def unreachable() -> tuple[list[Any], list[Policy]]:
        raise kube.KubeUnavailable("listing rescues: the API server cannot be reached")

    registry = CollectorRegistry()
    registry.register(telemetry.OpenRescues(unreachable, clock=lambda: NOW))
    assert "rescue_open{" not in generate_latest(registry).decode()
