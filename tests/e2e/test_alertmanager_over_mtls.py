"""End to end: Debian's Alertmanager reaches the webhook over mutual TLS (``tls_config`` with a
CA, a client certificate and its key), with a static token or with a ServiceAccount token."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import security
from certificates import Pki, make_pki
from helpers import eventually

from rescue import controlplane, stack
from rescue.core import kube


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _fire_and_wait(alertmanager: stack.Process, namespace: str, rescues: kube.Rescues) -> Any:
    stack.amtool(
        alertmanager.url,
        "alert",
        "add",
        "CheckoutDown",
        f"namespace={namespace}",
        "deployment=checkout",
        "severity=critical",
        "--annotation=summary=Checkout returns 503",
    )
    return eventually(
        lambda: rescues.list(namespace), timeout=60, what="the rescue Alertmanager's alert makes"
    )


def _mtls(pki: Pki) -> tuple[stack.ServerTLS, stack.ClientTLS]:
    server = stack.ServerTLS(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca)
    return server, stack.ClientTLS(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)


def test_alertmanager_posts_over_mtls_with_a_bearer_token(
    cluster: controlplane.Cluster,
    tmp_path: Path,
    pki: Pki,
    token: str,
    namespace: str,
    rescues: kube.Rescues,
    default_namespace: str,
) -> None:
    server, client = _mtls(pki)
    webhook = stack.start_webhook(
        cluster, folder=tmp_path, token=token, name="webhook", tls=server, probe_tls=client
    )
    token_file = tmp_path / "alertmanager.token"
    token_file.write_text(token)
    alertmanager = stack.start_alertmanager(
        folder=tmp_path, webhook_url=webhook.url, token_file=token_file, tls=client
    )
    try:
        config = (tmp_path / "alertmanager" / "alertmanager.yml").read_text()
        assert f"cert_file: {pki.client_cert}" in config
        (rescue,) = _fire_and_wait(alertmanager, namespace, rescues)
        assert rescue["spec"]["severity"] == "SEV1"
        assert webhook.url.startswith("https://")
    finally:
        alertmanager.stop()
        webhook.stop()


def test_alertmanager_posts_over_mtls_with_its_service_account_token(
    cluster: controlplane.Cluster,
    api_client: Any,
    tmp_path: Path,
    pki: Pki,
    namespace: str,
    rescues: kube.Rescues,
    default_namespace: str,
) -> None:
    # Alertmanager as it runs in a cluster: its ServiceAccount bound to the sender role, its
    # token in a file (where the kubelet would project it), and the webhook checking both.
    security.apply_rbac(cluster)
    accounts = f"t-monitoring-{uuid.uuid4().hex[:6]}"
    stack.ensure_namespace(cluster, accounts)
    security.ensure_service_account(api_client, accounts, "alertmanager")
    security.bind_cluster_role(
        api_client,
        binding=f"{accounts}-sends-alerts",
        role="rescue-alert-sender",
        namespace=accounts,
        account="alertmanager",
    )
    token_file = tmp_path / "serviceaccount-token"
    token_file.write_text(security.token_for(api_client, accounts, "alertmanager"))

    server, client = _mtls(pki)
    webhook = stack.start_webhook(
        cluster,
        folder=tmp_path,
        token=None,
        name="webhook",
        tls=server,
        probe_tls=client,
        extra_args=("--auth", "kubernetes"),
    )
    alertmanager = stack.start_alertmanager(
        folder=tmp_path, webhook_url=webhook.url, token_file=token_file, tls=client
    )
    try:
        (rescue,) = _fire_and_wait(alertmanager, namespace, rescues)
        assert rescue["spec"]["severity"] == "SEV1"
        metrics = httpx.get(f"{webhook.url}/metrics", verify=client.context(), timeout=10).text
        assert 'rescue_webhook_token_reviews_total{outcome="admitted"} 1.0' in metrics
    finally:
        alertmanager.stop()
        webhook.stop()
