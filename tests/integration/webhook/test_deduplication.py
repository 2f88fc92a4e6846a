"""One incident, one Rescue: real duplicates, posted concurrently, through two webhook processes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import notification

from rescue import controlplane, stack
from rescue.core import kube


@pytest.fixture
def second_webhook(
    cluster: controlplane.Cluster, run_dir: Path, token: str
) -> Iterator[stack.Process]:
    process = stack.start_webhook(cluster, folder=run_dir, token=token, name="webhook-2")
    yield process
    process.stop()


def test_same_notification_posted_concurrently_to_two_webhooks_makes_one_rescue(
    webhook: stack.Process,
    second_webhook: stack.Process,
    token: str,
    namespace: str,
    rescues: kube.Rescues,
) -> None:
    payload = notification(namespace=namespace)
    urls = [webhook.url, second_webhook.url] * 20

    def deliver(url: str) -> tuple[int, str]:
        response = httpx.post(
            f"{url}/api/v1/alerts",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        return response.status_code, response.json()["status"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(deliver, urls))

    assert {code for code, _ in results} == {200}
    outcomes = [outcome for _, outcome in results]
    assert outcomes.count("created") == 1
    assert set(outcomes) <= {"created", "unchanged", "updated"}
    assert len(rescues.list(namespace)) == 1


def test_a_joining_alert_updates_the_incident_instead_of_opening_another(
    webhook: stack.Process, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    def deliver(payload: dict[str, object]) -> httpx.Response:
        return httpx.post(
            f"{webhook.url}/api/v1/alerts",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    first = notification(namespace=namespace)
    assert deliver(first).json()["status"] == "created"
    joined = notification(namespace=namespace)
    second_alert = dict(joined["alerts"][0])
    second_alert.update(fingerprint="ffff000011112222", startsAt="2026-12-03T10:05:00Z")
    second_alert["labels"] = {**second_alert["labels"], "pod": "checkout-2"}
    joined["alerts"].append(second_alert)
    assert deliver(joined).json()["status"] == "updated"

    (rescue,) = rescues.list(namespace)
    assert sorted(a["fingerprint"] for a in rescue["spec"]["alerts"]) == [
        "a1b2c3d4e5f60718",
        "ffff000011112222",
    ]


def test_concurrent_updates_of_one_rescue_lose_nothing(
    webhook: stack.Process, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    # Twenty different alerts join the same incident at once; each update must survive.
    base = notification(namespace=namespace)
    httpx.post(
        f"{webhook.url}/api/v1/alerts", json=base, headers={"Authorization": f"Bearer {token}"}
    )
    payloads = []
    for i in range(20):
        payload = notification(namespace=namespace)
        payload["alerts"][0].update(fingerprint=f"{i:016x}", startsAt=f"2026-12-03T10:{i:02d}:30Z")
        payloads.append(payload)

    def deliver(payload: dict[str, object]) -> int:
        return httpx.post(
            f"{webhook.url}/api/v1/alerts",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(deliver, payloads)) == {200}

    (rescue,) = rescues.list(namespace)
    assert len(rescue["spec"]["alerts"]) == 21


def test_resolved_notification_for_an_unknown_incident_creates_nothing(
    webhook: stack.Process, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    payload = notification(namespace=namespace, status="resolved")
    response = httpx.post(
        f"{webhook.url}/api/v1/alerts", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert rescues.list(namespace) == []


def test_alert_without_a_namespace_lands_in_the_default_namespace(
    webhook: stack.Process, token: str, default_namespace: str, rescues: kube.Rescues
) -> None:
    payload = notification(namespace="", alertname="NodeDiskFull")
    labels = {k: v for k, v in payload["commonLabels"].items() if k != "namespace"}
    payload["commonLabels"] = labels
    payload["alerts"][0]["labels"] = dict(labels)
    payload["groupKey"] = '{}:{alertname="NodeDiskFull", instance="n1"}'
    response = httpx.post(
        f"{webhook.url}/api/v1/alerts", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json()["rescue"].startswith(f"{default_namespace}/nodediskfull-")


def test_alert_for_a_namespace_that_does_not_exist_is_kept_in_the_default_namespace(
    webhook: stack.Process, token: str, default_namespace: str
) -> None:
    payload = notification(namespace="no-such-namespace-here", alertname="GhostDown")
    response = httpx.post(
        f"{webhook.url}/api/v1/alerts", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json()["rescue"].startswith(f"{default_namespace}/ghostdown-")

    # A duplicate delivery merges into that rescue, where it is.
    again = httpx.post(
        f"{webhook.url}/api/v1/alerts", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"status": "unchanged", "rescue": response.json()["rescue"]}
