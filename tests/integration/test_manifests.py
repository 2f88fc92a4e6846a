"""Every manifest Rescue ships is accepted by the real API server (server-side dry run).

kustomize renders deploy/base, each overlay and deploy/monitoring with the control plane's own
kubectl; the API server then validates each object against its schema, strictly: a misspelt or
misplaced field is an error, not a warning, so a typo fails here rather than in someone's
cluster. The examples under deploy/examples are dry-run the same way, the RescuePolicies
against Rescue's own CRD.

The prometheus-operator's kinds (ServiceMonitor, PodMonitor, PrometheusRule) need its CRDs,
which cannot be fetched here: tests/fixtures/prometheus-operator-crds.yaml holds strict,
minimal stand-ins, installed only where the cluster has none of its own.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import controlplane, stack

DEPLOY = stack.REPO_ROOT / "deploy"
EXAMPLES = DEPLOY / "examples"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MONITORING_CRDS = (
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
)


def _kubectl(
    cluster: controlplane.Cluster, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cluster.kubectl_argv(*args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _render(cluster: controlplane.Cluster, folder: Path) -> str:
    result = _kubectl(cluster, "kustomize", str(folder))
    assert result.returncode == 0, result.stderr
    return result.stdout


def _dry_run(cluster: controlplane.Cluster, manifests: str) -> subprocess.CompletedProcess[str]:
    """A server-side apply that the API server validates in full and then discards."""
    return _kubectl(
        cluster,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=rescue-tests",
        "--validate=strict",
        "-f",
        "-",
        stdin=manifests,
    )


def _accepted(cluster: controlplane.Cluster, manifests: str) -> str:
    result = _dry_run(cluster, manifests)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _names(text: str) -> set[str]:
    return {f"{d['kind']}/{d['metadata']['name']}" for d in _documents(text)}


@pytest.fixture(scope="module")
def monitoring_crds(cluster: controlplane.Cluster) -> None:
    """The prometheus-operator's CRDs: the cluster's own, or the strict stand-ins."""
    present = _kubectl(cluster, "get", "crd", *MONITORING_CRDS, "--ignore-not-found", "-o", "name")
    if len(present.stdout.split()) == len(MONITORING_CRDS):
        return
    stack.kubectl(cluster, "apply", "-f", str(FIXTURES / "prometheus-operator-crds.yaml"))
    for crd in MONITORING_CRDS:
        stack.kubectl(cluster, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


@pytest.fixture(scope="module")
def example_namespaces(cluster: controlplane.Cluster) -> None:
    """The namespaces the examples are written for (without a namespace controller, they stay)."""
    for path in EXAMPLES.glob("*.yaml"):
        for document in _documents(path.read_text()):
            namespace = (document.get("metadata") or {}).get("namespace")
            if "apiVersion" in document and namespace:
                stack.ensure_namespace(cluster, namespace)


# --- deploy/base and the overlays -------------------------------------------------------------


def test_deploy_base_passes_a_server_side_dry_run(
    cluster: controlplane.Cluster, default_namespace: str
) -> None:
    rendered = _render(cluster, DEPLOY / "base")
    out = _accepted(cluster, rendered)
    assert "deployment.apps/rescue-webhook serverside-applied (server dry run)" in out
    assert "deployment.apps/rescue-operator serverside-applied (server dry run)" in out
    assert "networkpolicy.networking.k8s.io/rescue-webhook serverside-applied" in out
    assert {
        "ClusterRole/rescue-operator",
        "NetworkPolicy/rescue-webhook",
        "NetworkPolicy/rescue-operator",
        "Service/rescue-webhook",
        "Service/rescue-operator",
        "ClusterKopfPeering/rescue",
    } <= _names(rendered)


@pytest.mark.parametrize("overlay", ["kind", "production"])
def test_each_overlay_passes_a_server_side_dry_run(
    cluster: controlplane.Cluster, default_namespace: str, overlay: str
) -> None:
    rendered = _render(cluster, DEPLOY / "overlays" / overlay)
    out = _accepted(cluster, rendered)
    assert "deployment.apps/rescue-operator serverside-applied (server dry run)" in out
    if overlay == "production":
        assert "poddisruptionbudget.policy/rescue-operator serverside-applied" in out
    else:
        assert "service/rescue-webhook serverside-applied (server dry run)" in out


def test_the_pods_meet_the_restricted_pod_security_standard(
    cluster: controlplane.Cluster,
) -> None:
    """rescue-system enforces the restricted standard (deploy/base/namespace.yaml); the API
    server warns about every Deployment whose pods it would refuse there."""
    namespace = f"t-psa-{uuid.uuid4().hex[:8]}"
    labels = yaml.safe_load((DEPLOY / "base" / "namespace.yaml").read_text())["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    stack.ensure_namespace(cluster, namespace)
    stack.kubectl(
        cluster,
        "label",
        "namespace",
        namespace,
        *(f"{key}={value}" for key, value in labels.items()),
    )
    for overlay in ("base", "overlays/kind", "overlays/production"):
        deployments = [
            {**d, "metadata": {**d["metadata"], "namespace": namespace}}
            for d in _documents(_render(cluster, DEPLOY / overlay))
            if d["kind"] == "Deployment"
        ]
        assert len(deployments) == 2
        result = _dry_run(cluster, yaml.safe_dump_all(deployments))
        assert result.returncode == 0, result.stderr
        assert "PodSecurity" not in result.stderr, f"{overlay}: {result.stderr}"


# --- deploy/monitoring ------------------------------------------------------------------------


def test_deploy_monitoring_passes_a_server_side_dry_run(
    cluster: controlplane.Cluster, default_namespace: str, monitoring_crds: None
) -> None:
    out = _accepted(cluster, _render(cluster, DEPLOY / "monitoring"))
    for created in (
        "prometheusrule.monitoring.coreos.com/rescue",
        "servicemonitor.monitoring.coreos.com/rescue-operator",
        "podmonitor.monitoring.coreos.com/rescue-webhook",
        "configmap/rescue-grafana-dashboard",
    ):
        assert f"{created} serverside-applied (server dry run)" in out


# --- deploy/examples --------------------------------------------------------------------------


def _example_manifests() -> list[Path]:
    """The examples that are Kubernetes objects (the Alertmanager files are checked by amtool)."""
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = _documents(path.read_text())
        if documents and all("apiVersion" in d and "kind" in d for d in documents):
            found.append(path)
    return found


def test_the_examples_include_both_policies_and_their_secrets() -> None:
    names = {path.name for path in _example_manifests()}
    assert {"rescuepolicy-flux.yaml", "rescuepolicy-argocd.yaml", "secrets.yaml"} <= names


@pytest.mark.parametrize("example", _example_manifests(), ids=lambda path: path.name)
def test_every_example_passes_a_server_side_dry_run(
    cluster: controlplane.Cluster, example_namespaces: None, example: Path
) -> None:
    out = _accepted(cluster, example.read_text())
    assert out.count("serverside-applied (server dry run)") == len(_documents(example.read_text()))


# --- the dry run catches typos ----------------------------------------------------------------


def test_a_misspelt_policy_field_fails_the_dry_run(
    cluster: controlplane.Cluster, example_namespaces: None
) -> None:
    text = (EXAMPLES / "rescuepolicy-flux.yaml").read_text()
    assert "    maxPerDay: 3\n" in text
    result = _dry_run(cluster, text.replace("    maxPerDay: 3\n", "    maxPerDays: 3\n"))
    assert result.returncode != 0
    assert ".spec.gates.maxPerDays: field not declared in schema" in result.stderr


def test_a_misspelt_monitoring_field_fails_the_dry_run(
    cluster: controlplane.Cluster, default_namespace: str, monitoring_crds: None
) -> None:
    text = _render(cluster, DEPLOY / "monitoring")
    assert "interval: 30s" in text
    result = _dry_run(cluster, text.replace("interval: 30s", "intervall: 30s", 1))
    assert result.returncode != 0
    assert "intervall" in result.stderr
