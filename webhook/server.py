"""Serving the webhook: credentials and certificates from files, the API client, and uvicorn.

Everything read from a file is checked before the server starts, so that a wrong path, an
unreadable file or a key that does not belong to its certificate stops the process with one
sentence naming the file, instead of a traceback from the TLS library on the first request.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from rescue.core import kube
from rescue.webhook.app import create_app
from rescue.webhook.auth import Credentials
from rescue.webhook.intake import IntakeConfig
from rescue.webhook.policies import PolicySource
from rescue.webhook.tokenreview import KubernetesReviewer

logger = logging.getLogger(__name__)

#: Seconds a namespace's RescuePolicies are kept before they are listed again.
POLICY_TTL = 10.0


class WebhookConfigError(Exception):
    """The webhook cannot start as configured; the message says what to change."""


def read_secret_file(path: str, what: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise WebhookConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if not value:
        raise WebhookConfigError(f"the {what} file {path} is empty")
    return value


def credentials_from(
    *,
    token_file: str | None,
    basic_auth_file: str | None,
    insecure: bool,
    kubernetes: bool = False,
    client_certificates: bool = False,
) -> Credentials | None:
    """The static credentials; None when only ServiceAccount tokens or certificates count.

    The webhook refuses to start with no way at all to tell senders apart: a token file, a
    basic-auth file, ``--auth kubernetes`` or ``--client-ca`` (every caller then proves a
    certificate), unless ``--insecure`` says so explicitly.
    """
    token = read_secret_file(token_file, "token") if token_file else None
    basic = None
    if basic_auth_file:
        user, sep, password = read_secret_file(basic_auth_file, "basic-auth").partition(":")
        if not sep or not user or not password:
            raise WebhookConfigError(
                f"the basic-auth file {basic_auth_file} must hold one line user:password"
            )
        basic = (user, password)
    if insecure and kubernetes:
        raise WebhookConfigError(
            "--insecure and --auth kubernetes contradict each other; drop --insecure"
        )
    if not (token or basic) and (kubernetes or client_certificates):
        # Senders prove themselves with a ServiceAccount token or a client certificate.
        return None if kubernetes else Credentials(insecure=True)
    if not (token or basic or insecure):
        raise WebhookConfigError(
            "the webhook needs credentials (a token file, a basic-auth file, --auth kubernetes "
            "or --client-ca); pass --insecure to run without any"
        )
    return Credentials(token=token, basic=basic, insecure=insecure)


@dataclass(frozen=True)
class TLSFiles:
    """The webhook's certificate and key, and the CA its clients' certificates must chain to."""

    cert: str
    key: str
    client_ca: str | None = None


def tls_from(
    *, cert_file: str | None, key_file: str | None, client_ca_file: str | None
) -> TLSFiles | None:
    """Check the TLS files as the server will load them; None when TLS is not asked for."""
    if not (cert_file or key_file or client_ca_file):
        return None
    if not (cert_file and key_file):
        raise WebhookConfigError(
            "--tls-cert and --tls-key go together"
            + (" (and --client-ca needs both)" if client_ca_file else "")
        )
    for path, what in (
        (cert_file, "TLS certificate"),
        (key_file, "TLS key"),
        (client_ca_file, "client CA"),
    ):
        if path:
            _readable(path, what)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A certificate file that holds no certificate would otherwise be blamed on the key.
        context.load_verify_locations(cafile=cert_file)
    except ssl.SSLError as exc:
        raise WebhookConfigError(
            f"the TLS certificate file {cert_file} holds no PEM certificate"
        ) from exc
    try:
        # No passphrase can be typed in: an encrypted key fails here rather than prompting.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise WebhookConfigError(
                f"the TLS key {key_file} does not belong to the certificate {cert_file}"
            ) from exc
        raise WebhookConfigError(
            f"the TLS key file {key_file} holds no usable PEM private key (a key protected "
            "by a passphrase cannot be used)"
        ) from exc
    if client_ca_file:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except ssl.SSLError as exc:
            raise WebhookConfigError(
                f"the client CA file {client_ca_file} holds no PEM certificate"
            ) from exc
    return TLSFiles(cert=cert_file, key=key_file, client_ca=client_ca_file)


def _readable(path: str, what: str) -> None:
    try:
        Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise WebhookConfigError(f"the {what} file {path} does not exist") from exc
    except OSError as exc:
        raise WebhookConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


def serve(
    *,
    host: str,
    port: int,
    credentials: Credentials | None,
    kubeconfig: str | None,
    config: IntakeConfig,
    max_body_bytes: int,
    kubernetes_auth: bool = False,
    token_audience: str | None = None,
    tls: TLSFiles | None = None,
) -> None:
    api_client = kube.load_client(kubeconfig)
    listing = kube.ListCache(
        lambda namespace: kube.list_policies(api_client, namespace), ttl=POLICY_TTL
    )
    reviewer = KubernetesReviewer(api_client, audience=token_audience) if kubernetes_auth else None
    app = create_app(
        rescues=kube.Rescues(api_client),
        ping=lambda: kube.ping(api_client),
        credentials=credentials,
        config=config,
        max_body_bytes=max_body_bytes,
        policies=PolicySource(listing),
        reviewer=reviewer,
    )
    _announce(credentials, reviewer, token_audience, tls)
    scheme = "https" if tls else "http"
    logger.info(
        "Rescue webhook listening on %s://%s:%d; rescues default to namespace %s.",
        scheme,
        host,
        port,
        config.default_namespace,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
        ssl_ca_certs=tls.client_ca if tls else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca else ssl.CERT_NONE,
    )


def _announce(
    credentials: Credentials | None,
    reviewer: KubernetesReviewer | None,
    audience: str | None,
    tls: TLSFiles | None,
) -> None:
    """Say once, at start, how callers are told apart: the first thing to check on a 401."""
    if tls and tls.client_ca:
        logger.info(
            "Callers must present a client certificate signed by a CA in %s.", tls.client_ca
        )
    if reviewer is not None:
        logger.info(
            "Bearer tokens are reviewed by the API server%s; senders need the ClusterRole "
            "rescue-alert-sender.",
            f" and must be issued for the audience {audience}" if audience else "",
        )
    if credentials is not None and credentials.open:
        if tls and tls.client_ca:
            logger.info("No token is asked for: the client certificate identifies the caller.")
        else:
            logger.warning("The webhook accepts notifications without credentials (--insecure).")
