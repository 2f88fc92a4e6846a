"""What deploy/ grants and how its containers run, read from the files and from kustomize's output.

No role may use a wildcard: a ``*`` grants whatever the API server adds tomorrow. Every container
of every workload, as kustomize renders the base and each overlay, runs as a numeric non-root
user on a read-only root filesystem, cannot gain privileges, drops every capability, and says
what it needs (CPU and memory requests) and where it stops (a memory limit). A CPU limit is not
required: it throttles a process that would otherwise only borrow idle time, and the production
overlay sets one where it has a reason to.
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import controlplane

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = sorted(
    str(path.parent.relative_to(DEPLOY)) for path in DEPLOY.rglob("kustomization.yaml")
)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod", "CronJob"}
ROLES = {"Role", "ClusterRole"}


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []  # not YAML a cluster reads (a Grafana dashboard, say)


def _files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


@cache
def _render(folder: str) -> tuple[dict[str, Any], ...]:
    try:
        kubectl = controlplane.find_binaries() / "kubectl"
    except controlplane.ControlPlaneError as exc:
        pytest.skip(f"no kubectl to run kustomize with: {exc}")
    result = subprocess.run(
        [str(kubectl), "kustomize", str(DEPLOY / folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def _roles() -> list[tuple[str, dict[str, Any]]]:
    found = [
        (f"{path.relative_to(DEPLOY)}: {doc['kind']} {doc['metadata']['name']}", doc)
        for path in _files()
        for doc in _documents(path)
        if doc.get("kind") in ROLES
    ]
    found += [
        (f"{folder} (rendered): {doc['kind']} {doc['metadata']['name']}", doc)
        for folder in KUSTOMIZATIONS
        for doc in _render(folder)
        if doc.get("kind") in ROLES
    ]
    return found


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "Pod":
        return dict(spec)
    if workload["kind"] == "CronJob":
        return dict(spec["jobTemplate"]["spec"]["template"]["spec"])
    return dict(spec["template"]["spec"])


def _containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, the pod spec, the container) for every container kustomize renders."""
    found = []
    for folder in KUSTOMIZATIONS:
        for doc in _render(folder):
            if doc.get("kind") not in WORKLOADS:
                continue
            pod = _pod_spec(doc)
            for container in pod.get("initContainers", []) + pod["containers"]:
                where = f"{folder}: {doc['kind']} {doc['metadata']['name']}/{container['name']}"
                found.append((where, pod, container))
    return found


def test_the_base_has_roles_and_workloads_to_check() -> None:
    assert {doc["metadata"]["name"] for _, doc in _roles()} >= {
        "rescue-webhook",
        "rescue-operator",
        "rescue-alert-sender",
    }
    assert len([c for where, _, c in _containers() if where.startswith("base:")]) == 2


def test_no_rule_in_deploy_uses_a_wildcard() -> None:
    wild = []
    for where, role in _roles():
        assert "aggregationRule" not in role, f"{where} aggregates other roles"
        for rule in role.get("rules", []):
            for key in ("apiGroups", "resources", "verbs", "nonResourceURLs", "resourceNames"):
                wild += [f"{where}: {key} {value}" for value in rule.get(key, []) if "*" in value]
    assert wild == []


def test_every_container_runs_as_a_numeric_non_root_user() -> None:
    for where, pod, container in _containers():
        pod_context = pod.get("securityContext", {})
        context = {**pod_context, **container.get("securityContext", {})}
        assert context.get("runAsNonRoot") is True, where
        user = context.get("runAsUser")
        assert isinstance(user, int), f"{where}: runAsUser must be set to a number"
        assert user != 0, where
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


def test_every_container_is_read_only_unprivileged_and_without_capabilities() -> None:
    for where, _, container in _containers():
        context = container.get("securityContext", {})
        assert context.get("readOnlyRootFilesystem") is True, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("privileged", False) is False, where
        capabilities = context.get("capabilities", {})
        assert capabilities.get("drop") == ["ALL"], where
        assert not capabilities.get("add"), where


def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit() -> None:
    for where, _, container in _containers():
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
        assert "memory" in resources.get("limits", {}), where


def test_no_pod_shares_the_hosts_namespaces_or_mounts_its_filesystem() -> None:
    for where, pod, _ in _containers():
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert pod.get(key, False) is False, f"{where}: {key}"
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], where
