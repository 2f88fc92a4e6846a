"""The one adapter through which Rescue reaches the Kubernetes API (outside kopf's own).

It turns the client library's exceptions into a small hierarchy that callers can act on:
``KubeUnavailable`` means "try again later" (the webhook answers 503 so Alertmanager retries),
``AlreadyExists`` and ``Conflict`` are the two answers that optimistic concurrency and
deterministic names rely on, and ``KubeRejected`` is a request the API server will never accept.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from rescue.core.model import GROUP, POLICY_PLURAL, RESCUE_PLURAL, VERSION

logger = logging.getLogger(__name__)

Body = dict[str, Any]

#: (connect, read) seconds for one request; the webhook answers within Alertmanager's timeout.
REQUEST_TIMEOUT = (3.0, 15.0)


class KubeError(Exception):
    """Something went wrong talking to the Kubernetes API."""


class KubeConfigError(KubeError):
    """No usable kubeconfig or in-cluster configuration was found."""


class KubeUnavailable(KubeError):
    """The API server could not be reached or answered that it is overloaded: retry later."""


class KubeRejected(KubeError):
    """The API server refused the request and will refuse it again (4xx other than below)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeRejected):
    pass


class AlreadyExists(KubeRejected):
    pass


class Conflict(KubeRejected):
    """The object changed since it was read (resourceVersion mismatch): read again and retry."""


def load_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client the way kubectl finds one: a file given, ``KUBECONFIG``, in-cluster."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path:
            config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(context=context, client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise KubeConfigError(f"no usable Kubernetes configuration: {exc}") from exc
    # One quick attempt per call: the callers decide about retries (the webhook by answering
    # 503 so that Alertmanager retries, the CLI by reporting the error).
    configuration.retries = 1
    return client.ApiClient(configuration)


def _translate(exc: ApiException, what: str) -> KubeError:
    status = int(exc.status or 0)
    reason = _reason(exc)
    message = f"{what}: {reason}"
    if status == 404:
        return NotFound(message, status=status)
    if status == 409 and "AlreadyExists" in str(exc.body or ""):
        return AlreadyExists(message, status=status)
    if status == 409:
        return Conflict(message, status=status)
    if status == 429 or status >= 500 or status == 0:
        return KubeUnavailable(message)
    return KubeRejected(message, status=status)


def _reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:500]
    return f"HTTP {exc.status} {exc.reason}"


class Rescues:
    """CRUD on Rescue resources, with errors mapped to the hierarchy above."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = client.CustomObjectsApi(api_client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Body:
        try:
            result = fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            raise _translate(exc, what) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(f"{what}: the API server cannot be reached ({exc})") from exc
        return cast(Body, result)

    def get(self, namespace: str, name: str) -> Body:
        return self._call(
            f"reading rescue {namespace}/{name}",
            self._api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            RESCUE_PLURAL,
            name,
        )

    def create(self, namespace: str, body: Body) -> Body:
        name = body.get("metadata", {}).get("name", "?")
        return self._call(
            f"creating rescue {namespace}/{name}",
            self._api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            RESCUE_PLURAL,
            body,
        )

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
        """A JSON merge patch of the spec or metadata (never the status: the operator owns it)."""
        return self._call(
            f"changing rescue {namespace}/{name}",
            self._api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            RESCUE_PLURAL,
            name,
            dict(patch),
            _content_type="application/merge-patch+json",
        )

    def json_patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> Body:
        """A JSON patch; with a ``test`` op first it is a compare-and-swap on what it tests."""
        return self._call(
            f"changing rescue {namespace}/{name}",
            self._api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            RESCUE_PLURAL,
            name,
            ops,
            _content_type="application/json-patch+json",
        )

    def json_patch_status(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> Body:
        """A JSON patch of the status subresource (the operator's own bookkeeping)."""
        return self._call(
            f"changing the status of rescue {namespace}/{name}",
            self._api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            RESCUE_PLURAL,
            name,
            ops,
            _content_type="application/json-patch+json",
        )

    def list(self, namespace: str | None = None, *, label_selector: str = "") -> list[Body]:
        if namespace:
            result = self._call(
                f"listing rescues in {namespace}",
                self._api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                RESCUE_PLURAL,
                label_selector=label_selector,
            )
        else:
            result = self._call(
                "listing rescues",
                self._api.list_cluster_custom_object,
                GROUP,
                VERSION,
                RESCUE_PLURAL,
                label_selector=label_selector,
            )
        return list(result.get("items", []))


def ping(api_client: client.ApiClient) -> None:
    """Raise ``KubeUnavailable`` unless the API server answers."""
    try:
        client.VersionApi(api_client).get_code(_request_timeout=(2.0, 3.0))
    except ApiException as exc:
        raise KubeUnavailable(f"the API server is not ready: {_reason(exc)}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"the API server cannot be reached ({exc})") from exc


def whoami(api_client: client.ApiClient) -> str:
    """The user the API server sees for this client, for "who decided" on the timeline."""
    try:
        review = client.AuthenticationV1Api(api_client).create_self_subject_review(
            body=client.V1SelfSubjectReview(
                api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
            ),
            _request_timeout=REQUEST_TIMEOUT,
        )
    except ApiException as exc:
        raise _translate(exc, "asking the API server who we are") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"the API server cannot be reached ({exc})") from exc
    user = review.status.user_info if review.status else None
    return str(user.username) if user and user.username else "unknown"


def current_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use it."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig or None)
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig or None)
            active = next((c for c in contexts if c["name"] == context), active)
    except (ConfigException, OSError):
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def read_secret(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """A Secret's data, decoded; its values never appear in an error or a log."""
    try:
        secret = client.CoreV1Api(api_client).read_namespaced_secret(
            name, namespace, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as exc:
        raise _translate(exc, f"reading secret {namespace}/{name}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"the API server cannot be reached ({exc})") from exc
    data = secret.data or {}
    decoded = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
    decoded.update(secret.string_data or {})
    return decoded


def list_objects(
    api_client: client.ApiClient, *, group: str, version: str, plural: str
) -> list[Body]:
    """Every object of a custom kind in every namespace; none when the kind is not installed."""
    try:
        result = client.CustomObjectsApi(api_client).list_cluster_custom_object(
            group, version, plural, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise _translate(exc, f"listing {plural}.{group}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"the API server cannot be reached ({exc})") from exc
    return list(cast(Body, result).get("items", []))


def list_policies(api_client: client.ApiClient, namespace: str) -> list[Body]:
    """The RescuePolicies of one namespace (none when the namespace does not exist)."""
    try:
        result = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
            GROUP, VERSION, namespace, POLICY_PLURAL, _request_timeout=REQUEST_TIMEOUT
        )
    except ApiException as exc:
        raise _translate(exc, f"listing rescuepolicies in {namespace}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"the API server cannot be reached ({exc})") from exc
    return list(cast(Body, result).get("items", []))


class ListCache:
    """A listing per namespace, kept for ``ttl`` seconds, so that a burst of requests lists once.

    A refusal (``KubeRejected``: RBAC, say) is kept as long as a listing, since the API server
    would answer it again; ``KubeUnavailable`` is not kept, so the next caller asks again.
    Callers of one namespace wait for the one listing in flight rather than start their own.
    """

    def __init__(
        self,
        fetch: Callable[[str], list[Body]],
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._kept: dict[str, tuple[float, list[Body] | KubeRejected]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, namespace: str) -> list[Body]:
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            kept = self._kept.get(namespace)
            if kept is None or self._clock() - kept[0] >= self._ttl:
                try:
                    answer: list[Body] | KubeRejected = self._fetch(namespace)
                except KubeRejected as exc:
                    answer = exc
                kept = (self._clock(), answer)
                self._kept[namespace] = kept
        if isinstance(kept[1], KubeRejected):
            raise kept[1].with_traceback(None)
        return list(kept[1])
