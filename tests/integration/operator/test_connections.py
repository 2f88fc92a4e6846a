"""The operator's connections to the API server stay within their bound through a burst.

kopf's own HTTP session opens a connection for every request in flight; under a burst of
rescues that was hundreds of TLS connections, and most of the operator's memory. The operator
brings a bounded session instead (``handlers.connections_for``); this counts the connections
the kernel sees the process hold while a burst is handled. With kopf's own session this
burst held 332 of them.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from helpers import OperatorHandle, eventually

from rescue import controlplane, stack
from rescue.core import kube
from rescue.operator.handlers import connections_for

BURST = 300


def _api_port(cluster: controlplane.Cluster) -> int:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    return server.port or 443


def _established_to(pid: int, port: int) -> int:
    """TCP connections of the process ``pid`` in state ESTABLISHED to the remote ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_a_burst_of_rescues_never_opens_more_connections_than_the_bound(
    operator: OperatorHandle,
    cluster: controlplane.Cluster,
    rescues: kube.Rescues,
    namespace: str,
    tmp_path: Path,
) -> None:
    port = _api_port(cluster)
    with operator.stopped():
        process = stack.start_operator(
            cluster, folder=tmp_path, name="bounded", extra_args=("--namespace", namespace)
        )
        try:
            most = 0
            sampling = threading.Event()

            def sample() -> None:
                nonlocal most
                while not sampling.is_set():
                    most = max(most, _established_to(process.popen.pid, port))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:

                def create(n: int) -> None:
                    rescues.create(
                        namespace,
                        {
                            "apiVersion": "alc.hecate.dev/v1alpha1",
                            "kind": "Rescue",
                            "metadata": {"name": f"burst-{n}"},
                            "spec": {
                                "severity": "SEV1",
                                "target": {
                                    "kind": "Deployment",
                                    "namespace": namespace,
                                    "name": f"app-{n}",
                                },
                            },
                        },
                    )

                with ThreadPoolExecutor(max_workers=16) as pool:
                    list(pool.map(create, range(BURST)))

                def all_handled() -> bool:
                    return all(
                        (item.get("status") or {}).get("phase") == "Active"
                        for item in rescues.list(namespace)
                    )

                eventually(all_handled, timeout=180, what="every rescue of the burst opened")
            finally:
                sampling.set()
                sampler.join()
        finally:
            process.stop()
    # Besides kopf's session, the handlers' own calls (the kubernetes client, run in the
    # default thread pool) hold one connection per thread at most, and the metrics server one.
    bound = connections_for(1) + min(32, (os.cpu_count() or 1) + 4) + 1
    assert 0 < most <= bound, f"{most} connections to the API server, bound {bound}"
