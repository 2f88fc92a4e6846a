"""The HTTP surface of the webhook, and the Alertmanager delivery contract it keeps.

Alertmanager delivers at least once and decides what to retry from the status code alone:

====  =====================================================================  ===============
code  when                                                                   Alertmanager
====  =====================================================================  ===============
200   recorded, merged into an existing rescue, or a duplicate (a no-op)     done
400   the body is not JSON, or not a version 4 notification                  drops it
401   no valid credentials                                                   drops it
403   a ServiceAccount the API server knows, not allowed to post alerts      drops it
413   the body is larger than ``max_body_bytes``                             drops it
503   the API server cannot take the write, or review a token, right now     retries
500   the webhook cannot write for a reason of its own (RBAC, a bug)         retries
====  =====================================================================  ===============

Never 429: Alertmanager drops a 4xx, and a rate limit would lose alerts. A 4xx is answered only
for a request that can never succeed as sent; everything that might succeed later is a 5xx.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rescue.core import kube
from rescue.webhook import intake
from rescue.webhook.auth import (
    Admission,
    Credentials,
    Reviewer,
    ReviewRefused,
    ReviewUnavailable,
    Verdict,
)
from rescue.webhook.metrics import WebhookMetrics
from rescue.webhook.payload import Notification
from rescue.webhook.policies import PolicySource

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class _TimedAlerts:
    """Observes each answer of the alerts endpoint in the latency histogram, by status code."""

    def __init__(self, app: ASGIApp, *, observe: Histogram) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/api/v1/alerts":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it starts one

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.observe.labels(code=str(status)).observe(time.perf_counter() - started)


def _error(status: int, error: str, detail: Any = None, **headers: str) -> JSONResponse:
    content: dict[str, Any] = {"error": error}
    if detail is not None:
        content["detail"] = detail
    return JSONResponse(content, status_code=status, headers=headers or None)


_NOTIFICATION_SCHEMA = Notification.model_json_schema(ref_template="#/components/schemas/{model}")
#: The models the notification's schema refers to, published under components/schemas.
_NOTIFICATION_PARTS: dict[str, Any] = _NOTIFICATION_SCHEMA.pop("$defs", {})
_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "detail": {}},
            }
        }
    }
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Recorded (created, updated), a duplicate (unchanged), or a resolution "
        "of an incident never recorded (ignored); `rescue` names the resource.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["created", "updated", "unchanged", "ignored"],
                        },
                        "rescue": {"type": "string", "description": "namespace/name"},
                    },
                }
            }
        },
    },
    400: {"description": "Not JSON, not a v4 notification, or not storable.", **_ERROR},
    401: {"description": "Missing or invalid credentials.", **_ERROR},
    403: {"description": "A known sender that may not post alerts.", **_ERROR},
    413: {"description": "The body is larger than --max-body-bytes.", **_ERROR},
    500: {"description": "The webhook may not write rescues (its RBAC); retried.", **_ERROR},
    503: {"description": "The Kubernetes API is unavailable; retry after Retry-After.", **_ERROR},
}


class BodyTooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_detail(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)[:20]
    ]


def create_app(
    *,
    rescues: kube.Rescues,
    ping: Callable[[], None],
    credentials: Credentials | None,
    config: intake.IntakeConfig | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    registry: CollectorRegistry | None = None,
    policies: PolicySource | None = None,
    reviewer: Reviewer | None = None,
) -> FastAPI:
    """The webhook application; ``ping`` raises ``kube.KubeUnavailable`` when the API is down.

    ``policies``, when given, are the RescuePolicies whose triage reads the alerts' severity.
    ``reviewer``, when given, admits bearer tokens the API server vouches for (``auth``).
    """
    config = config or intake.IntakeConfig()
    registry = registry or CollectorRegistry()
    metrics = WebhookMetrics(registry)
    admission = Admission(credentials=credentials, reviewer=reviewer, metrics=metrics)
    app = FastAPI(
        title="Rescue webhook",
        version="v1",
        summary="Receives Alertmanager notifications and records them as Rescue resources.",
    )

    # A plain ASGI wrapper rather than ``@app.middleware("http")``: Starlette's HTTP middleware
    # runs every request through an extra task and stream, a tenth of the webhook's CPU under
    # load (bench/README.md, intake).
    app.add_middleware(_TimedAlerts, observe=metrics.latency)

    @app.post(
        "/api/v1/alerts",
        summary="Alertmanager webhook (payload version 4)",
        # The body is read raw (to bound its size before parsing), so FastAPI cannot see it:
        # the schema and the answers are declared here for the published OpenAPI document.
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _NOTIFICATION_SCHEMA}},
            }
        },
        responses=_ANSWERS,
    )
    async def receive(request: Request) -> Response:
        try:
            decision = await admission.decide(request.headers.get("authorization"))
        except ReviewUnavailable as exc:
            metrics.rejected.labels(reason="review_unavailable").inc()
            logger.warning(
                "Could not review a sender's token (%s); answered 503 so Alertmanager retries.",
                exc,
            )
            return _error(
                503,
                "the Kubernetes API cannot review the token; retry later",
                **{"Retry-After": "5"},
            )
        except ReviewRefused as exc:
            metrics.rejected.labels(reason="review_refused").inc()
            logger.error(
                "The webhook cannot review senders' tokens (%s). Answered 500 so Alertmanager "
                "retries.",
                exc,
            )
            return _error(500, "the webhook is not allowed to review tokens")
        if decision.verdict is Verdict.UNAUTHENTICATED:
            metrics.rejected.labels(reason="unauthorized").inc()
            return _error(401, "missing or invalid credentials", **{"WWW-Authenticate": "Bearer"})
        if decision.verdict is Verdict.FORBIDDEN:
            metrics.rejected.labels(reason="forbidden_sender").inc()
            return _error(403, f"{decision.who} may not post alerts", decision.reason)
        try:
            raw = await _read_limited(request, max_body_bytes)
        except BodyTooLarge:
            metrics.rejected.labels(reason="too_large").inc()
            return _error(413, f"the body is larger than {max_body_bytes} bytes")

        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            metrics.rejected.labels(reason="malformed").inc()
            return _error(400, "the body is not valid JSON", str(exc)[:200])
        try:
            notification = Notification.model_validate(document)
        except ValidationError as exc:
            metrics.rejected.labels(reason="invalid").inc()
            return _error(
                400,
                "the body is not an Alertmanager webhook v4 notification",
                _validation_detail(exc),
            )
        except RecursionError:
            metrics.rejected.labels(reason="invalid").inc()
            return _error(400, "the body is nested too deeply")
        metrics.received.labels(status=notification.status).inc()

        try:
            result = await run_in_threadpool(
                intake.record, notification, rescues=rescues, config=config, policies=policies
            )
        except kube.KubeUnavailable as exc:
            metrics.rejected.labels(reason="api_unavailable").inc()
            logger.warning(
                "Could not record a notification (%s); answered 503 so Alertmanager retries.", exc
            )
            return _error(
                503, "the Kubernetes API is unavailable; retry later", **{"Retry-After": "5"}
            )
        except kube.KubeRejected as exc:
            # The API server refused the object we built from this input. Only input that can
            # never be stored gets here (a 4xx would make Alertmanager drop it), except RBAC.
            if exc.status in (401, 403):
                metrics.rejected.labels(reason="forbidden").inc()
                logger.error(
                    "The webhook may not write rescues (%s); check its RBAC. Answered 500 "
                    "so Alertmanager retries.",
                    exc,
                )
                return _error(500, "the webhook is not allowed to write rescues")
            metrics.rejected.labels(reason="unstorable").inc()
            logger.error("The API server refused a rescue built from a notification: %s", exc)
            return _error(400, "the notification cannot be stored as a rescue", str(exc)[:500])

        if result.outcome is intake.Outcome.UNCHANGED:
            metrics.deduplicated.inc()
        metrics.outcomes.labels(outcome=result.outcome.value).inc()
        return JSONResponse(
            {"status": result.outcome.value, "rescue": f"{result.namespace}/{result.name}"}
        )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(_NOTIFICATION_PARTS)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the Kubernetes API answers")
    async def readyz() -> Response:
        try:
            await run_in_threadpool(ping)
        except kube.KubeUnavailable as exc:
            return _error(503, "the Kubernetes API is unavailable", str(exc)[:300])
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
