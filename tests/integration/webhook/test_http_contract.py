"""Alertmanager's delivery contract, as a matrix, against the webhook process and a real API.

200 for anything accepted (duplicates included), 400 for malformed or non-v4 bodies, 401
without valid credentials, 413 over the size limit, 503 when the API server cannot be reached.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import notification

from rescue import controlplane, stack
from rescue.core import kube


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Basic " + base64.b64encode(b"user:pass").decode(), 401),
        ("Token abc", 401),
    ],
)
def test_requests_without_valid_credentials_get_401(
    post: Callable[..., httpx.Response], namespace: str, auth: str | None, expected: int
) -> None:
    response = post(notification(namespace=namespace), auth=auth)
    assert response.status_code == expected
    assert response.json()["error"] == "missing or invalid credentials"


def test_valid_notification_creates_a_rescue_and_answers_200(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues
) -> None:
    response = post(notification(namespace=namespace))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "created"
    ns, name = body["rescue"].split("/")
    assert ns == namespace
    created = rescues.get(namespace, name)
    assert created["spec"]["severity"] == "SEV1"
    assert created["spec"]["target"] == {
        "kind": "Deployment",
        "namespace": namespace,
        "name": "checkout",
    }


def test_duplicate_notification_answers_200_and_changes_nothing(
    post: Callable[..., httpx.Response], namespace: str, rescues: kube.Rescues
) -> None:
    first = post(notification(namespace=namespace))
    name = first.json()["rescue"].split("/")[1]
    before = rescues.get(namespace, name)
    again = post(notification(namespace=namespace))
    assert again.status_code == 200
    assert again.json() == {"status": "unchanged", "rescue": first.json()["rescue"]}
    after = rescues.get(namespace, name)
    # The operator may write the status meanwhile; the spec is what the webhook owns.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"{not json", "application/json", "the body is not valid JSON"),
        (b"", "application/json", "the body is not valid JSON"),
        (b"[]", "application/json", "the body is not an Alertmanager webhook v4 notification"),
        (
            b'{"version": "3"}',
            "application/json",
            "the body is not an Alertmanager webhook v4 notification",
        ),
        (b"\xff\xfe\x00", "application/json", "the body is not valid JSON"),
    ],
)
def test_malformed_or_non_v4_bodies_get_400_with_a_clear_error(
    webhook: stack.Process, token: str, body: bytes, content_type: str, error: str
) -> None:
    response = httpx.post(
        f"{webhook.url}/api/v1/alerts",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_wrong_field_types_are_named_in_the_400(
    post: Callable[..., httpx.Response], namespace: str
) -> None:
    payload = notification(namespace=namespace)
    payload["alerts"][0]["startsAt"] = "yesterday"
    response = post(payload)
    assert response.status_code == 400
    fields = [d["field"] for d in response.json()["detail"]]
    assert "alerts.0.startsAt" in fields


def test_body_over_the_limit_gets_413(webhook: stack.Process, token: str) -> None:
    response = httpx.post(
        f"{webhook.url}/api/v1/alerts",
        content=b"x" * (4 * 1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 413


def test_unknown_fields_zero_end_time_and_empty_generator_url_are_accepted(
    post: Callable[..., httpx.Response], namespace: str
) -> None:
    payload = notification(namespace=namespace)
    payload["someFutureField"] = {"x": 1}
    payload["alerts"][0]["anotherNewField"] = True
    assert payload["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert payload["alerts"][0]["generatorURL"] == ""
    assert post(payload).status_code == 200


def test_api_server_unreachable_gets_503(
    run_dir: Path, token: str, namespace: str, tmp_path: Path
) -> None:
    # A kubeconfig whose server is a port nothing listens on: the connection is refused.
    port = controlplane.free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n"
        f"    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n"
        "users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: "
        "{cluster: gone, user: u}\ncurrent-context: c\n"
    )
    gone = controlplane.Cluster(kubeconfig=kubeconfig, kubectl=Path("kubectl"))
    process = stack.start_webhook(
        gone, folder=run_dir, token=token, name="webhook-no-api", wait_ready=False
    )
    try:
        response = httpx.post(
            f"{process.url}/api/v1/alerts",
            json=notification(namespace=namespace),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert httpx.get(f"{process.url}/readyz").status_code == 503
    finally:
        process.stop()


def test_basic_auth_is_an_alternative_to_the_token(
    cluster: controlplane.Cluster, run_dir: Path, namespace: str, tmp_path: Path
) -> None:
    basic = tmp_path / "basic"
    basic.write_text("alertmanager:s3cret\n")
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token="unused-token",
        name="webhook-basic",
        extra_args=("--basic-auth-file", str(basic)),
    )
    try:
        good = "Basic " + base64.b64encode(b"alertmanager:s3cret").decode()
        bad = "Basic " + base64.b64encode(b"alertmanager:wrong").decode()
        url = f"{process.url}/api/v1/alerts"
        payload: Any = notification(namespace=namespace)
        assert httpx.post(url, json=payload, headers={"Authorization": good}).status_code == 200
        assert httpx.post(url, json=payload, headers={"Authorization": bad}).status_code == 401
    finally:
        process.stop()


def test_webhook_refuses_to_start_without_credentials(cluster: controlplane.Cluster) -> None:
    result = subprocess.run(
        [stack.rescue_program(), "webhook", "--kubeconfig", str(cluster.kubeconfig), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )
    assert result.returncode != 0
    assert "needs credentials" in result.stderr
    assert "--insecure" in result.stderr


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_rejections_by_reason(
    webhook: stack.Process, post: Callable[..., httpx.Response], namespace: str
) -> None:
    series = 'rescue_webhook_rejected_total{reason="unauthorized"}'
    before = _sample(httpx.get(f"{webhook.url}/metrics").text, series)
    post(notification(namespace=namespace), auth=None)
    after = _sample(httpx.get(f"{webhook.url}/metrics").text, series)
    assert after == before + 1


def test_latency_is_observed_per_answer_of_the_alerts_endpoint_only(
    webhook: stack.Process, post: Callable[..., httpx.Response], namespace: str
) -> None:
    def counts() -> dict[str, float]:
        text = httpx.get(f"{webhook.url}/metrics").text
        prefix = "rescue_webhook_request_duration_seconds_count"
        return {
            line.split()[0]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(prefix)
        }

    before = counts()
    post(notification(namespace=namespace))
    post(notification(namespace=namespace), auth=None)
    post("not json")
    httpx.get(f"{webhook.url}/healthz")
    after = counts()
    grown = {series: after[series] - before.get(series, 0.0) for series in after}
    assert {series: n for series, n in grown.items() if n} == {
        f'rescue_webhook_request_duration_seconds_count{{code="{code}"}}': 1.0
        for code in ("200", "401", "400")
    }
