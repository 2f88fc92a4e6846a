"""The test harness: a real Kubernetes API for the session, and the processes under test.

The control plane is the same code as ``rescue cluster up``; ``RESCUE_TEST_KUBECONFIG`` points
the suite at an existing cluster instead. The webhook and the operator run as their own
processes, as a user runs them, so that what crosses a process boundary is tested for real.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import OperatorHandle

from rescue import controlplane, stack
from rescue.core import kube
from rescue.gitserver import GitServer


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.Cluster]:
    existing = os.environ.get("RESCUE_TEST_KUBECONFIG")
    if existing:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            kubectl = str(controlplane.find_binaries() / "kubectl")
        found = controlplane.Cluster(kubeconfig=Path(existing), kubectl=Path(kubectl))
        stack.install_crds(found)
        yield found
        return
    folder = tmp_path_factory.mktemp("control-plane")
    plane = controlplane.up(folder, build=True)
    try:
        stack.install_crds(plane.cluster)
        yield plane.cluster
    finally:
        controlplane.down(folder)


@pytest.fixture(scope="session")
def api_client(cluster: controlplane.Cluster) -> Any:
    return kube.load_client(str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def rescues(api_client: Any) -> kube.Rescues:
    return kube.Rescues(api_client)


@pytest.fixture
def namespace(cluster: controlplane.Cluster) -> str:
    """A fresh namespace per test (without a namespace controller it is never deleted)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    stack.ensure_namespace(cluster, name)
    return name


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("processes")


@pytest.fixture(scope="session")
def default_namespace(cluster: controlplane.Cluster) -> str:
    stack.ensure_namespace(cluster, "rescue-system")
    return "rescue-system"


@pytest.fixture(scope="session")
def token() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="session")
def webhook(
    cluster: controlplane.Cluster, run_dir: Path, token: str, default_namespace: str
) -> Iterator[stack.Process]:
    process = stack.start_webhook(cluster, folder=run_dir, token=token, name="webhook")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def operator(cluster: controlplane.Cluster, run_dir: Path) -> Iterator[OperatorHandle]:
    handle = OperatorHandle(cluster, run_dir)
    yield handle
    handle.process.stop()


@pytest.fixture
def post(webhook: stack.Process, token: str) -> Iterator[Callable[..., httpx.Response]]:
    with httpx.Client(base_url=webhook.url, timeout=30) as client:

        def _post(payload: Any, *, auth: str | None = f"Bearer {token}") -> httpx.Response:
            headers = {"Authorization": auth} if auth else {}
            return client.post("/api/v1/alerts", json=payload, headers=headers)

        yield _post


@pytest.fixture(scope="session")
def git_token() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory, git_token: str) -> Iterator[GitServer]:
    """Bare repositories behind git's own smart-HTTP server, with token authentication."""
    server = GitServer(tmp_path_factory.mktemp("git-remotes"), token=git_token).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gitops_crds(cluster: controlplane.Cluster) -> None:
    """Stand-ins for Flux's Kustomization and Argo CD's Application kinds."""
    fixture = Path(__file__).parent / "fixtures" / "gitops-crds.yaml"
    stack.kubectl(cluster, "apply", "-f", str(fixture))
    for crd in ("kustomizations.kustomize.toolkit.fluxcd.io", "applications.argoproj.io"):
        stack.kubectl(cluster, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
