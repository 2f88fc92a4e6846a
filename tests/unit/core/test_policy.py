"""RescuePolicy as a typed model: defaults, refusals that name the field, paths and selection."""

from __future__ import annotations

from typing import Any

import pytest

from rescue.core.model import Severity, Target
from rescue.core.policy import Policy, PolicyError, Repository, select

TARGET = Target(kind="Deployment", namespace="shop", name="checkout")


def _policy(name: str = "p", namespace: str = "shop", **spec: Any) -> Policy:
    return Policy.parse(namespace, name, spec)


def _selecting(name: str, labels: dict[str, str] | None) -> Policy:
    spec: dict[str, Any] = {} if labels is None else {"selector": {"matchLabels": labels}}
    return Policy.parse("shop", name, spec)


# --- parse and defaults -----------------------------------------------------------------------


def test_parse_keeps_where_the_policy_lives() -> None:
    policy = _policy(name="checkout", namespace="shop")
    assert (policy.namespace, policy.name, policy.ref) == ("shop", "checkout", "shop/checkout")


def test_an_empty_spec_gets_the_default_modes_per_severity() -> None:
    mitigation = _policy().spec.mitigation
    assert mitigation.modes == {
        Severity.SEV1: "commit",
        Severity.SEV2: "commit",
        Severity.SEV3: "propose",
        Severity.SEV4: "none",
    }
    assert [mitigation.mode_for(s) for s in Severity] == ["commit", "commit", "propose", "none"]


def test_an_empty_spec_gets_the_default_gates() -> None:
    gates = _policy().spec.gates
    assert (
        gates.minFiringSeconds,
        gates.cooldownSeconds,
        gates.maxPerDay,
        gates.verifyWithinSeconds,
        gates.maxConcurrent,
    ) == (60, 1800, 3, 600, 5)


def test_an_empty_spec_gets_the_default_mitigation_target_and_triage() -> None:
    spec = _policy().spec
    assert spec.mitigation.strategy == "rollback"
    assert spec.mitigation.lookbackSeconds == 7 * 86400
    assert (spec.mitigation.scale.factor, spec.mitigation.scale.maxReplicas) == (2.0, 20)
    assert (spec.mitigation.feature.configMap, spec.mitigation.feature.value) == (
        "feature-flags",
        "false",
    )
    assert (spec.mitigation.author.name, spec.mitigation.author.email) == (
        "Rescue",
        "rescue@localhost",
    )
    assert (spec.target.kind, spec.target.namespaceLabel, spec.target.nameLabel) == (
        "Deployment",
        "namespace",
        "deployment",
    )
    assert spec.repository is None
    assert spec.triage.open == []
    assert spec.selector.matchLabels == {}


def test_an_empty_spec_commits_the_review_opens_no_issue_and_leaves_severity_to_the_flags() -> None:
    spec = _policy().spec
    assert (spec.review.mode, spec.review.directory) == ("commit", "postmortems")
    assert (spec.tracker.issues, spec.tracker.labels) == (False, [])
    assert (spec.triage.severityLabel, spec.triage.severityMap) == (None, {})
    assert not spec.triage.maps_severity


def test_a_severity_map_reads_label_values_case_insensitively() -> None:
    triage = _policy(triage={"severityMap": {" P1 ": "SEV1", "Warn": "SEV2"}}).spec.triage
    assert triage.severityMap == {"p1": Severity.SEV1, "warn": Severity.SEV2}
    assert triage.maps_severity


def test_a_severity_label_alone_is_a_say_in_triage() -> None:
    assert _policy(triage={"severityLabel": "priority"}).spec.triage.maps_severity


def test_the_review_directory_is_kept_without_outer_slashes() -> None:
    spec = _policy(review={"mode": "pull-request", "directory": "/docs/reviews/"}).spec
    assert (spec.review.mode, spec.review.directory) == ("pull-request", "docs/reviews")


def test_a_repository_gets_the_default_branch_and_path() -> None:
    repository = _policy(repository={"url": "https://git.example/shop.git"}).spec.repository
    assert repository is not None
    assert (repository.branch, repository.path, repository.secretRef) == (
        "main",
        "apps/{namespace}/{name}",
        None,
    )


def test_given_values_replace_the_defaults_they_name_only() -> None:
    spec = _policy(gates={"maxPerDay": 1}, mitigation={"strategy": "scale"}).spec
    assert spec.gates.maxPerDay == 1
    assert spec.gates.cooldownSeconds == 1800
    assert spec.mitigation.strategy == "scale"
    assert spec.mitigation.modes[Severity.SEV1] == "commit"


def test_unknown_fields_are_ignored() -> None:
    assert _policy(futureField={"x": 1}).spec == _policy().spec


def test_target_of_reads_the_labels_the_policy_names() -> None:
    policy = _policy(target={"kind": "StatefulSet", "namespaceLabel": "ns", "nameLabel": "app"})
    assert policy.target_of({"ns": "shop", "app": "cart", "deployment": "x"}) == Target(
        kind="StatefulSet", namespace="shop", name="cart"
    )
    assert policy.target_of({}) == Target(kind="StatefulSet", namespace="", name="")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"gates": {"maxPerDay": -1}}, "gates.maxPerDay"),
        ({"gates": {"verifyWithinSeconds": 5}}, "gates.verifyWithinSeconds"),
        ({"mitigation": {"strategy": "delete"}}, "mitigation.strategy"),
        ({"mitigation": {"modes": {"SEV1": "yolo"}}}, "mitigation.modes.SEV1"),
        ({"mitigation": {"modes": {"SEV5": "commit"}}}, "mitigation.modes.SEV5.[key]"),
        ({"mitigation": {"lookbackSeconds": 10}}, "mitigation.lookbackSeconds"),
        ({"mitigation": {"scale": {"factor": 1.0}}}, "mitigation.scale.factor"),
        ({"mitigation": {"scale": {"maxReplicas": 0}}}, "mitigation.scale.maxReplicas"),
        ({"repository": {"branch": "main"}}, "repository.url"),
        ({"repository": {"url": "u", "secretRef": {}}}, "repository.secretRef.name"),
        ({"triage": {"open": ["SEV9"]}}, "triage.open.0"),
        ({"triage": {"severityMap": {"p1": "SEV0"}}}, "triage.severityMap.p1"),
        ({"triage": {"severityLabel": ""}}, "triage.severityLabel"),
        ({"review": {"mode": "email"}}, "review.mode"),
        ({"review": {"directory": "../elsewhere"}}, "review.directory"),
        ({"review": {"directory": "docs/.git/hooks"}}, "review.directory"),
        ({"review": {"directory": "/"}}, "review.directory"),
        ({"tracker": {"labels": ["a,b"]}}, "tracker.labels.0"),
        ({"tracker": {"labels": [""]}}, "tracker.labels.0"),
        ({"selector": {"matchLabels": {"team": 1}}}, "selector.matchLabels.team"),
    ],
)
def test_an_invalid_spec_is_refused_with_the_policy_and_field_named(
    spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(PolicyError, match="policy shop/bad is not usable") as refused:
        Policy.parse("shop", "bad", spec)
    assert f"{field}:" in str(refused.value)


# --- Repository.path_for ----------------------------------------------------------------------


def test_path_for_substitutes_namespace_and_name_into_the_default_template() -> None:
    assert Repository(url="u").path_for(TARGET) == "apps/shop/checkout"


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("clusters/prod/{namespace}/{kind}/{name}", "clusters/prod/shop/Deployment/checkout"),
        ("/apps/{name}/", "apps/checkout"),
        ("{namespace}-{name}", "shop-checkout"),
        ("apps/{name}/{name}", "apps/checkout/checkout"),
        ("static/folder", "static/folder"),
    ],
)
def test_path_for_substitutes_every_placeholder_and_trims_outer_slashes(
    template: str, path: str
) -> None:
    assert Repository(url="u", path=template).path_for(TARGET) == path


def test_path_for_never_substitutes_inside_substituted_values() -> None:
    target = Target(namespace="{name}", name="checkout")
    with pytest.raises(PolicyError, match="not a valid Kubernetes namespace"):
        Repository(url="u").path_for(target)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("name", "-rf"),
        ("name", "Checkout"),
        ("name", "check out"),
        ("name", "a" * 254),
        ("namespace", "shop.eu"),
        ("namespace", "a" * 64),
        ("kind", "Deploy-ment"),
    ],
)
def test_path_for_refuses_what_cannot_name_a_kubernetes_object(field: str, bad: str) -> None:
    target = TARGET.model_copy(update={field: bad})
    repository = Repository(url="u", path="apps/{kind}/{namespace}/{name}")
    with pytest.raises(PolicyError, match=f"not a valid Kubernetes {field}"):
        repository.path_for(target)


def test_path_for_accepts_dotted_object_names() -> None:
    target = TARGET.model_copy(update={"name": "checkout.v2"})
    assert Repository(url="u").path_for(target).endswith("/checkout.v2")


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "../etc", "a\\b", "a\0b"], ids=repr)
@pytest.mark.parametrize("field", ["namespace", "name", "kind"])
def test_path_for_refuses_a_target_value_that_would_leave_its_folder(field: str, bad: str) -> None:
    target = TARGET.model_copy(update={field: bad})
    repository = Repository(url="u", path="apps/{kind}/{namespace}/{name}")
    with pytest.raises(PolicyError, match="cannot be used in a repository path"):
        repository.path_for(target)


@pytest.mark.parametrize(
    "template",
    [
        "apps/{namespace}/../{name}",
        "apps/./{name}",
        "apps//{name}",
        "{name}/..",
        "..",
        "",
        "/",
        "-{name}",
    ],
)
def test_path_for_refuses_a_template_that_gives_an_unusable_path(template: str) -> None:
    with pytest.raises(PolicyError, match="gives the unusable path"):
        Repository(url="u", path=template).path_for(TARGET)


def test_path_for_refuses_an_empty_namespace_inside_the_path() -> None:
    with pytest.raises(PolicyError, match="the target has no namespace"):
        Repository(url="u").path_for(Target(namespace="", name="checkout"))


@pytest.mark.parametrize(
    ("template", "target"),
    [
        ("apps/{namespace}/{name}", Target(namespace="shop", name="")),
        ("apps/{name}/{namespace}", Target(namespace="", name="checkout")),
    ],
    ids=["empty-name-last", "empty-namespace-last"],
)
def test_path_for_refuses_an_empty_value_in_the_last_segment(template: str, target: Target) -> None:
    with pytest.raises(PolicyError):
        Repository(url="u", path=template).path_for(target)


# --- select -----------------------------------------------------------------------------------


LABELS = {"namespace": "shop", "team": "payments", "severity": "critical"}


def test_select_returns_none_when_no_policy_matches() -> None:
    assert select([_selecting("cart", {"team": "cart"})], LABELS) is None


def test_select_of_no_policies_is_none() -> None:
    assert select([], LABELS) is None


@pytest.mark.parametrize("selector", [None, {}], ids=["no-selector", "empty-matchLabels"])
def test_an_empty_selector_matches_everything(selector: dict[str, str] | None) -> None:
    catch_all = _selecting("catch-all", selector)
    assert select([catch_all], LABELS) == catch_all
    assert select([catch_all], {}) == catch_all


def test_select_returns_the_most_specific_matching_policy() -> None:
    catch_all = _selecting("catch-all", None)
    team = _selecting("team", {"team": "payments"})
    team_critical = _selecting("team-critical", {"team": "payments", "severity": "critical"})
    assert select([catch_all, team_critical, team], LABELS) == team_critical
    assert select([team_critical, team, catch_all], LABELS) == team_critical


def test_a_more_specific_policy_that_does_not_match_is_not_selected() -> None:
    team = _selecting("team", {"team": "payments"})
    warning_only = _selecting("warning", {"team": "payments", "severity": "warning"})
    assert select([warning_only, team], LABELS) == team


def test_a_selector_label_missing_from_the_incident_does_not_match() -> None:
    assert select([_selecting("env", {"env": "prod"})], LABELS) is None


def test_equally_specific_policies_are_chosen_by_reference() -> None:
    beta = _selecting("beta", {"team": "payments"})
    alpha = _selecting("alpha", {"namespace": "shop"})
    assert select([beta, alpha], LABELS) == alpha
    assert select([alpha, beta], LABELS) == alpha
