"""A real Kubernetes API on this machine: etcd and kube-apiserver, started and stopped here.

Tests, the demo and people without Docker need a control plane that behaves exactly like a
cluster's (CRD validation, status subresources, RBAC, Events), which only the real binaries give.
``rescue cluster up --dir DIR`` and the test suite's session fixture both use this module.

Binaries come from, in order: ``KUBEBUILDER_ASSETS`` (people who ran ``setup-envtest``), then
the cache that ``hack/build-control-plane.sh`` fills from Go modules at pinned versions. Without
either we stop with a message that says how to provide them.

There is no kube-controller-manager: no garbage collection, no default ServiceAccount, and
Deployments never get Pods. Everything Rescue needs is the API server's own logic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
ADMIN_USER = "rescue-admin"


class ControlPlaneError(Exception):
    """The control plane could not be found, built, started or stopped."""


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "rescue" / "control-plane" / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}" / "bin"


def _complete(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in BINARIES)


def find_binaries(*, build: bool = False) -> Path:
    """The folder holding etcd, kube-apiserver and kubectl.

    With ``build`` the pinned versions are built from Go modules when nothing else provides
    them (10-20 minutes the first time on two cores, then cached).
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        if _complete(Path(assets)):
            return Path(assets)
        raise ControlPlaneError(
            f"KUBEBUILDER_ASSETS={assets} does not hold all of {', '.join(BINARIES)}; "
            "point it at a folder that does, or unset it to use the built cache"
        )
    cached = cache_dir()
    if _complete(cached):
        return cached
    if build and BUILD_SCRIPT.exists():
        logger.info(
            "Building etcd %s and kube-apiserver %s from Go modules; this happens once per "
            "machine and takes about 5 minutes on two cores.",
            ETCD_VERSION,
            K8S_VERSION,
        )
        result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False)
        if result.returncode == 0 and _complete(cached):
            return cached
        raise ControlPlaneError(f"building the control plane failed; see {cached.parent}/build.log")
    raise ControlPlaneError(
        "no etcd/kube-apiserver/kubectl found: set KUBEBUILDER_ASSETS to a folder holding them "
        f"(setup-envtest use), or run `make control-plane` to build {K8S_VERSION} into {cached}"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """What a client needs of any cluster, local or not: its kubeconfig and a kubectl."""

    kubeconfig: Path
    kubectl: Path

    def kubectl_argv(self, *args: str) -> list[str]:
        return [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args]


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane, as recorded in its folder."""

    dir: Path
    server: str
    token: str

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.dir / "certs" / "apiserver.crt"

    @property
    def bin_dir(self) -> Path:
        return Path((self.dir / "bin-dir").read_text().strip())

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def cluster(self) -> Cluster:
        return Cluster(kubeconfig=self.kubeconfig, kubectl=self.kubectl)

    @classmethod
    def load(cls, folder: Path) -> ControlPlane:
        server = (folder / "server").read_text().strip()
        token = (folder / "admin-token").read_text().strip()
        return cls(dir=folder, server=server, token=token)


def _generate_service_account_key(folder: Path) -> None:
    key, pub = folder / "sa.key", folder / "sa.pub"
    if key.exists() and pub.exists():
        return
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )


#: The processes this interpreter started, kept so they are reaped rather than left as zombies
#: (and so Python does not warn that they outlive their Popen objects: that is intended).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _start(argv: list[str], *, log: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    _children[process.pid] = process
    return process


def _healthy(server: str, token: str, ca_file: Path) -> bool:
    if not ca_file.exists():
        return False
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(  # noqa: S310 - the URL is the https server we started
        f"{server}/healthz", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200 and response.read().strip() == b"ok")
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def up(folder: Path, *, timeout: float = 120.0, build: bool = False) -> ControlPlane:
    """Start etcd and kube-apiserver on free loopback ports and wait until they are healthy.

    Returns while both keep running in their own sessions; their pid files, logs, data and the
    admin kubeconfig live in ``folder``. Calling it again on a running folder returns it as is.
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "server").exists() and _running(folder):
        plane = ControlPlane.load(folder)
        if _healthy(plane.server, plane.token, plane.ca_file):
            return plane
    bin_dir = find_binaries(build=build)
    (folder / "bin-dir").write_text(f"{bin_dir}\n")

    _generate_service_account_key(folder)
    token = secrets.token_hex(24)
    tokens = folder / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    tokens.chmod(0o600)
    (folder / "admin-token").write_text(f"{token}\n")
    (folder / "admin-token").chmod(0o600)

    etcd_client, etcd_peer, secure_port = free_port(), free_port(), free_port()
    etcd_data = folder / "etcd-data"
    etcd_argv = [
        str(bin_dir / "etcd"),
        f"--data-dir={etcd_data}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    _start(etcd_argv, log=folder / "etcd.log", pid_file=folder / "etcd.pid")

    certs = folder / "certs"
    certs.mkdir(exist_ok=True)
    server = f"https://127.0.0.1:{secure_port}"
    apiserver_argv = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        f"--cert-dir={certs}",
        f"--secure-port={secure_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        f"--token-auth-file={tokens}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={folder / 'sa.pub'}",
        f"--service-account-signing-key-file={folder / 'sa.key'}",
        "--api-audiences=https://kubernetes.default.svc.cluster.local",
        "--v=0",
    ]
    (folder / "kube-apiserver.argv").write_text(json.dumps(apiserver_argv))
    apiserver = _start(
        apiserver_argv, log=folder / "kube-apiserver.log", pid_file=folder / "kube-apiserver.pid"
    )
    (folder / "server").write_text(f"{server}\n")

    deadline = time.monotonic() + timeout
    ca_file = certs / "apiserver.crt"
    while not _healthy(server, token, ca_file):
        if apiserver.poll() is not None:
            down(folder)
            raise ControlPlaneError(
                f"kube-apiserver exited with {apiserver.returncode}:\n"
                f"{_log_tail(folder / 'kube-apiserver.log')}"
            )
        if time.monotonic() > deadline:
            down(folder)
            raise ControlPlaneError(
                f"kube-apiserver was not healthy within {timeout:.0f} s:\n"
                f"{_log_tail(folder / 'kube-apiserver.log')}"
            )
        time.sleep(0.5)

    plane = ControlPlane(dir=folder, server=server, token=token)
    _write_kubeconfig(plane)
    return plane


def _write_kubeconfig(plane: ControlPlane) -> None:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: rescue-local
  cluster:
    server: {plane.server}
    certificate-authority: {plane.ca_file}
users:
- name: {ADMIN_USER}
  user:
    token: {plane.token}
contexts:
- name: rescue-local
  context:
    cluster: rescue-local
    user: {ADMIN_USER}
    namespace: default
current-context: rescue-local
"""
    plane.kubeconfig.write_text(text)
    plane.kubeconfig.chmod(0o600)


def _pids(folder: Path) -> list[tuple[Path, int]]:
    found = []
    for name in ("kube-apiserver.pid", "etcd.pid"):
        pid_file = folder / name
        with contextlib.suppress(OSError, ValueError):
            found.append((pid_file, int(pid_file.read_text().strip())))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child of ours that exited is a zombie that still answers kill(0) until reaped.
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    return True


def _running(folder: Path) -> bool:
    pids = _pids(folder)
    return bool(pids) and all(_alive(pid) for _, pid in pids)


def down(folder: Path, *, timeout: float = 20.0) -> None:
    """Stop the API server, then etcd, and remove their data; the folder itself stays."""
    folder = folder.resolve()
    for pid_file, pid in _pids(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    for leftover in ("etcd-data", "certs"):
        shutil.rmtree(folder / leftover, ignore_errors=True)
    for leftover in ("server", "admin-token", "tokens.csv", "kubeconfig", "sa.key", "sa.pub"):
        (folder / leftover).unlink(missing_ok=True)


def stop_apiserver(folder: Path, *, timeout: float = 20.0) -> None:
    """Stop only the API server (etcd keeps the data): an outage, for fault tests."""
    folder = folder.resolve()
    pid_file = folder / "kube-apiserver.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


def start_apiserver(folder: Path, *, timeout: float = 120.0) -> ControlPlane:
    """Start the API server again as ``up`` first started it: same port, certificates, data."""
    folder = folder.resolve()
    plane = ControlPlane.load(folder)
    argv = json.loads((folder / "kube-apiserver.argv").read_text())
    apiserver = _start(
        argv, log=folder / "kube-apiserver.log", pid_file=folder / "kube-apiserver.pid"
    )
    deadline = time.monotonic() + timeout
    while not _healthy(plane.server, plane.token, plane.ca_file):
        if apiserver.poll() is not None or time.monotonic() > deadline:
            raise ControlPlaneError(
                f"kube-apiserver did not come back:\n{_log_tail(folder / 'kube-apiserver.log')}"
            )
        time.sleep(0.3)
    return plane
