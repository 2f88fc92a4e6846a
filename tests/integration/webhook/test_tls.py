"""The webhook over TLS and mutual TLS, as a process, with certificates made by openssl.

A client trusting the CA verifies the webhook; under mTLS a caller without a certificate, or
with one from a CA the webhook does not trust, is refused during the TLS handshake, before any
HTTP is read, and a caller with a certificate the CA signed is served.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from certificates import Pki, make_pki
from helpers import notification

from rescue import controlplane, stack
from rescue.core import kube


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates from a CA the webhook has never heard of."""
    return make_pki(tmp_path_factory.mktemp("stranger"), name="stranger")


@pytest.fixture(scope="module")
def https_webhook(
    cluster: controlplane.Cluster, run_dir: Path, token: str, pki: Pki, default_namespace: str
) -> Iterator[stack.Process]:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=token,
        name="webhook-https",
        tls=stack.ServerTLS(cert=pki.server_cert, key=pki.server_key),
        probe_tls=stack.ClientTLS(ca=pki.ca),
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def mtls_webhook(
    cluster: controlplane.Cluster, run_dir: Path, token: str, pki: Pki, default_namespace: str
) -> Iterator[stack.Process]:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=token,
        name="webhook-mtls",
        tls=stack.ServerTLS(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca),
        probe_tls=stack.ClientTLS(ca=pki.ca, cert=pki.client_cert, key=pki.client_key),
    )
    yield process
    process.stop()


#: How a handshake the webhook refuses ends for the client: the server drops the connection
#: mid-handshake (asyncio sends no alert), which the client's TLS library reports.
REFUSED = ("SSLEOFError", "SSLError", "ConnectionResetError")


def _post(url: str, context: ssl.SSLContext, token: str | None, namespace: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(verify=context, timeout=30) as client:
        return client.post(
            f"{url}/api/v1/alerts", json=notification(namespace=namespace), headers=headers
        )


def _handshake(url: str, context: ssl.SSLContext) -> str:
    """How a TLS 1.2 handshake with the webhook ends: "completed", or the error it ended with.

    TLS 1.2 is asked for because there the server checks the client's certificate inside the
    handshake; in TLS 1.3 the client considers the handshake done first and only finds the
    connection closed on its first read.
    """
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    host, port = url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return "completed"
        except (ssl.SSLError, ConnectionResetError) as exc:
            return f"{type(exc).__name__}: {exc}"


def test_a_client_trusting_the_ca_verifies_the_webhook_and_is_served(
    https_webhook: stack.Process, pki: Pki, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    assert https_webhook.url.startswith("https://127.0.0.1:")
    response = _post(https_webhook.url, stack.ClientTLS(ca=pki.ca).context(), token, namespace)
    assert response.status_code == 200
    assert response.json()["status"] == "created"
    assert len(rescues.list(namespace)) == 1


def test_a_client_that_does_not_trust_the_ca_refuses_the_webhook(
    https_webhook: stack.Process, stranger: Pki, token: str, namespace: str
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _post(https_webhook.url, stack.ClientTLS(ca=stranger.ca).context(), token, namespace)


def test_plain_http_to_the_tls_port_gets_no_notification_through(
    https_webhook: stack.Process, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    plain = https_webhook.url.replace("https://", "http://")
    try:
        response = httpx.post(
            f"{plain}/api/v1/alerts",
            json=notification(namespace=namespace),
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.TransportError:
        pass
    else:
        assert response.status_code >= 400
    assert rescues.list(namespace) == []


def test_under_mtls_a_caller_without_a_certificate_is_refused_in_the_handshake(
    mtls_webhook: stack.Process, pki: Pki, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    said = _handshake(mtls_webhook.url, stack.ClientTLS(ca=pki.ca).context())
    assert said.startswith(REFUSED), said
    with pytest.raises(httpx.TransportError):
        _post(mtls_webhook.url, stack.ClientTLS(ca=pki.ca).context(), token, namespace)
    assert rescues.list(namespace) == []
    assert mtls_webhook.alive()


def test_under_mtls_a_certificate_from_another_ca_is_refused_in_the_handshake(
    mtls_webhook: stack.Process,
    pki: Pki,
    stranger: Pki,
    token: str,
    namespace: str,
    rescues: kube.Rescues,
) -> None:
    foreign = stack.ClientTLS(ca=pki.ca, cert=stranger.client_cert, key=stranger.client_key)
    said = _handshake(mtls_webhook.url, foreign.context())
    assert said.startswith(REFUSED), said
    with pytest.raises(httpx.TransportError):
        _post(mtls_webhook.url, foreign.context(), token, namespace)
    assert rescues.list(namespace) == []


def test_under_mtls_a_certificate_the_ca_signed_is_served_and_the_token_still_counts(
    mtls_webhook: stack.Process, pki: Pki, token: str, namespace: str, rescues: kube.Rescues
) -> None:
    client = stack.ClientTLS(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    assert _handshake(mtls_webhook.url, client.context()) == "completed"
    context = client.context()
    # A certificate does not replace the token when one is configured: both must hold.
    assert _post(mtls_webhook.url, context, None, namespace).status_code == 401
    response = _post(mtls_webhook.url, context, token, namespace)
    assert response.status_code == 200
    assert len(rescues.list(namespace)) == 1


def test_with_only_a_client_ca_the_certificate_alone_identifies_the_caller(
    cluster: controlplane.Cluster, run_dir: Path, pki: Pki, namespace: str, rescues: kube.Rescues
) -> None:
    process = stack.start_webhook(
        cluster,
        folder=run_dir,
        token=None,
        name="webhook-mtls-only",
        tls=stack.ServerTLS(cert=pki.server_cert, key=pki.server_key, client_ca=pki.ca),
        probe_tls=stack.ClientTLS(ca=pki.ca, cert=pki.client_cert, key=pki.client_key),
    )
    try:
        context = stack.ClientTLS(ca=pki.ca, cert=pki.client_cert, key=pki.client_key).context()
        assert _post(process.url, context, None, namespace).status_code == 200
        assert len(rescues.list(namespace)) == 1
        assert "without credentials" not in process.log.read_text()
    finally:
        process.stop()


def test_a_key_that_does_not_match_stops_the_command_with_one_line(
    cluster: controlplane.Cluster, pki: Pki, stranger: Pki, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a-token\n")
    result = subprocess.run(
        [
            stack.rescue_program(),
            "webhook",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--port",
            "0",
            "--token-file",
            str(token_file),
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(stranger.server_key),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"rescue: the TLS key {stranger.server_key} does not belong to the certificate "
        f"{pki.server_cert}\n"
    )
