"""Serving the webhook: credentials from files, the API client, and uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from rescue.core import kube
from rescue.webhook.app import Credentials, create_app
from rescue.webhook.intake import IntakeConfig
from rescue.webhook.policies import PolicySource

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
    *, token_file: str | None, basic_auth_file: str | None, insecure: bool
) -> Credentials:
    token = read_secret_file(token_file, "token") if token_file else None
    basic = None
    if basic_auth_file:
        user, sep, password = read_secret_file(basic_auth_file, "basic-auth").partition(":")
        if not sep or not user or not password:
            raise WebhookConfigError(
                f"the basic-auth file {basic_auth_file} must hold one line user:password"
            )
        basic = (user, password)
    try:
        return Credentials(token=token, basic=basic, insecure=insecure)
    except ValueError as exc:
        raise WebhookConfigError(str(exc)) from exc


def serve(
    *,
    host: str,
    port: int,
    credentials: Credentials,
    kubeconfig: str | None,
    config: IntakeConfig,
    max_body_bytes: int,
) -> None:
    api_client = kube.load_client(kubeconfig)
    listing = kube.ListCache(
        lambda namespace: kube.list_policies(api_client, namespace), ttl=POLICY_TTL
    )
    app = create_app(
        rescues=kube.Rescues(api_client),
        ping=lambda: kube.ping(api_client),
        credentials=credentials,
        config=config,
        max_body_bytes=max_body_bytes,
        policies=PolicySource(listing),
    )
    if credentials.insecure and not (credentials.token or credentials.basic):
        logger.warning("The webhook accepts notifications without credentials (--insecure).")
    logger.info(
        "Rescue webhook listening on %s:%d; rescues default to namespace %s.",
        host,
        port,
        config.default_namespace,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
