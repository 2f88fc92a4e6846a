"""``make demo``: the whole loop on this machine, with real components, in about a minute.

It starts a local control plane (building it first if this machine never has), the webhook and
the operator as their own processes, Debian's Alertmanager configured to post to the webhook
with a bearer token, and a GitOps repository served over smart HTTP whose history holds a good
deploy of ``shop/checkout`` and, ten minutes ago, a bad one. Then it fires an alert through
Alertmanager, shows the rescue as the operator opens it and rolls the bad deploy back by a
commit, shows that commit with its trailers, resolves the alert and shows the verified rescue.
Debian's Prometheus scrapes both processes throughout, and the demo ends with the response times
it recorded (time to detect, to mitigate, to restore). Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import httpx

from rescue import controlplane, stack
from rescue.gitserver import GitServer
from rescue.sample import WorkClone, deployment, policy_manifest

NAMESPACE = "shop"
ALERT = "CheckoutErrorRate"
LABELS = [f"namespace={NAMESPACE}", "deployment=checkout", "severity=critical", "team=shop"]


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def watch(
    plane: controlplane.Cluster, until: Callable[[str], bool], *, timeout: float = 60.0
) -> str:
    """Print `kubectl get rescues` each time a row changes, until ``until`` holds for it."""
    last: list[list[str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = stack.kubectl(plane, "get", "rescues", "-n", NAMESPACE, check=False)
        rows = [line.split()[:-1] for line in out.splitlines()]  # AGE changes every second
        if out and rows != last:
            print(out.rstrip() + "\n", flush=True)
            last = rows
        if until(out):
            return out
        time.sleep(0.5)
    raise stack.StackError(f"the rescue did not reach the expected state within {timeout:.0f} s")


@contextlib.contextmanager
def _run_folder(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="rescue-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A SIGTERM (a terminal closing, `kill`) stops the demo the way Ctrl-C does: everything it
    # started is stopped in the ``finally`` below.
    raise KeyboardInterrupt


def run(*, folder: Path | None = None, keep: bool = False) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with _run_folder(folder) as where:
        processes: list[stack.Process] = []
        servers: list[GitServer] = []
        plane_dir = where / "control-plane"
        try:
            say("Starting a local Kubernetes control plane (etcd + kube-apiserver)")
            started = time.monotonic()
            local = controlplane.up(plane_dir, build=True)
            say(f"API server ready at {local.server} in {time.monotonic() - started:.1f} s")
            plane = local.cluster
            stack.install_crds(plane)
            for namespace in (NAMESPACE, "rescue-system"):
                stack.ensure_namespace(plane, namespace)

            say(
                "Creating the GitOps repository: checkout 1.4.2 two hours ago, 1.5.0 ten minutes"
                " ago"
            )
            git_token = secrets.token_hex(16)
            server = GitServer(where / "remotes", token=git_token).start()
            servers.append(server)
            work = _gitops_repository(server, git_token, where / "work")
            _policy(plane, server.repo_url("gitops"), git_token)

            token = secrets.token_hex(16)
            say("Starting the webhook and the operator")
            webhook = stack.start_webhook(plane, folder=where, token=token)
            processes.append(webhook)
            operator = stack.start_operator(
                plane, folder=where, extra_args=("--git-cache", str(where / "cache"))
            )
            processes.append(operator)
            prometheus = stack.start_prometheus(
                folder=where,
                targets={
                    "rescue-operator": urlsplit(operator.extra["metrics"]).netloc,
                    "rescue-webhook": urlsplit(webhook.url).netloc,
                },
            )
            processes.append(prometheus)
            say(f"Webhook on {webhook.url}; starting Alertmanager pointed at it with a token")
            alertmanager = stack.start_alertmanager(
                folder=where, webhook_url=webhook.url, token_file=where / "webhook.token"
            )
            processes.append(alertmanager)

            say(f"Firing {ALERT} (critical) for deployment {NAMESPACE}/checkout")
            stack.amtool(
                alertmanager.url,
                "alert",
                "add",
                ALERT,
                *LABELS,
                "--annotation=summary=Checkout is failing 12% of requests",
            )
            watch(plane, _has_commit)

            say("The rollback commit the operator pushed (git log -1 on the GitOps repository):")
            print(work.log("-1", "--stat", "--format=commit %H%nAuthor: %an <%ae>%n%n%B").rstrip())
            print(flush=True)

            say("Resolving the alert in Alertmanager")
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            stack.amtool(alertmanager.url, "alert", "add", ALERT, *LABELS, f"--end={now}")
            name = _wait_verified(plane)
            say(f"rescue show {name}")
            _show(plane, name)
            say(f"Response times as Prometheus recorded them ({prometheus.url}):")
            for line in _response_times(prometheus):
                print(f"    {line}", flush=True)
            say(
                "Done: the alert became a rescue, the operator rolled checkout back to 1.4.2 by "
                "a commit, the resolved alert verified it, and the MTTR is in Prometheus."
            )
            if keep:
                say(f"Still running; KUBECONFIG={plane.kubeconfig}. Ctrl-C stops everything.")
                while all(p.alive() for p in processes):
                    time.sleep(1)
            return 0
        except stack.StackError as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            say("Interrupted; stopping everything the demo started")
            return 130
        finally:
            for process in reversed(processes):
                process.stop()
            for server in servers:
                server.stop()
            controlplane.down(plane_dir)


def _gitops_repository(server: GitServer, token: str, path: Path) -> WorkClone:
    server.create_repo("gitops")
    work = WorkClone(server.repo_url("gitops"), token=token, path=path)
    manifest = f"apps/{NAMESPACE}/checkout/deployment.yaml"
    now = datetime.now(UTC)
    for image, message, when in (
        ("shop/checkout:1.4.2", "Deploy checkout 1.4.2", now - timedelta(hours=2)),
        (
            "shop/checkout:1.5.0",
            "Deploy checkout 1.5.0 (new payment flow)",
            now - timedelta(minutes=10),
        ),
    ):
        work.write(manifest, deployment(name="checkout", namespace=NAMESPACE, image=image))
        work.commit(message, when=when)
    work.push()
    return work


def _policy(plane: controlplane.Cluster, url: str, token: str) -> None:
    gates = (
        "{minFiringSeconds: 0, cooldownSeconds: 1800, maxPerDay: 3, verifyWithinSeconds: 600, "
        "stableSeconds: 5}"
    )
    stack.kubectl_apply(
        plane,
        policy_manifest(
            namespace=NAMESPACE, name="shop", team="shop", url=url, token=token, gates=gates
        ),
    )


def _has_commit(table: str) -> bool:
    """Whether a row of `kubectl get rescues` shows a commit (every column filled)."""
    return any(len(line.split()) >= 7 for line in table.splitlines()[1:])


def _wait_verified(plane: controlplane.Cluster, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    query = "{range .items[*]}{.metadata.name} {.status.mitigation.state}{'\\n'}{end}"
    while time.monotonic() < deadline:
        out = stack.kubectl(
            plane, "get", "rescues", "-n", NAMESPACE, "-o", f"jsonpath={query}", check=False
        )
        for line in out.splitlines():
            name, _, state = line.partition(" ")
            if state == "Verified":
                return name
        time.sleep(0.5)
    raise stack.StackError("the rollback was not verified within 60 s of the alert resolving")


def _show(plane: controlplane.Cluster, name: str) -> None:
    subprocess.run(
        [
            stack.rescue_program(),
            "show",
            name,
            "-n",
            NAMESPACE,
            "--kubeconfig",
            str(plane.kubeconfig),
        ],
        check=False,
    )


#: What the demo reads back from Prometheus: the mean of each step's duration histogram.
STEPS = (("detect", "time to detect"), ("mitigate", "time to mitigate"), ("resolve", "MTTR"))


def _response_times(prometheus: stack.Process, timeout: float = 60.0) -> list[str]:
    """One line per step, once Prometheus has scraped the recovery (stable for 5 s)."""
    deadline = time.monotonic() + timeout
    found: dict[str, float] = {}
    while time.monotonic() < deadline and len(found) < len(STEPS):
        for step, _ in STEPS:
            metric = f"rescue_time_to_{step}_seconds"
            query = f'sum({metric}_sum{{severity="SEV1"}}) / sum({metric}_count{{severity="SEV1"}})'
            try:
                answer = httpx.get(
                    f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=5
                ).json()
                value = float(answer["data"]["result"][0]["value"][1])
            except (httpx.HTTPError, KeyError, IndexError, ValueError):
                continue
            if value == value:  # not NaN: observed
                found[step] = value
        time.sleep(0.5)
    if len(found) < len(STEPS):
        raise stack.StackError(
            f"Prometheus did not show every response time within {timeout:.0f} s "
            f"(has {', '.join(found) or 'none'}); see prometheus.log in the run folder"
        )
    return [
        f"{label:<17}{found[step]:7.1f} s   (rescue_time_to_{step}_seconds)"
        for step, label in STEPS
    ]
