"""End to end: the API server goes away in the middle of incidents and comes back. The webhook
answers 503 meanwhile, the real Alertmanager keeps retrying, every incident gets its rescue once
the API server is back, and the operator carries on by itself."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import eventually

from rescue import controlplane, stack
from rescue.core import kube

OUTAGE_SECONDS = 60.0


@dataclass
class Outage:
    folder: Path
    plane: controlplane.ControlPlane
    webhook: stack.Process
    operator: stack.Process
    alertmanager: stack.Process
    rescues: kube.Rescues


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    """A control plane of its own (stopping the suite's would disturb other tests)."""
    folder = tmp_path / "plane"
    plane = controlplane.up(folder, build=True)
    processes: list[stack.Process] = []
    try:
        stack.install_crds(plane.cluster)
        for name in ("before", "during"):
            stack.ensure_namespace(plane.cluster, name)
        token = secrets.token_hex(16)
        webhook = stack.start_webhook(plane.cluster, folder=tmp_path, token=token)
        processes.append(webhook)
        operator = stack.start_operator(plane.cluster, folder=tmp_path)
        processes.append(operator)
        token_file = tmp_path / "alertmanager.token"
        token_file.write_text(token)
        alertmanager = stack.start_alertmanager(
            folder=tmp_path, webhook_url=webhook.url, token_file=token_file
        )
        processes.append(alertmanager)
        yield Outage(
            folder,
            plane,
            webhook,
            operator,
            alertmanager,
            kube.Rescues(kube.load_client(str(plane.kubeconfig))),
        )
    finally:
        for process in reversed(processes):
            process.stop()
        controlplane.down(folder)


def _fire(outage: Outage, namespace: str) -> None:
    stack.amtool(
        outage.alertmanager.url,
        "alert",
        "add",
        "CheckoutDown",
        f"namespace={namespace}",
        "deployment=checkout",
        "severity=critical",
        "--annotation=summary=Checkout returns 503",
    )


def _opened(outage: Outage, namespace: str) -> Any:
    try:
        items = outage.rescues.list(namespace)
    except kube.KubeUnavailable:
        return None
    return items if items and (items[0].get("status") or {}).get("phase") == "Active" else None


def _unavailable_answers(outage: Outage) -> float:
    text = httpx.get(f"{outage.webhook.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('rescue_webhook_rejected_total{reason="api_unavailable"}'):
            return float(line.split()[-1])
    return 0.0


def test_incidents_during_an_api_server_outage_get_their_rescues_once_it_is_back(
    outage: Outage,
) -> None:
    _fire(outage, "before")
    eventually(lambda: _opened(outage, "before"), timeout=60, what="the first rescue")

    controlplane.stop_apiserver(outage.folder)
    stopped = time.monotonic()
    _fire(outage, "during")
    # Alertmanager delivers, the webhook cannot record it and says 503; Alertmanager retries.
    eventually(
        lambda: _unavailable_answers(outage) >= 2,
        timeout=60,
        what="the webhook to answer 503 to Alertmanager's attempts (and retries)",
    )
    ready = httpx.get(f"{outage.webhook.url}/readyz", timeout=10)
    assert ready.status_code == 503
    # Longer than all of kopf's retries of one request (1+1+2+3+5+8+13+21 s), as an upgrade of
    # the control plane can be: the operator must reconnect by itself, not give up.
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    assert outage.operator.alive()

    controlplane.start_apiserver(outage.folder)
    rescue = eventually(
        lambda: _opened(outage, "during"),
        timeout=90,
        what="the incident fired during the outage to have its rescue, opened by the operator",
    )
    assert len(rescue) == 1
    assert rescue[0]["spec"]["severity"] == "SEV1"
    assert len(outage.rescues.list("before")) == 1
    assert outage.operator.alive() and outage.webhook.alive()
