"""Triage as information arrives: an incident that spreads to more workloads is raised a level."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from helpers import notification

from rescue.core import kube


def _alert(namespace: str, deployment: str, fingerprint: str) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "CheckoutErrorRate",
            "namespace": namespace,
            "deployment": deployment,
            "severity": "warning",
        },
        "annotations": {},
        "startsAt": "2026-12-03T10:05:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def test_a_third_workload_joining_raises_the_severity_a_level_and_says_why(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues
) -> None:
    first = post(notification(namespace=namespace, severity="warning"))
    name = first.json()["rescue"].split("/")[1]
    assert rescues.get(namespace, name)["spec"]["severity"] == "SEV3"

    spread = notification(
        namespace=namespace,
        severity="warning",
        extra_alerts=[
            _alert(namespace, "cart", "b0b0b0b0b0b0b0b0"),
            _alert(namespace, "payments", "c0c0c0c0c0c0c0c0"),
        ],
    )
    assert post(spread).json()["status"] == "updated"
    spec = rescues.get(namespace, name)["spec"]
    assert spec["severity"] == "SEV2"
    assert spec["triageNote"]["reason"] == "blast radius: 3 workloads are affected"
    assert spec["triageNote"]["by"] == "rescue-webhook"

    # The same spread again is a duplicate: no second raise.
    assert post(spread).json()["status"] == "unchanged"
    assert rescues.get(namespace, name)["spec"]["severity"] == "SEV2"
