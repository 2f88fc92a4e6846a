"""The vocabulary of a rescue: severity mapping, targets, the worst severity, the transitions."""

from __future__ import annotations

import pytest

from rescue.core.model import (
    DEFAULT_SEVERITY,
    TRANSITIONS,
    LifecycleEvent,
    Phase,
    Severity,
    Step,
    Target,
    TargetLabels,
    map_severity,
    worst,
)

# --- map_severity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("critical", Severity.SEV1),
        ("page", Severity.SEV1),
        ("high", Severity.SEV2),
        ("error", Severity.SEV2),
        ("major", Severity.SEV2),
        ("warning", Severity.SEV3),
        ("minor", Severity.SEV3),
        ("info", Severity.SEV4),
        ("low", Severity.SEV4),
        ("none", Severity.SEV4),
    ],
)
def test_default_map_translates_common_severity_labels(label: str, expected: Severity) -> None:
    assert map_severity(label) is expected


@pytest.mark.parametrize("label", ["sev1", "SEV1", "Sev1", " sev1 "])
def test_explicit_sev_label_maps_to_itself_ignoring_case_and_spaces(label: str) -> None:
    assert map_severity(label) is Severity.SEV1


@pytest.mark.parametrize("label", ["CRITICAL", "Critical", "  critical\t"])
def test_mapped_label_is_matched_ignoring_case_and_spaces(label: str) -> None:
    assert map_severity(label) is Severity.SEV1


@pytest.mark.parametrize("label", [None, "", "catastrophic", "sev5", "sev0"])
def test_missing_or_unknown_label_maps_to_the_default_severity(label: str | None) -> None:
    assert map_severity(label) is DEFAULT_SEVERITY


def test_default_severity_is_sev3_which_does_not_open_by_itself() -> None:
    assert DEFAULT_SEVERITY is Severity.SEV3
    assert not DEFAULT_SEVERITY.opens_at_once


def test_custom_mapping_and_default_replace_the_built_in_ones() -> None:
    mapping = {"boom": Severity.SEV2}
    assert map_severity("boom", mapping) is Severity.SEV2
    assert map_severity("critical", mapping, Severity.SEV4) is Severity.SEV4
    assert map_severity(None, mapping, Severity.SEV4) is Severity.SEV4


def test_explicit_sev_label_wins_over_a_custom_mapping_of_the_same_key() -> None:
    assert map_severity("sev4", {"sev4": Severity.SEV1}) is Severity.SEV4


# --- Severity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "opens"),
    [
        (Severity.SEV1, True),
        (Severity.SEV2, True),
        (Severity.SEV3, False),
        (Severity.SEV4, False),
    ],
)
def test_only_sev1_and_sev2_open_at_once(severity: Severity, opens: bool) -> None:
    assert severity.opens_at_once is opens


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        ([Severity.SEV3], Severity.SEV3),
        ([Severity.SEV4, Severity.SEV1, Severity.SEV3], Severity.SEV1),
        ([Severity.SEV3, Severity.SEV2, Severity.SEV4], Severity.SEV2),
        ([Severity.SEV4, Severity.SEV4], Severity.SEV4),
    ],
)
def test_worst_picks_the_lowest_numbered_severity(
    severities: list[Severity], expected: Severity
) -> None:
    assert worst(severities) is expected


def test_worst_of_no_severities_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        worst([])


# --- Target and TargetLabels ----------------------------------------------------------------


def test_target_ref_is_namespace_slash_name() -> None:
    assert Target(namespace="shop", name="checkout").ref == "shop/checkout"


def test_target_ref_without_namespace_is_the_bare_name() -> None:
    assert Target(name="checkout").ref == "checkout"


def test_target_ref_without_name_is_a_dash() -> None:
    assert Target(namespace="shop").ref == "-"


def test_target_of_reads_namespace_and_deployment_labels() -> None:
    target = TargetLabels().target_of({"namespace": "shop", "deployment": "checkout"})
    assert target == Target(kind="Deployment", namespace="shop", name="checkout")


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("deployment", "Deployment"),
        ("statefulset", "StatefulSet"),
        ("daemonset", "DaemonSet"),
    ],
)
def test_target_kind_follows_the_workload_label(label: str, kind: str) -> None:
    target = TargetLabels().target_of({"namespace": "shop", label: "db"})
    assert (target.kind, target.name) == (kind, "db")


@pytest.mark.parametrize("label", ["app", "service", "job"])
def test_non_workload_name_label_takes_the_configured_default_kind(label: str) -> None:
    target = TargetLabels(kind="Rollout").target_of({label: "checkout"})
    assert (target.kind, target.name) == ("Rollout", "checkout")


def test_first_present_name_label_wins_in_configured_order() -> None:
    labels = {"app": "frontend", "statefulset": "db", "deployment": "checkout"}
    target = TargetLabels().target_of(labels)
    assert (target.kind, target.name) == ("Deployment", "checkout")


def test_empty_name_label_is_skipped_for_the_next_one() -> None:
    target = TargetLabels().target_of({"deployment": "", "app": "frontend"})
    assert (target.kind, target.name) == ("Deployment", "frontend")


def test_exported_namespace_is_used_when_namespace_label_is_empty() -> None:
    labels = {"namespace": "", "exported_namespace": "shop", "app": "x"}
    assert TargetLabels().target_of(labels).namespace == "shop"


def test_namespace_label_wins_over_exported_namespace() -> None:
    labels = {"namespace": "monitoring", "exported_namespace": "shop", "app": "x"}
    assert TargetLabels().target_of(labels).namespace == "monitoring"


def test_labels_without_a_workload_name_give_a_nameless_target_in_the_namespace() -> None:
    target = TargetLabels().target_of({"namespace": "shop", "alertname": "X"})
    assert target == Target(kind="Deployment", namespace="shop", name="")
    assert target.ref == "-"


def test_configured_label_names_replace_the_defaults() -> None:
    labels = {"namespace": "ignored", "ns": "shop", "deployment": "ignored", "svc": "api"}
    config = TargetLabels(kind="Service", namespace_labels=("ns",), name_labels=("svc",))
    assert config.target_of(labels) == Target(kind="Service", namespace="shop", name="api")


# --- phases, steps and transitions ------------------------------------------------------------


def test_transitions_are_exactly_the_four_of_the_lifecycle_contract() -> None:
    assert dict(TRANSITIONS) == {
        (Phase.PENDING, LifecycleEvent.OPENED): Phase.ACTIVE,
        (Phase.ACTIVE, LifecycleEvent.SHELVED): Phase.PAUSED,
        (Phase.PAUSED, LifecycleEvent.RESUMED): Phase.ACTIVE,
        (Phase.ACTIVE, LifecycleEvent.CONCLUDED): Phase.COMPLETED,
    }


def test_no_transition_leaves_completed() -> None:
    assert not [key for key in TRANSITIONS if key[0] is Phase.COMPLETED]


def test_steps_are_declared_in_the_order_of_the_response_flow() -> None:
    assert [s.value for s in Step] == [
        "Detect",
        "Triage",
        "Mitigate",
        "Diagnose",
        "Resolve",
        "Review",
    ]


def test_lifecycle_event_names_are_the_versioned_contract_names() -> None:
    assert {e.value for e in LifecycleEvent} == {
        "rescue_opened_v1",
        "rescue_shelved_v1",
        "rescue_resumed_v1",
        "rescue_concluded_v1",
    }
