"""The CRDs in crds/ list exactly the vocabulary and bounds of rescue.core.model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from rescue.core.model import (
    GROUP,
    MAX_ALERTS,
    MAX_TIMELINE,
    POLICY_KIND,
    POLICY_PLURAL,
    RESCUE_KIND,
    RESCUE_PLURAL,
    VERSION,
    Phase,
    Severity,
    Step,
)
from rescue.core.policy import Review, Tracker

CRDS = Path(__file__).resolve().parents[3] / "crds"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CRDS / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def rescue_crd() -> dict[str, Any]:
    return _load(f"{RESCUE_PLURAL}.{GROUP}.yaml")


@pytest.fixture(scope="module")
def policy_crd() -> dict[str, Any]:
    return _load(f"{POLICY_PLURAL}.{GROUP}.yaml")


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    [version] = crd["spec"]["versions"]
    return dict(version)


def _properties(crd: dict[str, Any], part: str) -> dict[str, Any]:
    schema = _version(crd)["schema"]["openAPIV3Schema"]
    return dict(schema["properties"][part]["properties"])


def test_spec_severity_enum_is_the_severity_values(rescue_crd: dict[str, Any]) -> None:
    assert _properties(rescue_crd, "spec")["severity"]["enum"] == [s.value for s in Severity]


def test_status_severity_enum_is_the_severity_values(rescue_crd: dict[str, Any]) -> None:
    assert _properties(rescue_crd, "status")["severity"]["enum"] == [s.value for s in Severity]


def test_status_phase_enum_is_the_phase_values(rescue_crd: dict[str, Any]) -> None:
    assert _properties(rescue_crd, "status")["phase"]["enum"] == [p.value for p in Phase]


def test_status_step_enum_is_the_step_values(rescue_crd: dict[str, Any]) -> None:
    assert _properties(rescue_crd, "status")["step"]["enum"] == [s.value for s in Step]


def test_printer_columns_are_severity_phase_step_target_commit_age(
    rescue_crd: dict[str, Any],
) -> None:
    columns = [c["name"] for c in _version(rescue_crd)["additionalPrinterColumns"]]
    assert columns == ["Severity", "Phase", "Step", "Target", "Commit", "Age"]


def test_rescue_short_name_is_rsc_and_category_is_alc(rescue_crd: dict[str, Any]) -> None:
    names = rescue_crd["spec"]["names"]
    assert names["shortNames"] == ["rsc"]
    assert names["categories"] == ["alc"]


def test_rescue_crd_names_group_version_kind_and_plural_of_the_model(
    rescue_crd: dict[str, Any],
) -> None:
    assert rescue_crd["metadata"]["name"] == f"{RESCUE_PLURAL}.{GROUP}"
    assert rescue_crd["spec"]["group"] == GROUP
    assert rescue_crd["spec"]["names"]["kind"] == RESCUE_KIND
    assert rescue_crd["spec"]["names"]["plural"] == RESCUE_PLURAL
    assert _version(rescue_crd)["name"] == VERSION


def test_schema_bounds_match_the_model_bounds(rescue_crd: dict[str, Any]) -> None:
    assert _properties(rescue_crd, "spec")["alerts"]["maxItems"] == MAX_ALERTS
    assert _properties(rescue_crd, "status")["timeline"]["maxItems"] == MAX_TIMELINE


def test_policy_opens_only_the_severities_that_do_not_open_at_once(
    policy_crd: dict[str, Any],
) -> None:
    assert policy_crd["spec"]["names"]["kind"] == POLICY_KIND
    triage = _properties(policy_crd, "spec")["triage"]["properties"]
    assert triage["open"]["items"]["enum"] == [s.value for s in Severity if not s.opens_at_once]


def test_policy_severity_map_values_are_the_severity_values(policy_crd: dict[str, Any]) -> None:
    triage = _properties(policy_crd, "spec")["triage"]["properties"]
    values = triage["severityMap"]["additionalProperties"]["enum"]
    assert values == [s.value for s in Severity]
    # No default: an absent label means "the webhook's --severity-label", not "severity".
    assert "default" not in triage["severityLabel"]


def test_policy_review_and_tracker_defaults_are_the_model_defaults(
    policy_crd: dict[str, Any],
) -> None:
    spec = _properties(policy_crd, "spec")
    review = spec["review"]["properties"]
    defaults = Review()
    assert review["mode"]["enum"] == list(get_args(Review.model_fields["mode"].annotation))
    assert (review["mode"]["default"], review["directory"]["default"]) == (
        defaults.mode,
        defaults.directory,
    )
    tracker = spec["tracker"]["properties"]
    assert tracker["issues"]["default"] is Tracker().issues


def test_status_routed_issue_keeps_its_url_and_number(rescue_crd: dict[str, Any]) -> None:
    issue = _properties(rescue_crd, "status")["routedIssue"]["properties"]
    assert (issue["url"]["type"], issue["number"]["type"]) == ("string", "integer")
