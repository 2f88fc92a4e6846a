"""The least an operator of Rescues can do: mark each one handled. A baseline.

Built on the same framework as Rescue's operator (kopf), keeping its bookkeeping in the same
places (annotations under the group's domain) and kopf's defaults otherwise, it watches the
same resources and, on every create, update and resume, writes ``status.phase`` (Paused when
``spec.paused``, else Active) and ``status.observedGeneration``, nothing else. The difference
between Rescue's operator and this one on the same rescues is what Rescue's lifecycle, indexes,
Events and metrics cost, apart from what kopf costs.

    KUBECONFIG=... PYTHONSAFEPATH=1 .venv/bin/python bench/minimal_operator.py \\
        --namespace NS --liveness-port 8081
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import aiohttp
import kopf

GROUP, VERSION, PLURAL = "alc.hecate.dev", "v1alpha1", "rescues"

registry = kopf.OperatorRegistry()


#: Connections to the API server at most; 0 keeps kopf's own session, which has no limit.
CONNECTIONS = {"limit": 0}


@kopf.on.login(registry=registry)
async def login(**kwargs: Any) -> kopf.ConnectionInfo | kopf.AiohttpSession | None:
    info: kopf.ConnectionInfo | None = kopf.login_with_kubeconfig(**kwargs)
    if info is None or not CONNECTIONS["limit"]:
        return info
    # The same credentials in a session of our own, whose connector holds a limit.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS["limit"], ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
    )
    return kopf.AiohttpSession(
        server=info.server, default_namespace=info.default_namespace, aiohttp_session=session
    )


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=f"operator.{GROUP}"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=f"operator.{GROUP}", key="last-handled-configuration"
    )


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
@kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
@kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
def handled(spec: kopf.Spec, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Paused" if spec.get("paused") else "Active"
    patch.status["observedGeneration"] = meta.get("generation", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", action="append", required=True)
    parser.add_argument("--liveness-port", type=int, required=True)
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        help="connections to the API server at most (0: kopf's default, no limit)",
    )
    args = parser.parse_args()
    CONNECTIONS["limit"] = args.connections
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    kopf.run(
        registry=registry,
        namespaces=args.namespace,
        standalone=True,
        liveness_endpoint=f"http://127.0.0.1:{args.liveness_port}/healthz",
    )


if __name__ == "__main__":
    main()
