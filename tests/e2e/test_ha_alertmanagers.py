"""End to end: a highly available pair of real Alertmanagers, clustered by gossip, each posting
to its own webhook process, as Prometheus sends every alert to both. Whatever the pair delivers
(once, or twice when gossip is slower than the second's wait), each incident has one rescue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import eventually

from rescue import controlplane, stack
from rescue.controlplane import free_port
from rescue.core import kube

pytestmark = pytest.mark.usefixtures("operator")

INCIDENTS = 5


@pytest.fixture
def pair(
    cluster: controlplane.Cluster, webhook: stack.Process, token: str, tmp_path: Path
) -> Iterator[list[stack.Process]]:
    second = stack.start_webhook(cluster, folder=tmp_path, token=token, name="webhook-b")
    token_file = tmp_path / "alertmanager.token"
    token_file.write_text(token)
    gossip = free_port()
    first_am = stack.start_alertmanager(
        folder=tmp_path,
        webhook_url=webhook.url,
        token_file=token_file,
        name="alertmanager-a",
        cluster_port=gossip,
    )
    second_am = stack.start_alertmanager(
        folder=tmp_path,
        webhook_url=second.url,
        token_file=token_file,
        name="alertmanager-b",
        cluster_port=free_port(),
        peers=(f"127.0.0.1:{gossip}",),
    )
    try:
        yield [first_am, second_am, webhook, second]
    finally:
        for process in (second_am, first_am, second):
            process.stop()


def _received(webhook: stack.Process) -> float:
    text = httpx.get(f"{webhook.url}/metrics", timeout=5).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("rescue_webhook_notifications_total{")
    )


def test_a_clustered_alertmanager_pair_makes_one_rescue_per_incident(
    pair: list[stack.Process], cluster: controlplane.Cluster, rescues: kube.Rescues
) -> None:
    first_am, second_am, webhook_a, webhook_b = pair
    eventually(
        lambda: (
            '"peers"' in httpx.get(f"{first_am.url}/api/v2/status", timeout=5).text
            and len(
                httpx.get(f"{first_am.url}/api/v2/status", timeout=5).json()["cluster"]["peers"]
            )
            == 2
        ),
        what="the two Alertmanagers to form a cluster",
    )
    before = _received(webhook_a) + _received(webhook_b)
    namespaces = [f"ha-{uuid.uuid4().hex[:8]}" for _ in range(INCIDENTS)]
    for namespace in namespaces:
        stack.ensure_namespace(cluster, namespace)
    # As Prometheus does: every alert to every Alertmanager of the pair.
    for namespace in namespaces:
        for alertmanager in (first_am, second_am):
            stack.amtool(
                alertmanager.url,
                "alert",
                "add",
                "CheckoutDown",
                f"namespace={namespace}",
                "deployment=checkout",
                "severity=critical",
            )

    def all_recorded() -> Any:
        found = {ns: rescues.list(ns) for ns in namespaces}
        return found if all(found.values()) else None

    found = eventually(all_recorded, timeout=90, what="a rescue for every incident")
    # Let any second delivery arrive (the second Alertmanager waits for its peer first).
    eventually(
        lambda: _received(webhook_a) + _received(webhook_b) - before >= INCIDENTS,
        what="the notifications to be counted",
    )
    found = {ns: rescues.list(ns) for ns in namespaces}
    assert {ns: len(items) for ns, items in found.items()} == dict.fromkeys(namespaces, 1)
    for items in found.values():
        assert len(items[0]["spec"]["alerts"]) == 1
