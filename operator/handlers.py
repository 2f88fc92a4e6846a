"""The kopf handlers: where Kubernetes events meet the lifecycle's decisions.

Every handler delegates to ``lifecycle.reconcile`` and writes back only what it decided. Create,
update (of the spec) and resume (the operator starting over existing rescues) all run the same
reconcile, so a restart or a replayed event finds nothing left to do.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from rescue.core.model import GROUP, POLICY_PLURAL, RESCUE_PLURAL, VERSION, Severity
from rescue.operator import lifecycle, policies

registry = kopf.OperatorRegistry()


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler progress and the last handled spec live in annotations under our own group, so
    # the status stays ours and the CRD needs no field for kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # A silent watch is restarted rather than trusted (see the kopf reports on silent watches).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.peering.standalone = True


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a Pod the ServiceAccount; elsewhere the kubeconfig ($KUBECONFIG), as kubectl would."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    return info or kopf.login_with_kubeconfig(**kwargs)


@kopf.index(GROUP, VERSION, POLICY_PLURAL, registry=registry)
def policies_by_namespace(
    namespace: str | None, spec: kopf.Spec, **_: Any
) -> dict[str, dict[str, Any]]:
    return {namespace or "": dict(spec)}


@kopf.on.resume(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
@kopf.on.create(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
@kopf.on.update(GROUP, VERSION, RESCUE_PLURAL, field="spec", registry=registry)
def reconcile_rescue(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **kwargs: Any,
) -> None:
    # kopf passes each index by its function's name.
    index: kopf.Index[str, dict[str, Any]] = kwargs["policies_by_namespace"]
    current = dict(status)
    severity = Severity(spec["severity"])
    opens = policies.opens(
        index.get(namespace or "", []),
        severity=severity,
        labels=policies.incident_labels(spec),
    )
    decision = lifecycle.reconcile(dict(spec), current, now=datetime.now(UTC), policy_opens=opens)
    # People and the CLI wait on this to know the operator has seen their change.
    decision.status["observedGeneration"] = body.metadata.get("generation", 0)
    if decision.status == current:
        logger.debug("Rescue %s/%s is up to date; nothing to do.", namespace, name)
        return

    for key, value in decision.status.items():
        if current.get(key) != value:
            patch.status[key] = value
    for key in current.keys() - decision.status.keys():
        patch.status[key] = None

    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        log = logger.warning if event.type == "Warning" else logger.info
        log("Rescue %s/%s: %s", namespace, name, event.message)
