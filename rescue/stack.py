"""The local stack as processes: CRDs, the webhook, the operator and a real Alertmanager.

The demo and the end-to-end tests run Rescue the way a user does, as separate processes talking
over HTTP to a real API server, so both start them through this module. Each process writes its
output to a log file in the run's folder, which is where to look when one fails to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rescue.controlplane import Cluster, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
CRDS = Path(__file__).parent / "crds"


class StackError(Exception):
    """A process of the local stack failed to start or to become ready."""


def rescue_program() -> str:
    """The ``rescue`` console script installed beside this interpreter."""
    beside = Path(sys.executable).parent / "rescue"
    if beside.exists():
        return str(beside)
    found = shutil.which("rescue")
    if not found:
        raise StackError("the rescue program is not installed; run `make dev`")
    return found


def child_env(plane: Cluster) -> dict[str, str]:
    env = dict(os.environ)
    env["KUBECONFIG"] = str(plane.kubeconfig)
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def kubectl(plane: Cluster, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        plane.kubectl_argv(*args), capture_output=True, text=True, check=False, timeout=60
    )
    if check and result.returncode != 0:
        raise StackError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def install_crds(plane: Cluster) -> None:
    kubectl(plane, "apply", "--server-side", "--force-conflicts", "-k", str(CRDS))
    for crd in (
        "rescues.alc.hecate.dev",
        "rescuepolicies.alc.hecate.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        # A CRD created a moment ago may have no conditions yet, which `kubectl wait` reports
        # as an error rather than waiting: ask again.
        for attempt in range(20):
            try:
                kubectl(plane, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
                break
            except StackError:
                if attempt == 19:
                    raise
                time.sleep(0.25)


def ensure_namespace(plane: Cluster, name: str) -> None:
    kubectl_apply(plane, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")


def kubectl_apply(plane: Cluster, manifest: str) -> None:
    """Apply manifests given as text (never logged: they may hold a Secret)."""
    result = subprocess.run(
        plane.kubectl_argv("apply", "-f", "-"),
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise StackError(f"kubectl apply failed: {result.stderr.strip()[-300:]}")


@dataclass
class Process:
    """A started process with its log; ``stop`` is safe to call more than once."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)


def start(name: str, argv: list[str], *, folder: Path, env: dict[str, str]) -> Process:
    log = folder / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return Process(name=name, popen=popen, log=log)


def wait_http(
    process: Process,
    url: str,
    *,
    timeout: float = 60.0,
    ok: int = 200,
    context: ssl.SSLContext | None = None,
) -> None:
    """Wait until ``url`` answers ``ok``; ``context`` is how to reach an https URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise StackError(
                f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                if response.status == ok:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise StackError(
        f"{process.name} was not ready at {url} within {timeout:.0f} s:\n{process.tail()}"
    )


@dataclass(frozen=True)
class ClientTLS:
    """How a client reaches a TLS server: the CA it trusts, and its own certificate for mTLS."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if self.cert and self.key:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True)
class ServerTLS:
    """What the webhook serves HTTPS with; ``client_ca`` set turns on mutual TLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def args(self) -> list[str]:
        argv = ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        return argv + (["--client-ca", str(self.client_ca)] if self.client_ca else [])


def start_webhook(
    plane: Cluster,
    *,
    folder: Path,
    token: str | None,
    name: str = "webhook",
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
    wait_ready: bool = True,
    tls: ServerTLS | None = None,
    probe_tls: ClientTLS | None = None,
    verbose: bool = False,
) -> Process:
    """The webhook as its own process; waits until it is ready (or only alive).

    Without ``token`` no token file is given (``extra_args`` then say how callers
    authenticate). With ``tls`` it serves HTTPS, and ``probe_tls`` is how the readiness check
    reaches it: the CA that signed its certificate, and a client certificate under mTLS.
    """
    if tls and not probe_tls:
        raise StackError("a webhook serving TLS needs probe_tls to check that it is ready")
    port = port or free_port()
    argv = [rescue_program(), *(["--verbose"] if verbose else []), "webhook"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    if token is not None:
        token_file = folder / f"{name}.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        argv += ["--token-file", str(token_file)]
    argv += ["--kubeconfig", str(plane.kubeconfig), *(tls.args() if tls else []), *extra_args]
    process = start(name, argv, folder=folder, env=child_env(plane))
    process.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    wait_http(
        process,
        f"{process.url}/{'readyz' if wait_ready else 'healthz'}",
        context=probe_tls.context() if probe_tls else None,
    )
    return process


def start_operator(
    plane: Cluster,
    *,
    folder: Path,
    name: str = "operator",
    extra_args: tuple[str, ...] = (),
    verbose: bool = False,
    env: dict[str, str] | None = None,
) -> Process:
    port, metrics_port = free_port(), free_port()
    argv = [
        rescue_program(),
        *(["--verbose"] if verbose else []),
        "operator",
        "--kubeconfig",
        str(plane.kubeconfig),
        "--liveness-port",
        str(port),
        "--metrics-address",
        "127.0.0.1",
        "--metrics-port",
        str(metrics_port),
        *extra_args,
    ]
    process = start(name, argv, folder=folder, env={**child_env(plane), **(env or {})})
    process.url = f"http://127.0.0.1:{port}"
    process.extra["metrics"] = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_http(process, f"{process.url}/healthz", timeout=90)
    return process


ALERTMANAGER_CONFIG = """\
route:
  receiver: rescue
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: rescue
    webhook_configs:
      - url: {url}/api/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""

#: Appended under ``http_config`` when Alertmanager reaches the webhook over (m)TLS.
ALERTMANAGER_TLS = """\
          tls_config:
            ca_file: {ca}
"""
ALERTMANAGER_CLIENT_CERT = """\
            cert_file: {cert}
            key_file: {key}
"""


def alertmanager_binary() -> str:
    for candidate in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(candidate)
        if found:
            return found
    raise StackError(
        "Alertmanager is not installed; `make tools` installs Debian's prometheus-alertmanager"
    )


def start_alertmanager(
    *,
    folder: Path,
    webhook_url: str,
    token_file: Path,
    name: str = "alertmanager",
    peers: tuple[str, ...] = (),
    cluster_port: int | None = None,
    tls: ClientTLS | None = None,
) -> Process:
    """A real Alertmanager posting to the webhook with a bearer token from a file.

    With ``tls`` it verifies the webhook's certificate against ``tls.ca`` and, when
    ``tls.cert`` is set, presents that client certificate (``http_config.tls_config``).
    """
    port = free_port()
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    config = home / "alertmanager.yml"
    text = ALERTMANAGER_CONFIG.format(url=webhook_url, token_file=token_file)
    if tls:
        text += ALERTMANAGER_TLS.format(ca=tls.ca)
        if tls.cert and tls.key:
            text += ALERTMANAGER_CLIENT_CERT.format(cert=tls.cert, key=tls.key)
    config.write_text(text)
    argv = [
        alertmanager_binary(),
        f"--config.file={config}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ]
    if cluster_port:
        argv += [
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            "--cluster.settle-timeout=2s",
        ]
        argv += [f"--cluster.peer={peer}" for peer in peers]
    else:
        argv.append("--cluster.listen-address=")
    process = start(name, argv, folder=folder, env=dict(os.environ))
    process.url = f"http://127.0.0.1:{port}"
    wait_http(process, f"{process.url}/-/ready")
    return process


def amtool(alertmanager_url: str, *args: str) -> str:
    program = shutil.which("amtool")
    if not program:
        raise StackError("amtool is not installed; `make tools` installs prometheus-alertmanager")
    result = subprocess.run(
        [program, f"--alertmanager.url={alertmanager_url}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise StackError(f"amtool {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise StackError("Prometheus is not installed; `make tools` installs Debian's prometheus")
    return found


def start_prometheus(
    *,
    folder: Path,
    targets: dict[str, str],
    rule_files: tuple[Path, ...] = (),
    name: str = "prometheus",
    interval: str = "1s",
) -> Process:
    """A real Prometheus scraping ``targets`` ({job: host:port}) every ``interval``."""
    port = free_port()
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{address}']\n"
        for job, address in targets.items()
    )
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config = home / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + f"scrape_configs:\n{jobs}"
    )
    argv = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=info",
    ]
    process = start(name, argv, folder=folder, env=dict(os.environ))
    process.url = f"http://127.0.0.1:{port}"
    wait_http(process, f"{process.url}/-/ready")
    return process
