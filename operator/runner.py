"""Running the operator as a process: kopf's loop, a liveness endpoint, a clean stop."""

from __future__ import annotations

import logging
import os

import kopf

from rescue.operator.handlers import registry

logger = logging.getLogger(__name__)


def run(
    *,
    kubeconfig: str | None,
    namespaces: list[str],
    liveness_port: int | None,
    peering: str | None = None,
) -> None:
    """Run until interrupted; watches every namespace unless some are named."""
    if kubeconfig:
        # kopf logs in through the same discovery the kubernetes client uses.
        os.environ["KUBECONFIG"] = kubeconfig
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    where = ", ".join(namespaces) if namespaces else "all namespaces"
    logger.info("Rescue operator starting; watching rescues in %s.", where)
    kopf.run(
        registry=registry,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        standalone=peering is None,
        peering_name=peering,
    )
