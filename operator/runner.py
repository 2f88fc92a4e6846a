"""Running the operator as a process: kopf's loop, a liveness endpoint, a clean stop."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import kopf
from prometheus_client import CollectorRegistry, start_http_server

from rescue.operator import telemetry
from rescue.operator.environment import ClusterEnvironment
from rescue.operator.handlers import connections_for, registry

logger = logging.getLogger(__name__)


class _WaitingIsNotAnError(logging.Filter):
    """kopf reports every ``TemporaryError`` at error level, including the ones the handlers
    raise only to be called again later (a gate that waits, a commit not yet applied). Those
    are routine: shown at debug, not as errors a person on call would chase."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "is waiting; looking again" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def serve_metrics(
    environment: ClusterEnvironment, address: str, port: int, *, namespace_label: bool = False
) -> telemetry.OperatorMetrics:
    """Serve ``/metrics`` from a thread of its own, so a busy event loop never delays a scrape."""
    registry = CollectorRegistry(auto_describe=True)
    metrics = telemetry.OperatorMetrics(registry, namespace_label=namespace_label)
    registry.register(
        telemetry.OpenRescues(telemetry.cluster_source(environment.rescues, environment.api_client))
    )
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise SystemExit(
            f"rescue operator: cannot serve metrics on {address}:{port} ({exc}); "
            "choose another --metrics-port or 0 to turn metrics off"
        ) from exc
    logger.info("Serving Prometheus metrics on http://%s:%d/metrics.", address, port)
    return metrics


def run(
    *,
    kubeconfig: str | None,
    namespaces: list[str],
    liveness_port: int | None,
    peering: str | None = None,
    git_cache: Path | None = None,
    metrics_port: int | None = None,
    metrics_address: str = "0.0.0.0",  # noqa: S104 - a server listens
    metrics_namespace_label: bool = False,
    priority: int | None = None,
    peering_lifetime: int = 15,
) -> None:
    """Run until interrupted; watches every namespace unless some are named."""
    if kubeconfig:
        # kopf logs in through the same discovery the kubernetes client uses.
        os.environ["KUBECONFIG"] = kubeconfig
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    where = ", ".join(namespaces) if namespaces else "all namespaces"
    logger.info("Rescue operator starting; watching rescues in %s.", where)
    logging.getLogger("kopf.objects").addFilter(_WaitingIsNotAnError())
    environment = ClusterEnvironment.from_kubeconfig(git_cache)
    memo = kopf.Memo(environment=environment, connections=connections_for(len(namespaces)))
    if peering is not None:
        # Replicas of one Deployment share their arguments, and kopf freezes every replica when
        # two have the same priority: unless told, each picks its own at random, and the highest
        # live one acts. A replica killed outright is presumed dead after ``peering_lifetime``.
        memo["peering"] = (
            priority if priority is not None else secrets.randbelow(2**31 - 1) + 1,
            peering_lifetime,
        )
        logger.info(
            "Peering as %s with priority %d; the replica with the highest priority acts.",
            peering,
            memo["peering"][0],
        )
    if metrics_port:
        memo["metrics"] = serve_metrics(
            environment, metrics_address, metrics_port, namespace_label=metrics_namespace_label
        )
    kopf.run(
        registry=registry,
        memo=memo,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        standalone=peering is None,
        peering_name=peering,
    )
