"""deploy/base and its overlays, as kustomize renders them: one image throughout, the kind
overlay matching kind-config.yaml, the production overlay pinned and spread, and the
NetworkPolicies admitting exactly the callers they are meant for.

The API server's opinion of the same manifests is tests/integration/test_manifests.py.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import controlplane

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
IMAGE = "ghcr.io/hecate/rescue"
OVERLAYS = ["base", "overlays/kind", "overlays/production"]


def _kubectl() -> Path:
    try:
        return controlplane.find_binaries() / "kubectl"
    except controlplane.ControlPlaneError as exc:
        pytest.skip(f"no kubectl to run kustomize with: {exc}")


@cache
def _render(folder: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [str(_kubectl()), "kustomize", str(DEPLOY / folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _one(folder: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _render(folder) if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _deployments(folder: str) -> list[dict[str, Any]]:
    return [d for d in _render(folder) if d["kind"] == "Deployment"]


def _containers(folder: str) -> list[dict[str, Any]]:
    return [c for d in _deployments(folder) for c in d["spec"]["template"]["spec"]["containers"]]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


# --- one image --------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", OVERLAYS)
def test_everything_namespaced_lands_in_rescue_system(folder: str) -> None:
    cluster_wide = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    cluster_wide.add("ClusterKopfPeering")
    for document in _render(folder):
        if document["kind"] not in cluster_wide:
            assert document["metadata"].get("namespace") == "rescue-system", document["metadata"]


@pytest.mark.parametrize("folder", OVERLAYS)
def test_every_container_runs_the_same_one_image(folder: str) -> None:
    images = {c["image"] for c in _containers(folder)}
    assert len(images) == 1, images
    assert len(_containers(folder)) == 2


def test_the_base_deploys_the_version_it_ships_with() -> None:
    assert {c["image"] for c in _containers("base")} == {f"{IMAGE}:{_version()}"}


def test_the_overlays_set_the_image_through_kustomize_images_only() -> None:
    for overlay in ("kind", "production"):
        text = (DEPLOY / "overlays" / overlay / "kustomization.yaml").read_text()
        (entry,) = yaml.safe_load(text)["images"]
        assert entry["name"] == IMAGE
        for patch in (DEPLOY / "overlays" / overlay).glob("*.yaml"):
            assert "image:" not in patch.read_text(), f"{patch} sets an image by hand"


# --- kind -------------------------------------------------------------------------------------


def test_kind_runs_the_locally_loaded_image_without_pulling() -> None:
    for container in _containers("overlays/kind"):
        assert container["image"] == "rescue:dev"
        assert container["imagePullPolicy"] == "Never"
    assert {d["spec"]["replicas"] for d in _deployments("overlays/kind")} == {1}


def test_kind_exposes_the_webhook_on_the_port_kind_config_maps_to_the_host() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    mapped = {m["containerPort"] for n in config["nodes"] for m in n.get("extraPortMappings", [])}
    service = _one("overlays/kind", "Service", "rescue-webhook")
    assert service["spec"]["type"] == "NodePort"
    (port,) = service["spec"]["ports"]
    assert port["nodePort"] in mapped
    assert port["targetPort"] == "http"


# --- production -------------------------------------------------------------------------------


def test_production_pins_the_image_by_digest() -> None:
    for container in _containers("overlays/production"):
        assert re.fullmatch(
            rf"{re.escape(IMAGE)}:{re.escape(_version())}@sha256:[0-9a-f]{{64}}",
            container["image"],
        ), container["image"]


def test_production_runs_two_peering_operators_and_two_webhooks_on_different_nodes() -> None:
    for deployment in _deployments("overlays/production"):
        assert deployment["spec"]["replicas"] == 2
        pod = deployment["spec"]["template"]
        spread = {
            c["topologyKey"]: c["whenUnsatisfiable"]
            for c in pod["spec"]["topologySpreadConstraints"]
        }
        assert spread["kubernetes.io/hostname"] == "DoNotSchedule"
        assert spread["topology.kubernetes.io/zone"] == "ScheduleAnyway"
        for constraint in pod["spec"]["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"] == pod["metadata"]["labels"]
    operator = _one("overlays/production", "Deployment", "rescue-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert "--peering=rescue" in container["args"]
    assert _one("overlays/production", "ClusterKopfPeering", "rescue")


def test_production_budgets_each_component_and_limits_its_resources() -> None:
    budgets = [d for d in _render("overlays/production") if d["kind"] == "PodDisruptionBudget"]
    for deployment in _deployments("overlays/production"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets if _matches(b["spec"]["selector"]["matchLabels"], labels)]
        assert budget["spec"]["minAvailable"] == 1
        assert budget["metadata"]["namespace"] == "rescue-system"
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


# --- who may call in --------------------------------------------------------------------------


def _policy_for(folder: str, component: str) -> dict[str, Any]:
    return _one(folder, "NetworkPolicy", f"rescue-{component}")


def _pod(folder: str, component: str) -> tuple[dict[str, str], dict[str, int]]:
    deployment = _one(folder, "Deployment", f"rescue-{component}")
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return template["metadata"]["labels"], {
        p["name"]: p["containerPort"] for p in container["ports"]
    }


@pytest.mark.parametrize("folder", OVERLAYS)
def test_only_alertmanager_and_prometheus_reach_the_webhook(folder: str) -> None:
    policy = _policy_for(folder, "webhook")
    labels, ports = _pod(folder, "webhook")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    callers = set()
    for peer in rule["from"]:
        # Any namespace, selected by the caller's pod labels.
        assert peer["namespaceSelector"] == {}
        callers.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    assert callers == {"alertmanager", "prometheus"}
    assert [p["port"] for p in rule["ports"]] == ["http"]
    assert "http" in ports


@pytest.mark.parametrize("folder", OVERLAYS)
def test_only_prometheus_reaches_the_operator_and_only_its_metrics(folder: str) -> None:
    policy = _policy_for(folder, "operator")
    labels, ports = _pod(folder, "operator")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
    assert "metrics" in ports


def test_the_monitoring_scrapes_go_to_ports_the_policies_open() -> None:
    monitoring = DEPLOY / "monitoring"
    (service_monitor,) = yaml.safe_load_all((monitoring / "servicemonitor.yaml").read_text())
    (pod_monitor,) = yaml.safe_load_all((monitoring / "podmonitor.yaml").read_text())
    opened = {
        component: [
            p["port"] for p in _policy_for("base", component)["spec"]["ingress"][0]["ports"]
        ]
        for component in ("webhook", "operator")
    }
    assert [e["port"] for e in service_monitor["spec"]["endpoints"]] == opened["operator"]
    assert [e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == opened["webhook"]


def test_only_the_kind_overlay_opens_the_webhook_to_every_source() -> None:
    names = {
        d["metadata"]["name"] for d in _render("overlays/kind") if d["kind"] == "NetworkPolicy"
    }
    assert names == {"rescue-webhook", "rescue-operator", "rescue-webhook-from-host"}
    for folder in ("base", "overlays/production"):
        for policy in (d for d in _render(folder) if d["kind"] == "NetworkPolicy"):
            assert all("from" in rule for rule in policy["spec"]["ingress"])
