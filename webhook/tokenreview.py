"""Asking the API server about a sender's ServiceAccount token (``--auth kubernetes``).

Two questions, each one request: who is this (a TokenReview, ``authentication.k8s.io/v1``), and
may they post alerts (a SubjectAccessReview, ``authorization.k8s.io/v1``). The second asks
about the non-resource path ``/api/v1/alerts`` with the verb ``create``, the convention for HTTP
endpoints that Kubernetes RBAC guards, so that granting a sender is a ClusterRole with
``nonResourceURLs: [/api/v1/alerts]`` and ``verbs: [create]`` bound to its ServiceAccount
(``deploy/base/rbac.yaml`` ships it as ``rescue-alert-sender``).

Failures are sorted by who has to act. The API server unreachable, overloaded or failing:
``ReviewUnavailable``, the sender retries. The API server refusing the webhook's own reviews
(its RBAC lacks ``create`` on tokenreviews or subjectaccessreviews): ``ReviewRefused``, a person
fixes the webhook's role. The token travels only in the TokenReview's body; it is never logged,
and it is cut out of any message the API server sends back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rescue.webhook.auth import Decision, ReviewRefused, ReviewUnavailable, Verdict

logger = logging.getLogger(__name__)

#: The non-resource path and verb a sender must be allowed.
SENDER_PATH = "/api/v1/alerts"
SENDER_VERB = "create"
#: (connect, read) seconds for one review: well within Alertmanager's 10 s default timeout.
REVIEW_TIMEOUT = (2.0, 5.0)


class KubernetesReviewer:
    """Reviews tokens with the webhook's own API client; ``audience`` narrows what is accepted.

    Without an audience, the API server accepts tokens issued for its own audiences (a Pod's
    default ServiceAccount token). With one, only tokens requested for that audience pass, so a
    token stolen from an unrelated workload is useless here.
    """

    def __init__(self, api_client: Any, *, audience: str | None = None) -> None:
        self._authentication = client.AuthenticationV1Api(api_client)
        self._authorization = client.AuthorizationV1Api(api_client)
        self._audience = audience

    def review(self, token: str) -> Decision:
        spec: dict[str, Any] = {"token": token}
        if self._audience:
            spec["audiences"] = [self._audience]
        answer = self._ask(
            "reviewing a sender's token",
            "tokenreviews",
            token,
            self._authentication.create_token_review,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
        )
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            why = _scrub((status.error if status else None) or "the token is not valid", token)
            return Decision(Verdict.UNAUTHENTICATED, reason=why)
        if self._audience and self._audience not in (status.audiences or []):
            return Decision(
                Verdict.UNAUTHENTICATED, reason=f"the token is not meant for {self._audience}"
            )

        user = status.user
        who = str(user.username or "an unnamed user")
        access: dict[str, Any] = {
            "user": user.username,
            "groups": user.groups or [],
            "nonResourceAttributes": {"path": SENDER_PATH, "verb": SENDER_VERB},
        }
        if user.uid:
            access["uid"] = user.uid
        if user.extra:
            access["extra"] = user.extra
        verdict = self._ask(
            f"asking whether {who} may post alerts",
            "subjectaccessreviews",
            token,
            self._authorization.create_subject_access_review,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": access,
            },
        ).status
        if verdict is not None and verdict.allowed and not verdict.denied:
            return Decision(Verdict.ADMITTED, who=who)
        return Decision(
            Verdict.FORBIDDEN,
            who=who,
            reason=f"it may not {SENDER_VERB} {SENDER_PATH}",
        )

    @staticmethod
    def _ask(what: str, plural: str, token: str, call: Any, body: dict[str, Any]) -> Any:
        try:
            return call(body=body, _request_timeout=REVIEW_TIMEOUT)
        except ApiException as exc:
            # NB: not chained. The client's exception prints the whole answer, which may quote
            # the review we sent, token included; a traceback must never carry it.
            status = int(exc.status or 0)
            said = _scrub(_message(exc), token)
            if status in (401, 403):
                raise ReviewRefused(
                    f"{what}: the API server refused the webhook's request ({said}); its role "
                    f"needs create on {plural}"
                ) from None
            if status == 0 or status == 429 or status >= 500:
                raise ReviewUnavailable(f"{what}: {said}") from None
            raise ReviewRefused(f"{what}: the API server refused the review ({said})") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ReviewUnavailable(
                f"{what}: the API server cannot be reached ({str(exc)[:300]})"
            ) from exc


def _message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return f"HTTP {exc.status} {exc.reason}"


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
