"""`rescue report` against a real API server: rescues whose records hold known moments, read
back as the table, the JSON and the HTML page.

The suite's operator runs (as it does for the other verbs), so each rescue is first left to the
operator to open; the recorded moments are written over its status afterwards, and being only
status they start no new reconcile.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from rescue import controlplane, stack
from rescue.core import kube
from rescue.core.incident import format_time

pytestmark = pytest.mark.usefixtures("operator")

NOW = datetime.now(UTC).replace(microsecond=0)


def _run(cluster: controlplane.Cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [stack.rescue_program(), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )


def _recorded(
    rescues: kube.Rescues,
    api_client: Any,
    namespace: str,
    name: str,
    *,
    severity: str,
    started: datetime,
    status: dict[str, Any],
    paused: bool = False,
) -> None:
    """A rescue with the status a finished (or shelved) response leaves; the status
    subresource takes its own write."""
    from kubernetes import client

    created = rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": name},
            "spec": {
                "severity": severity,
                "title": "Payments time out",
                "incidentStart": format_time(started),
                "target": {"kind": "Deployment", "namespace": namespace, "name": "payments"},
                "paused": paused,
            },
        },
    )
    generation = created["metadata"]["generation"]

    def settled() -> bool:
        status = rescues.get(namespace, name).get("status") or {}
        return status.get("observedGeneration", 0) >= generation and (
            status.get("step") == "Diagnose" or status.get("phase") == "Paused"
        )

    eventually(settled, what=f"the operator to open rescue {name}")
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescues",
        name,
        {"status": {"severity": severity, **status}},
        _content_type="application/merge-patch+json",
    )


def _after(started: datetime, minutes: float) -> str:
    return format_time(started + timedelta(minutes=minutes))


@pytest.fixture
def recorded(rescues: kube.Rescues, api_client: Any, namespace: str) -> str:
    """Two SEV1 and one SEV2 rescue in the last month, one SEV1 before it."""
    fast, slow = NOW - timedelta(days=2), NOW - timedelta(days=5)
    shelved, old = NOW - timedelta(hours=1), NOW - timedelta(days=60)

    def concluded(started: datetime, recovered: float) -> dict[str, Any]:
        return {
            "phase": "Completed",
            "step": "Review",
            # Markup in what the cluster says is shown as text, never as markup.
            "target": f"{namespace}/<b>payments</b>",
            "openedAt": _after(started, 1),
            "triagedAt": _after(started, 2),
            "mitigation": {"state": "Verified", "appliedAt": _after(started, 10)},
            "recoveredAt": _after(started, recovered),
            "concludedAt": _after(started, 600),
        }

    _recorded(
        rescues,
        api_client,
        namespace,
        "pay-fast",
        severity="SEV1",
        started=fast,
        status=concluded(fast, 30),
    )
    _recorded(
        rescues,
        api_client,
        namespace,
        "pay-slow",
        severity="SEV2",
        started=slow,
        status=concluded(slow, 90),
    )
    _recorded(
        rescues,
        api_client,
        namespace,
        "pay-shelved",
        severity="SEV1",
        started=shelved,
        paused=True,
        status={"phase": "Paused", "step": "Diagnose", "openedAt": _after(shelved, 1)},
    )
    _recorded(
        rescues,
        api_client,
        namespace,
        "pay-last-quarter",
        severity="SEV1",
        started=old,
        status=concluded(old, 45),
    )
    return namespace


def test_the_table_summarises_each_severity_and_lists_each_rescue(
    cluster: controlplane.Cluster, recorded: str
) -> None:
    result = _run(cluster, "report", "-n", recorded, "--since", "30d")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Rescues in namespace {recorded} whose incident started")
    by_severity = {line.split()[0]: line for line in lines if re.match(r"SEV\d ", line)}
    # incidents, opened, still open, concluded, recovered; then the MTTR.
    assert by_severity["SEV1"].split()[1:6] == ["2", "2", "1", "1", "1"]
    assert "30 min 00 s" in by_severity["SEV1"]
    assert "1 h 30 min" in by_severity["SEV2"]
    assert by_severity["SEV3"].split()[1:] == ["0"] * 5 + ["-"] * 5
    rows = [line.split()[1] for line in lines if line.startswith(f"{recorded} ")]
    assert rows == ["pay-slow", "pay-fast", "pay-shelved"]


def test_the_json_gives_scripts_seconds_under_stable_keys(
    cluster: controlplane.Cluster, recorded: str
) -> None:
    result = _run(cluster, "report", "-n", recorded, "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["namespace"] == recorded
    sev1, sev2 = document["severities"][:2]
    assert (sev1["incidents"], sev1["still_open"], sev1["recovered"]) == (2, 1, 1)
    assert sev1["mttr_mean_seconds"] == 1800.0
    assert sev2["mttr_p90_seconds"] == 5400.0
    assert sev2["time_to_mitigate_mean_seconds"] == 600.0
    by_name = {r["name"]: r for r in document["rescues"]}
    assert set(by_name) == {"pay-fast", "pay-slow", "pay-shelved"}
    assert by_name["pay-shelved"]["seconds"]["resolve"] is None
    assert by_name["pay-fast"]["seconds"]["conclude"] == 36000.0


def test_the_html_page_holds_the_table_and_a_bar_per_rescue(
    cluster: controlplane.Cluster, recorded: str, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = _run(cluster, "report", "-n", recorded, "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert f"wrote {page}" in result.stderr
    html = page.read_text()
    assert html.count('<g class="bar"') == 3
    assert html.count('<rect class="duration"') == 2
    for name in ("pay-fast", "pay-slow", "pay-shelved"):
        assert f"{recorded}/{name}" in html
    assert "pay-last-quarter" not in html
    assert f"{recorded}/&lt;b&gt;payments&lt;/b&gt;" in html
    assert "<b>" not in html


def test_the_whole_cluster_and_a_severity_filter(
    cluster: controlplane.Cluster, recorded: str
) -> None:
    result = _run(cluster, "report", "-A", "--severity", "SEV2", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["namespace"] is None
    assert [s["severity"] for s in document["severities"]] == ["SEV2"]
    mine = [r["name"] for r in document["rescues"] if r["namespace"] == recorded]
    assert mine == ["pay-slow"]


def test_a_bad_window_is_one_line_saying_what_to_write(
    cluster: controlplane.Cluster, namespace: str
) -> None:
    result = _run(cluster, "report", "-n", namespace, "--since", "2weeks")
    assert result.returncode == 1
    assert result.stderr.startswith("rescue: --since: '2weeks' is not a duration")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_empty_namespace_still_shows_every_severity(
    cluster: controlplane.Cluster, namespace: str
) -> None:
    result = _run(cluster, "report", "-n", namespace)
    assert result.returncode == 0, result.stderr
    severities = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("SEV")]
    assert severities == ["SEVERITY", "SEV1", "SEV2", "SEV3", "SEV4"]
    assert "No rescue's incident started in this window." in result.stdout


def test_report_works_as_a_kubectl_plugin(cluster: controlplane.Cluster, recorded: str) -> None:
    plugin_dir = Path(stack.rescue_program()).parent
    env = {**stack.child_env(cluster), "PATH": f"{plugin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(cluster.kubectl), "rescue", "report", "-n", recorded, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["rescues"]) == 3
