"""``make demo``: the whole loop on this machine, with real components, in about a minute.

It starts a local control plane (building it first if this machine never has), the webhook and
the operator as their own processes, and Debian's Alertmanager configured to post to the webhook
with a bearer token. Then it fires an alert through Alertmanager, shows the rescue as the
operator opens it, resolves the alert and shows that too. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from rescue import controlplane, stack

NAMESPACE = "shop"
ALERT = "CheckoutErrorRate"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def watch(
    plane: controlplane.Cluster, until: Callable[[str], bool], *, timeout: float = 60.0
) -> str:
    """Print `kubectl get rescues` each time it changes, until ``until`` holds for its output."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = stack.kubectl(plane, "get", "rescues", "-n", NAMESPACE, check=False)
        if out and out != last:
            print(out.rstrip(), flush=True)
            print(flush=True)
            last = out
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


def run(*, folder: Path | None = None, keep: bool = False) -> int:
    with _run_folder(folder) as where:
        processes: list[stack.Process] = []
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

            token = secrets.token_hex(16)
            say("Starting the webhook and the operator")
            webhook = stack.start_webhook(plane, folder=where, token=token)
            processes.append(webhook)
            processes.append(stack.start_operator(plane, folder=where))
            say(f"Webhook on {webhook.url}; starting Alertmanager pointed at it with a token")
            alertmanager = stack.start_alertmanager(
                folder=where, webhook_url=webhook.url, token_file=where / "webhook.token"
            )
            processes.append(alertmanager)

            labels = [f"namespace={NAMESPACE}", "deployment=checkout", "severity=critical"]
            say(f"Firing {ALERT} (critical) for deployment {NAMESPACE}/checkout")
            stack.amtool(
                alertmanager.url,
                "alert",
                "add",
                ALERT,
                *labels,
                "--annotation=summary=Checkout is failing 12% of requests",
            )
            watch(plane, lambda out: "Active" in out and "Triage" in out)

            say("Resolving the alert in Alertmanager")
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            stack.amtool(alertmanager.url, "alert", "add", ALERT, *labels, f"--end={now}")
            name = _wait_resolved(plane)
            say(f"rescue show {name}")
            _show(plane, name)
            say(
                "Done: the alert became a rescue, the operator opened it, and its resolution "
                "is on the timeline."
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
            controlplane.down(plane_dir)


def _wait_resolved(plane: controlplane.Cluster, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = stack.kubectl(
            plane,
            "get",
            "rescues",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.alertsFiring}{'\\n'}{end}",
            check=False,
        )
        for line in out.splitlines():
            name, _, firing = line.partition(" ")
            if firing == "0":
                watch(plane, lambda _: True)
                return name
        time.sleep(0.5)
    raise stack.StackError("the resolved alert did not reach the rescue within 60 s")


def _show(plane: controlplane.Cluster, name: str) -> None:
    import subprocess

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
