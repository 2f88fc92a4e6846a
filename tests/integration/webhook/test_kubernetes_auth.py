"""``--auth kubernetes``: senders present ServiceAccount tokens the real API server issued.

The API server reviews each token (TokenReview) and says whether its ServiceAccount may create
``/api/v1/alerts`` (SubjectAccessReview), which the shipped ClusterRole rescue-alert-sender
grants. 200 for a bound sender, 403 for a ServiceAccount without the role, 401 for a token the
API server does not know, 503 when it cannot be asked; verdicts are kept for a short while, as
the webhook's own counters show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import security
from helpers import notification

from rescue import controlplane, stack
from rescue.core import kube

AUDIENCE = "rescue-webhook"


@dataclass(frozen=True)
class Senders:
    namespace: str
    bound: str  # the sender's token: its ServiceAccount is bound to rescue-alert-sender
    unbound: str  # a ServiceAccount the API server knows, without the role
    bound_for_webhook: str  # the sender's token issued for the audience rescue-webhook

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:alertmanager"


@pytest.fixture(scope="module")
def rbac(cluster: controlplane.Cluster) -> None:
    security.apply_rbac(cluster)


@pytest.fixture(scope="module")
def senders(cluster: controlplane.Cluster, api_client: Any, rbac: None) -> Senders:
    namespace = f"t-senders-{uuid.uuid4().hex[:6]}"
    stack.ensure_namespace(cluster, namespace)
    for account in ("alertmanager", "bystander"):
        security.ensure_service_account(api_client, namespace, account)
    security.bind_cluster_role(
        api_client,
        binding=f"{namespace}-sends-alerts",
        role="rescue-alert-sender",
        namespace=namespace,
        account="alertmanager",
    )
    return Senders(
        namespace=namespace,
        bound=security.token_for(api_client, namespace, "alertmanager"),
        unbound=security.token_for(api_client, namespace, "bystander"),
        bound_for_webhook=security.token_for(
            api_client, namespace, "alertmanager", audiences=[AUDIENCE]
        ),
    )


@pytest.fixture(scope="module")
def k8s_webhook(
    cluster: controlplane.Cluster, run_dir: Path, default_namespace: str, rbac: None
) -> Iterator[stack.Process]:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=None,
        name="webhook-k8s-auth",
        extra_args=("--auth", "kubernetes"),
        verbose=True,
    )
    yield process
    process.stop()


def _post(url: str, token: str, namespace: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/alerts",
        json=notification(namespace=namespace, **kwargs),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _reviews(url: str) -> dict[str, float]:
    """The webhook's review counters: reviews by outcome, and answers from the kept verdicts."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("rescue_webhook_token_reviews_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = float(line.split()[-1])
        elif line.startswith("rescue_webhook_token_review_cache_hits_total "):
            found["cached"] = float(line.split()[-1])
    return found


def test_a_bound_senders_token_is_admitted_and_its_notification_recorded(
    k8s_webhook: stack.Process, senders: Senders, namespace: str, rescues: kube.Rescues
) -> None:
    response = _post(k8s_webhook.url, senders.bound, namespace)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "created"
    assert len(rescues.list(namespace)) == 1


def test_a_service_account_without_the_sender_role_gets_403(
    k8s_webhook: stack.Process, senders: Senders, namespace: str, rescues: kube.Rescues
) -> None:
    response = _post(k8s_webhook.url, senders.unbound, namespace)
    assert response.status_code == 403
    assert response.json() == {
        "error": f"system:serviceaccount:{senders.namespace}:bystander may not post alerts",
        "detail": "it may not create /api/v1/alerts",
    }
    assert rescues.list(namespace) == []
    log = k8s_webhook.log.read_text()
    assert f"system:serviceaccount:{senders.namespace}:bystander" in log
    assert "rescue-alert-sender" in log


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"])
def test_a_token_the_api_server_does_not_know_gets_401(
    k8s_webhook: stack.Process, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    response = _post(k8s_webhook.url, token, namespace)
    assert response.status_code == 401
    assert response.json()["error"] == "missing or invalid credentials"
    assert rescues.list(namespace) == []


def test_a_second_request_within_the_ttl_asks_the_api_server_nothing(
    cluster: controlplane.Cluster,
    api_client: Any,
    k8s_webhook: stack.Process,
    senders: Senders,
    namespace: str,
) -> None:
    # A token no earlier test presented, so the first request must be reviewed.
    fresh = security.token_for(api_client, senders.namespace, "alertmanager")
    before = _reviews(k8s_webhook.url)
    assert _post(k8s_webhook.url, fresh, namespace).status_code == 200
    reviewed = _reviews(k8s_webhook.url)
    assert reviewed["admitted"] == before["admitted"] + 1
    assert reviewed["cached"] == before["cached"]

    assert _post(k8s_webhook.url, fresh, namespace, fingerprint="0000000000000002").status_code
    again = _reviews(k8s_webhook.url)
    assert again["admitted"] == reviewed["admitted"]
    assert again["cached"] == reviewed["cached"] + 1

    # A refusal is kept too (for less time): the second 403 is answered without a review.
    _post(k8s_webhook.url, senders.unbound, namespace)
    forbidden = _reviews(k8s_webhook.url)["forbidden"]
    assert _post(k8s_webhook.url, senders.unbound, namespace).status_code == 403
    assert _reviews(k8s_webhook.url)["forbidden"] == forbidden


def test_the_static_token_still_works_beside_service_account_tokens(
    cluster: controlplane.Cluster,
    run_dir: Path,
    senders: Senders,
    token: str,
    namespace: str,
) -> None:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=token,
        name="webhook-k8s-and-static",
        extra_args=("--auth", "kubernetes"),
    )
    try:
        assert _post(process.url, token, namespace).status_code == 200
        assert _reviews(process.url)["admitted"] == 0  # the static token needs no review
        second = _post(process.url, senders.bound, namespace, fingerprint="0000000000000003")
        assert second.status_code == 200
        assert _reviews(process.url)["admitted"] == 1
        assert _post(process.url, senders.unbound, namespace).status_code == 403
    finally:
        process.stop()


def test_with_an_audience_only_tokens_issued_for_it_are_accepted(
    cluster: controlplane.Cluster, run_dir: Path, senders: Senders, namespace: str
) -> None:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=None,
        name="webhook-k8s-audience",
        extra_args=("--auth", "kubernetes", "--token-audience", AUDIENCE),
    )
    try:
        # The API server's own audience is not the webhook's: a token for it is refused.
        assert _post(process.url, senders.bound, namespace).status_code == 401
        assert _post(process.url, senders.bound_for_webhook, namespace).status_code == 200
    finally:
        process.stop()


def test_the_webhook_running_as_its_service_account_may_review_and_record(
    cluster: controlplane.Cluster,
    api_client: Any,
    run_dir: Path,
    senders: Senders,
    namespace: str,
    rescues: kube.Rescues,
    tmp_path: Path,
) -> None:
    # The shipped role, not the admin's: TokenReview, SubjectAccessReview and the rescue write.
    own = security.token_for(api_client, security.SYSTEM_NAMESPACE, "rescue-webhook")
    as_webhook = security.kubeconfig_as(cluster, own, tmp_path / "kubeconfig")
    process = stack.start_webhook(
        as_webhook,
        folder=run_dir,
        token=None,
        name="webhook-k8s-as-itself",
        extra_args=("--auth", "kubernetes"),
    )
    try:
        assert _post(process.url, senders.bound, namespace).status_code == 200
        assert len(rescues.list(namespace)) == 1
        assert _post(process.url, senders.unbound, namespace).status_code == 403
        assert _post(process.url, "garbage", namespace).status_code == 401
    finally:
        process.stop()


def test_a_webhook_whose_role_cannot_review_tokens_answers_500_so_alertmanager_retries(
    cluster: controlplane.Cluster,
    api_client: Any,
    run_dir: Path,
    senders: Senders,
    namespace: str,
    tmp_path: Path,
) -> None:
    # The bystander may not create TokenReviews: the webhook's own RBAC is at fault.
    powerless = security.kubeconfig_as(cluster, senders.unbound, tmp_path / "kubeconfig")
    process = stack.start_webhook(
        powerless,
        folder=run_dir,
        token=None,
        name="webhook-k8s-no-rbac",
        extra_args=("--auth", "kubernetes"),
    )
    try:
        response = _post(process.url, senders.bound, namespace)
        assert response.status_code == 500
        assert response.json()["error"] == "the webhook is not allowed to review tokens"
        assert "needs create on tokenreviews" in process.log.read_text()
    finally:
        process.stop()


def test_an_unreachable_api_server_during_review_gets_503_with_retry_after(
    run_dir: Path, senders: Senders, namespace: str, tmp_path: Path
) -> None:
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
        gone,
        folder=run_dir,
        token=None,
        name="webhook-k8s-no-api",
        extra_args=("--auth", "kubernetes"),
        wait_ready=False,
    )
    try:
        for _ in range(2):  # an unreachable API server is asked again, never remembered
            response = _post(process.url, senders.bound, namespace)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
        assert _reviews(process.url)["unavailable"] == 2
    finally:
        process.stop()


def test_no_token_is_ever_written_to_the_webhooks_log(
    k8s_webhook: stack.Process, senders: Senders, namespace: str
) -> None:
    for token in (senders.bound, senders.unbound, "garbage-but-secret-looking-0123456789"):
        _post(k8s_webhook.url, token, namespace)
    log = k8s_webhook.log.read_text()
    assert "DEBUG" in log  # the webhook runs with --verbose: the most it ever says
    for token in (senders.bound, senders.unbound, "garbage-but-secret-looking-0123456789"):
        assert token not in log
        assert token.split(".")[-1] not in log  # not even the signature alone
