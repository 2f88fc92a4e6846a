"""One control plane for the parts of ``bench/run.py``, and the processes each part starts.

The parts run one after the other on the same etcd and kube-apiserver (started once: a start
costs seconds the quick run does not have), each in namespaces of its own, and each starts
and stops its own processes: the webhook, the operator, and the baselines beside them. Every
process is started the way users run it (``rescue webhook``, ``rescue operator`` through
``rescue.stack``) and stopped by ``stop``, also after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from pathlib import Path

from bench.apiserver import ApiServer
from bench.common import REPO_ROOT, say, stop_processes
from rescue import controlplane, stack
from rescue.controlplane import free_port

MINIMAL_ENDPOINT = REPO_ROOT / "bench" / "minimal_endpoint.py"
MINIMAL_OPERATOR = REPO_ROOT / "bench" / "minimal_operator.py"
#: Where rescues go whose alerts name no namespace (the webhook's default).
DEFAULT_NAMESPACE = "rescue-system"


def quiet_policy(namespace: str) -> str:
    """A RescuePolicy selecting every alert that never touches git (every mode ``none``, no
    repository) and lets Resolve end as soon as the alerts resolve (``stableSeconds: 0``), so
    that a rescue can be walked to its conclusion in seconds."""
    return f"""apiVersion: alc.hecate.dev/v1alpha1
kind: RescuePolicy
metadata: {{name: bench, namespace: {namespace}}}
spec:
  selector: {{}}
  target: {{kind: Deployment, namespaceLabel: namespace, nameLabel: deployment}}
  mitigation:
    strategy: rollback
    modes: {{SEV1: none, SEV2: none, SEV3: none, SEV4: none}}
  gates: {{stableSeconds: 0}}
"""


class Cluster:
    """The control plane, the benchmarks' client of it, and the processes started on it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.plane: controlplane.ControlPlane | None = None
        self.api: ApiServer | None = None
        self.processes: list[stack.Process] = []
        self.webhook_token = secrets.token_hex(16)

    def start(self) -> Cluster:
        say("Starting a local control plane (etcd + kube-apiserver)")
        self.plane = controlplane.up(self.folder / "control-plane", build=True)
        stack.install_crds(self.plane.cluster)
        stack.ensure_namespace(self.plane.cluster, DEFAULT_NAMESPACE)
        self.api = ApiServer(self.plane)
        return self

    def stop(self) -> None:
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        stop_processes(self.processes, markers=(str(MINIMAL_ENDPOINT), str(MINIMAL_OPERATOR)))
        self.processes.clear()
        with contextlib.suppress(Exception):
            controlplane.down(self.folder / "control-plane")

    @property
    def running(self) -> controlplane.ControlPlane:
        if self.plane is None:
            raise RuntimeError("the control plane is not started")
        return self.plane

    @property
    def client(self) -> ApiServer:
        if self.api is None:
            raise RuntimeError("the control plane is not started")
        return self.api

    def control_plane_pids(self) -> list[int]:
        """etcd's and kube-apiserver's pids, to count the CPU time they spend on a run."""
        folder = self.running.dir
        return [int((folder / f"{name}.pid").read_text()) for name in ("etcd", "kube-apiserver")]

    def namespace(self, name: str, *, policy: bool = False) -> str:
        stack.ensure_namespace(self.running.cluster, name)
        if policy:
            stack.kubectl_apply(self.running.cluster, quiet_policy(name))
        return name

    # The product

    def start_webhook(self, name: str = "webhook") -> stack.Process:
        process = stack.start_webhook(
            self.running.cluster, folder=self.folder, token=self.webhook_token, name=name
        )
        self.processes.append(process)
        return process

    def start_operator(self, namespaces: tuple[str, ...], name: str = "operator") -> stack.Process:
        watched = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        process = stack.start_operator(
            self.running.cluster,
            folder=self.folder,
            name=name,
            extra_args=(*watched, "--git-cache", str(self.folder / "git-cache")),
        )
        self.processes.append(process)
        return process

    # The baselines

    def start_minimal_endpoint(self) -> stack.Process:
        port = free_port()
        argv = [sys.executable, str(MINIMAL_ENDPOINT), "--port", str(port)]
        process = stack.start(
            "minimal-endpoint", argv, folder=self.folder, env=stack.child_env(self.running.cluster)
        )
        self.processes.append(process)
        process.url = f"http://127.0.0.1:{port}"
        stack.wait_http(process, f"{process.url}/healthz")
        return process

    def start_minimal_operator(
        self, namespaces: tuple[str, ...], *, connections: int = 0
    ) -> stack.Process:
        """The minimal kopf operator; ``connections`` > 0 bounds its connections to the API
        server (kopf's own session has no bound)."""
        port = free_port()
        watched = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
        argv = [sys.executable, str(MINIMAL_OPERATOR), *watched, "--liveness-port", str(port)]
        argv += ["--connections", str(connections)]
        process = stack.start(
            "minimal-operator", argv, folder=self.folder, env=stack.child_env(self.running.cluster)
        )
        self.processes.append(process)
        process.url = f"http://127.0.0.1:{port}"
        stack.wait_http(process, f"{process.url}/healthz", timeout=90)
        return process

    def stop_process(self, process: stack.Process, *, kill: bool = False) -> float:
        """Stop one process (SIGKILL with ``kill``: a crash); returns how long that took."""
        began = time.perf_counter()
        process.stop(kill=kill)
        if process in self.processes:
            self.processes.remove(process)
        return time.perf_counter() - began
