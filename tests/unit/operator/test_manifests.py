"""Textual, comment-preserving edits to manifests: scale, feature flag, image automation hold."""

from __future__ import annotations

import pytest
import yaml

from rescue.operator.manifests import (
    ManifestError,
    automation_paths,
    covers,
    scale_up,
    set_flag,
    set_suspend,
)

WORKLOADS = """\
# The checkout service and its workload; reviewed by the payments team.
apiVersion: v1
kind: Service
metadata:
  name: checkout
spec:
  ports:
    - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels:
    app: checkout
spec:
  replicas: 3  # raised for the sale
  selector:
    matchLabels:
      app: checkout
  template:
    spec:
      containers:
        - name: checkout
          image: registry.example/checkout:v2 # {"$imagepolicy": "flux-system:checkout"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
spec:
  replicas: 2
"""

FLAGS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: feature-flags
  namespace: shop
# Flags read by checkout at start-up.
data:
  new-checkout: "on"
  recommendations: 'true'
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
data:
  new-checkout: "on"
"""

AUTOMATIONS = """\
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: shop
  namespace: flux-system
spec:
  interval: 30m
  sourceRef:
    kind: GitRepository
    name: flux-system
  update:
    path: "./apps/shop"  # only the shop
    strategy: Setters
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: everything
  namespace: flux-system
spec:
  suspend: false
  interval: 1h
  update:
    strategy: Setters
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-an-automation
data:
  path: ./apps/other
"""


def _deployment(replicas: int) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\n"
        f"spec:\n  replicas: {replicas}\n"
    )


# --- scale_up ---------------------------------------------------------------------------------


def test_scale_up_multiplies_the_replicas_of_the_named_deployment() -> None:
    text, before, after = scale_up(
        WORKLOADS, kind="Deployment", name="checkout", factor=2.0, max_replicas=20
    )
    assert (before, after) == (3, 6)
    checkout = list(yaml.safe_load_all(text))[1]
    assert checkout["spec"]["replicas"] == 6


def test_scale_up_changes_only_the_replicas_line_and_keeps_its_comment() -> None:
    text, _, _ = scale_up(
        WORKLOADS, kind="Deployment", name="checkout", factor=2.0, max_replicas=20
    )
    assert text == WORKLOADS.replace(
        "  replicas: 3  # raised for the sale", "  replicas: 6  # raised for the sale"
    )


def test_scale_up_leaves_other_workloads_and_documents_unchanged() -> None:
    text, _, _ = scale_up(WORKLOADS, kind="Deployment", name="cart", factor=2.0, max_replicas=20)
    before, after = WORKLOADS.split("---"), text.split("---")
    assert after[:2] == before[:2]
    assert after[2] == before[2].replace("replicas: 2", "replicas: 4")


def test_scale_up_rounds_a_fraction_of_a_replica_up() -> None:
    _, before, after = scale_up(
        _deployment(3), kind="Deployment", name="checkout", factor=1.5, max_replicas=20
    )
    assert (before, after) == (3, 5)


def test_scale_up_adds_at_least_one_replica() -> None:
    _, before, after = scale_up(
        _deployment(1), kind="Deployment", name="checkout", factor=1.2, max_replicas=20
    )
    assert (before, after) == (1, 2)


def test_scale_up_stops_at_the_bound() -> None:
    text, before, after = scale_up(
        _deployment(4), kind="Deployment", name="checkout", factor=3.0, max_replicas=10
    )
    assert (before, after) == (4, 10)
    assert "  replicas: 10\n" in text


@pytest.mark.parametrize("replicas", [10, 12], ids=["at-bound", "above-bound"])
def test_scale_up_refuses_a_workload_at_or_above_the_bound(replicas: int) -> None:
    with pytest.raises(ManifestError, match="bound 10"):
        scale_up(
            _deployment(replicas), kind="Deployment", name="checkout", factor=2.0, max_replicas=10
        )


def test_scale_up_refuses_when_no_workload_has_that_name() -> None:
    with pytest.raises(ManifestError, match="no Deployment named payments"):
        scale_up(WORKLOADS, kind="Deployment", name="payments", factor=2.0, max_replicas=20)


def test_scale_up_refuses_when_the_name_belongs_to_another_kind() -> None:
    with pytest.raises(ManifestError, match="no StatefulSet named checkout"):
        scale_up(WORKLOADS, kind="StatefulSet", name="checkout", factor=2.0, max_replicas=20)


def test_scale_up_refuses_a_workload_without_a_replicas_field() -> None:
    manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\nspec: {}\n"
    with pytest.raises(ManifestError, match=r"sets no spec\.replicas"):
        scale_up(manifest, kind="Deployment", name="checkout", factor=2.0, max_replicas=20)


def test_scale_up_by_an_exact_factor_adds_no_extra_replica() -> None:
    _, before, after = scale_up(
        _deployment(50), kind="Deployment", name="checkout", factor=1.1, max_replicas=100
    )
    assert (before, after) == (50, 55)


def test_scale_up_finds_a_workload_whose_labels_come_before_its_name() -> None:
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    name: frontend\n"
        "  name: checkout\nspec:\n  replicas: 2\n"
    )
    _, before, after = scale_up(
        manifest, kind="Deployment", name="checkout", factor=2.0, max_replicas=20
    )
    assert (before, after) == (2, 4)


# --- set_flag ---------------------------------------------------------------------------------


def test_set_flag_replaces_an_existing_key_and_returns_its_previous_value() -> None:
    text, previous = set_flag(FLAGS, config_map="feature-flags", key="new-checkout", value="off")
    assert previous == "on"
    assert text == FLAGS.replace(
        '  new-checkout: "on"\n  recommendations', '  new-checkout: "off"\n  recommendations'
    )


def test_set_flag_returns_a_single_quoted_previous_value_without_quotes() -> None:
    _, previous = set_flag(FLAGS, config_map="feature-flags", key="recommendations", value="x")
    assert previous == "true"


def test_set_flag_inserts_a_missing_key_and_returns_none() -> None:
    text, previous = set_flag(FLAGS, config_map="feature-flags", key="express-pay", value="false")
    assert previous is None
    data = next(yaml.safe_load_all(text))["data"]
    assert data == {"express-pay": "false", "new-checkout": "on", "recommendations": "true"}


def test_set_flag_keeps_comments_and_other_config_maps_unchanged() -> None:
    text, _ = set_flag(FLAGS, config_map="feature-flags", key="new-checkout", value="off")
    assert "# Flags read by checkout at start-up.\n" in text
    assert text.split("---")[1] == FLAGS.split("---")[1]


@pytest.mark.parametrize(
    "value", ["false", "0", "null", "yes", 'say "no"', "back\\slash", "colon: value", "#hash"]
)
def test_set_flag_writes_the_value_as_a_quoted_string_yaml_reads_back(value: str) -> None:
    text, _ = set_flag(FLAGS, config_map="feature-flags", key="new-checkout", value=value)
    assert next(yaml.safe_load_all(text))["data"]["new-checkout"] == value
    text, _ = set_flag(FLAGS, config_map="feature-flags", key="fresh", value=value)
    assert next(yaml.safe_load_all(text))["data"]["fresh"] == value


@pytest.mark.parametrize(
    "key", ["", "two words", "a/b", "a:b", "new-checkout\nrogue", "ключ", "a\0"], ids=repr
)
def test_set_flag_refuses_an_invalid_config_map_key(key: str) -> None:
    with pytest.raises(ManifestError, match="not a valid ConfigMap key"):
        set_flag(FLAGS, config_map="feature-flags", key=key, value="off")


def test_set_flag_refuses_when_no_config_map_has_that_name() -> None:
    with pytest.raises(ManifestError, match="no ConfigMap named flags"):
        set_flag(FLAGS, config_map="flags", key="new-checkout", value="off")


def test_set_flag_refuses_a_config_map_without_a_data_section() -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\n"
    with pytest.raises(ManifestError, match="has no data section"):
        set_flag(manifest, config_map="feature-flags", key="new-checkout", value="off")


def test_set_flag_changes_the_data_key_not_a_line_inside_an_embedded_file() -> None:
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\ndata:\n"
        '  app.yaml: |\n    new-checkout: true\n  new-checkout: "on"\n'
    )
    text, previous = set_flag(manifest, config_map="feature-flags", key="new-checkout", value="off")
    data = yaml.safe_load(text)["data"]
    assert previous == "on"
    assert data == {"app.yaml": "new-checkout: true\n", "new-checkout": "off"}


def test_set_flag_keeps_an_inline_comment_and_returns_the_bare_previous_value() -> None:
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\ndata:\n"
        '  new-checkout: "on"  # rollout\n'
    )
    text, previous = set_flag(manifest, config_map="feature-flags", key="new-checkout", value="off")
    assert previous == "on"
    assert "# rollout" in text


def test_set_flag_writes_a_value_with_a_line_break_that_yaml_reads_back() -> None:
    text, _ = set_flag(FLAGS, config_map="feature-flags", key="new-checkout", value="x\ny")
    assert next(yaml.safe_load_all(text))["data"]["new-checkout"] == "x\ny"


# --- image automation: automation_paths, set_suspend, covers ----------------------------------


def test_automation_paths_lists_each_image_update_automation_with_its_update_path() -> None:
    assert automation_paths(AUTOMATIONS) == [("shop", "./apps/shop"), ("everything", "./")]


def test_automation_paths_of_a_manifest_without_automations_is_empty() -> None:
    assert automation_paths(WORKLOADS) == []


def test_set_suspend_inserts_suspend_into_a_spec_without_it() -> None:
    text = set_suspend(AUTOMATIONS, name="shop", suspend=True)
    shop = next(yaml.safe_load_all(text))
    assert shop["spec"]["suspend"] is True
    assert shop["spec"]["update"] == {"path": "./apps/shop", "strategy": "Setters"}
    assert "# only the shop" in text


def test_set_suspend_replaces_an_existing_suspend_value() -> None:
    text = set_suspend(AUTOMATIONS, name="everything", suspend=True)
    assert "  suspend: true\n  interval: 1h\n" in text
    assert text.count("suspend:") == 1


def test_set_suspend_false_resumes_an_automation() -> None:
    held = set_suspend(AUTOMATIONS, name="everything", suspend=True)
    assert set_suspend(held, name="everything", suspend=False) == AUTOMATIONS


def test_set_suspend_leaves_other_documents_unchanged() -> None:
    text = set_suspend(AUTOMATIONS, name="shop", suspend=True)
    assert text.split("---")[1:] == AUTOMATIONS.split("---")[1:]


def test_set_suspend_refuses_an_unknown_automation() -> None:
    with pytest.raises(ManifestError, match="no ImageUpdateAutomation named nope"):
        set_suspend(AUTOMATIONS, name="nope", suspend=True)


def test_set_suspend_refuses_an_automation_without_a_spec() -> None:
    manifest = (
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageUpdateAutomation\n"
        "metadata:\n  name: shop\n"
    )
    with pytest.raises(ManifestError, match="has no spec"):
        set_suspend(manifest, name="shop", suspend=True)


@pytest.mark.parametrize(
    ("automation", "target"),
    [
        ("./apps/shop", "apps/shop"),
        ("./apps/shop", "apps/shop/checkout"),
        ("apps/shop", "apps/shop/checkout"),
        ("./apps/shop/", "apps/shop/checkout"),
        ("./apps", "apps/shop/checkout"),
        ("./", "apps/shop/checkout"),
        (".", "apps/shop/checkout"),
        ("", "apps/shop/checkout"),
    ],
)
def test_covers_when_the_update_path_contains_the_target_folder(
    automation: str, target: str
) -> None:
    assert covers(automation, target)


@pytest.mark.parametrize(
    ("automation", "target"),
    [
        ("./apps/shop", "apps/shopping/checkout"),
        ("./apps/shop", "apps"),
        ("./apps/cart", "apps/shop/checkout"),
    ],
)
def test_does_not_cover_a_target_folder_that_is_not_inside_the_update_path(
    automation: str, target: str
) -> None:
    assert not covers(automation, target)


def test_covers_a_target_inside_a_dot_folder() -> None:
    assert covers("./.flux/apps", ".flux/apps/shop")
