"""Two operator replicas peering on the real API server: the one with the highest priority acts,
the other stands by, and takes over by itself when the first is killed."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from helpers import OperatorHandle, eventually

from rescue import controlplane, stack
from rescue.core import kube


def _create(rescues: kube.Rescues, namespace: str, name: str) -> None:
    rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": name},
            "spec": {
                "severity": "SEV1",
                "target": {"kind": "Deployment", "namespace": namespace, "name": "cart"},
            },
        },
    )


def _active(rescues: kube.Rescues, namespace: str, name: str) -> bool:
    return (rescues.get(namespace, name).get("status") or {}).get("phase") == "Active"


def test_one_replica_acts_and_the_other_takes_over_when_it_is_killed(
    operator: OperatorHandle,
    cluster: controlplane.Cluster,
    rescues: kube.Rescues,
    namespace: str,
    tmp_path: Path,
) -> None:
    peering = f"rescue-{uuid.uuid4().hex[:8]}"
    stack.kubectl_apply(
        cluster,
        f"apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata:\n  name: {peering}\n",
    )

    def replica(name: str, priority: int) -> stack.Process:
        return stack.start_operator(
            cluster,
            folder=tmp_path,
            name=name,
            extra_args=("--peering", peering, "--priority", str(priority)),
        )

    with operator.stopped():
        leader, standby = replica("leader", 200), replica("standby", 100)
        try:
            _create(rescues, namespace, "first")
            eventually(lambda: _active(rescues, namespace, "first"), what="the first rescue")
            time.sleep(2)  # every chance for the standby to act too, were it not standing by
            assert f"{namespace}/first" in leader.tail(500)
            assert f"{namespace}/first" not in standby.tail(500)

            leader.stop(kill=True)
            _create(rescues, namespace, "second")
            # The leader's keep-alive lapses after its lifetime (15 s), then the standby acts.
            eventually(
                lambda: _active(rescues, namespace, "second"),
                timeout=60,
                what="the standby to take over and open the second rescue",
            )
            assert f"{namespace}/second" in standby.tail(500)
            assert "Resuming operations" in standby.tail(500)
        finally:
            leader.stop()
            standby.stop()


def test_json_logs_are_one_object_per_line_naming_the_rescue(
    operator: OperatorHandle,
    cluster: controlplane.Cluster,
    rescues: kube.Rescues,
    namespace: str,
    tmp_path: Path,
) -> None:
    with operator.stopped():
        process = stack.start_operator(
            cluster, folder=tmp_path, name="json", env={"RESCUE_LOG_FORMAT": "json"}
        )
        try:
            _create(rescues, namespace, "logged")
            eventually(lambda: _active(rescues, namespace, "logged"), what="the rescue to open")
        finally:
            process.stop()
    entries = [json.loads(line) for line in process.log.read_text().splitlines() if line]
    about = [e for e in entries if e.get("rescue") == f"{namespace}/logged"]
    assert any("Rescue opened: SEV1 is always opened." in e["message"] for e in about)
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
