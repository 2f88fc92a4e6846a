"""A RescuePolicy's triage decides how its alerts' severity label reads, on the real API server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from helpers import notification
from kubernetes import client

from rescue.core import kube


def _policy(api_client: Any, namespace: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescuepolicies",
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "RescuePolicy",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def _severity(post: Callable[..., httpx.Response], rescues: kube.Rescues, payload: Any) -> str:
    answer = post(payload)
    assert answer.status_code == 200, answer.text
    namespace, name = answer.json()["rescue"].split("/")
    return str(rescues.get(namespace, name)["spec"]["severity"])


def test_the_selecting_policys_mapping_decides_the_new_rescues_severity(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues, api_client: Any
) -> None:
    _policy(
        api_client,
        namespace,
        "checkout",
        {
            "selector": {"matchLabels": {"deployment": "checkout"}},
            "triage": {"severityMap": {"critical": "SEV2"}},
        },
    )
    # A policy selecting other alerts says nothing about these.
    _policy(
        api_client,
        namespace,
        "cart",
        {
            "selector": {"matchLabels": {"deployment": "cart"}},
            "triage": {"severityMap": {"critical": "SEV4"}},
        },
    )

    assert _severity(post, rescues, notification(namespace=namespace)) == "SEV2"
    # The flags' mapping still reads what the policy leaves out.
    other = notification(namespace=namespace, alertname="CheckoutLatency", severity="warning")
    assert _severity(post, rescues, other) == "SEV3"


def test_without_a_policy_the_webhooks_mapping_decides(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues
) -> None:
    assert _severity(post, rescues, notification(namespace=namespace)) == "SEV1"


def test_a_policy_may_read_another_label(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues, api_client: Any
) -> None:
    _policy(
        api_client,
        namespace,
        "priority",
        {"triage": {"severityLabel": "priority", "severityMap": {"p2": "SEV2"}}},
    )
    payload = notification(namespace=namespace, severity="info")
    for alert in payload["alerts"]:
        alert["labels"]["priority"] = "P2"
    assert _severity(post, rescues, payload) == "SEV2"
