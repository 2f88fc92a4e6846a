"""The operator's metrics on the real API server: each fact counted once across replicas and
restarts, and gauges computed from the rescues as they are."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import OperatorHandle, eventually

from rescue import controlplane, stack
from rescue.core import kube

N = 6


def _create(rescues: kube.Rescues, namespace: str, name: str, severity: str) -> None:
    rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": name},
            "spec": {
                "severity": severity,
                "incidentStart": "2026-12-03T10:00:00Z",
                "target": {"kind": "Deployment", "namespace": namespace, "name": "cart"},
            },
        },
    )


def _sample(process: stack.Process, name: str, **labels: str) -> float:
    """One sample's value from the process's /metrics; 0 when the series is absent."""
    text = httpx.get(process.extra["metrics"], timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.fixture
def replicas(
    operator: OperatorHandle, cluster: controlplane.Cluster, tmp_path: Path
) -> Iterator[list[stack.Process]]:
    """Two operators side by side, each acting on every rescue, instead of the suite's one."""
    with operator.stopped():
        pair = [stack.start_operator(cluster, folder=tmp_path, name=f"replica-{i}") for i in (1, 2)]
        try:
            yield pair
        finally:
            for process in pair:
                process.stop()


def _counted(rescues: kube.Rescues, namespace: str, name: str, key: str) -> Any:
    return key in ((rescues.get(namespace, name).get("status") or {}).get("counted") or [])


def test_two_replicas_count_each_rescue_once_and_a_restart_counts_nothing_again(
    replicas: list[stack.Process],
    rescues: kube.Rescues,
    namespace: str,
    cluster: controlplane.Cluster,
    tmp_path: Path,
) -> None:
    names = [f"counted-{i}" for i in range(N)]
    for name in names:
        _create(rescues, namespace, name, "SEV1")
    for name in names:
        eventually(
            lambda name=name: _counted(rescues, namespace, name, "time:detect"),
            what=f"{name}'s detection to be counted",
        )

    def total(metric: str, **labels: str) -> float:
        return sum(_sample(p, metric, **labels) for p in replicas)

    assert total("rescue_opened_total", severity="SEV1") == N
    assert total("rescue_time_to_detect_seconds_count", severity="SEV1") == N
    assert total("rescue_time_to_triage_seconds_count", severity="SEV1") == N

    first = replicas[0]
    first.stop(kill=True)
    again = stack.start_operator(cluster, folder=tmp_path, name="replica-1-again")
    replicas[0] = again
    # Something new, so there is proof the restarted replica has listed and acted.
    _create(rescues, namespace, "counted-after", "SEV2")
    eventually(
        lambda: _counted(rescues, namespace, "counted-after", "opened"),
        what="the new rescue to be counted",
    )
    assert total("rescue_opened_total", severity="SEV1") == _sample(
        replicas[1], "rescue_opened_total", severity="SEV1"
    )  # the restarted replica counted none of the SEV1 rescues again
    assert total("rescue_opened_total", severity="SEV2") == 1


def test_open_gauges_are_read_from_the_cluster_so_fresh_replicas_report_them_at_once(
    replicas: list[stack.Process], rescues: kube.Rescues, namespace: str
) -> None:
    _create(rescues, namespace, "gauged", "SEV2")
    eventually(
        lambda: (rescues.get(namespace, "gauged").get("status") or {}).get("phase") == "Active",
        what="the rescue to open",
    )

    def expected() -> int:
        return sum(
            1
            for r in rescues.list()
            if (r.get("status") or {}).get("phase") == "Active"
            and (r.get("status") or {}).get("severity") == "SEV2"
        )

    for process in replicas:
        eventually(
            lambda process=process: (
                _sample(process, "rescue_open", phase="Active", severity="SEV2") == expected()
            ),
            timeout=30,
            what=f"{process.name} to report the open SEV2 rescues",
        )
    assert expected() >= 1
