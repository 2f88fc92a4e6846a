"""ServiceAccounts, their tokens and the shipped RBAC on the test cluster (``security``).

The control plane runs no controller manager, so ServiceAccounts are created here by hand and
their tokens come from the TokenRequest API, exactly as the kubelet would request them for a
Pod. A kubeconfig holding such a token lets a process run as that ServiceAccount, so the
shipped roles are exercised by the real API server instead of being read and believed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from rescue import controlplane, stack

RBAC = stack.REPO_ROOT / "deploy" / "base" / "rbac.yaml"
SYSTEM_NAMESPACE = "rescue-system"


def apply_rbac(cluster: controlplane.Cluster) -> None:
    """deploy/base/rbac.yaml, applied server-side into rescue-system as kustomize would."""
    stack.ensure_namespace(cluster, SYSTEM_NAMESPACE)
    stack.kubectl(
        cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=rescue-tests",
        "-n",
        SYSTEM_NAMESPACE,
        "-f",
        str(RBAC),
    )


def ensure_service_account(api: Any, namespace: str, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespaced_service_account(
            namespace, {"metadata": {"name": name}}
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def token_for(
    api: Any, namespace: str, name: str, *, audiences: list[str] | None = None, seconds: int = 3600
) -> str:
    """A bound token of the ServiceAccount, from the TokenRequest API."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if audiences:
        spec["audiences"] = audiences
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, {"spec": spec}
    )
    return str(answer.status.token)


def bind_cluster_role(api: Any, *, binding: str, role: str, namespace: str, account: str) -> None:
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
        {
            "metadata": {"name": binding},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )


def kubeconfig_as(cluster: controlplane.Cluster, token: str, path: Path) -> controlplane.Cluster:
    """The cluster seen with ``token`` instead of the admin's credentials."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    entry = next(c for c in admin["clusters"] if c["name"] == current["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": "account", "user": {"token": token}}],
        "contexts": [{"name": "account", "context": {"cluster": entry["name"], "user": "account"}}],
        "current-context": "account",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return controlplane.Cluster(kubeconfig=path, kubectl=cluster.kubectl)
