"""The `rescue` verbs against a real API server, and the same program as a kubectl plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import eventually

from rescue import controlplane, stack
from rescue.core import kube
from rescue.core.incident import format_time

pytestmark = pytest.mark.usefixtures("operator")


def _run(cluster: controlplane.Cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )


def _sev1(rescues: kube.Rescues, namespace: str, name: str) -> None:
    rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": name},
            "spec": {
                "severity": "SEV1",
                "title": "Payments time out",
                "target": {"kind": "Deployment", "namespace": namespace, "name": "payments"},
            },
        },
    )
    eventually(
        lambda: (rescues.get(namespace, name).get("status") or {}).get("step") == "Diagnose",
        what="the operator to open the rescue",
    )


def test_list_shows_the_columns_people_expect(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay")
    result = _run(cluster, stack.rescue_program(), "list", "-n", namespace)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "SEVERITY", "PHASE", "STEP", "TARGET", "COMMIT", "AGE"]
    assert row.split()[:6] == ["pay", "SEV1", "Active", "Diagnose", f"{namespace}/payments", "-"]


def test_list_across_namespaces_names_each_namespace(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay-all")
    result = _run(cluster, stack.rescue_program(), "list", "-A", "-o", "json")
    names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in json.loads(result.stdout)}
    assert (namespace, "pay-all") in names


def test_show_prints_the_timeline(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay-show")
    result = _run(cluster, stack.rescue_program(), "show", "pay-show", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert "Title:      Payments time out" in result.stdout
    assert "rescue_opened_v1" in result.stdout
    assert result.stdout.index("rescue_detected") < result.stdout.index("step_triage")


def test_show_of_a_missing_rescue_fails_with_one_line(
    cluster: controlplane.Cluster, namespace: str
) -> None:
    result = _run(cluster, stack.rescue_program(), "show", "nope", "-n", namespace)
    assert result.returncode == 1
    assert result.stderr.startswith("rescue: reading rescue")
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_same_program_works_as_a_kubectl_plugin(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str, tmp_path: Path
) -> None:
    _sev1(rescues, namespace, "pay-plugin")
    plugin_dir = Path(stack.rescue_program()).parent
    assert (plugin_dir / "kubectl-rescue").exists()
    env = {**stack.child_env(cluster), "PATH": f"{plugin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        [
            str(cluster.kubectl),
            "rescue",
            "shelve",
            "pay-plugin",
            "-n",
            namespace,
            "--reason",
            "waiting on the payment provider",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "is Paused" in result.stdout


def test_triage_diagnose_and_resolve_are_recorded_with_who_decided(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay-notes")
    program = stack.rescue_program()
    triaged = _run(
        cluster,
        program,
        "triage",
        "pay-notes",
        "-n",
        namespace,
        "--severity",
        "SEV2",
        "--reason",
        "only card payments fail",
    )
    assert triaged.returncode == 0, triaged.stderr
    diagnosed = _run(
        cluster,
        program,
        "diagnose",
        "pay-notes",
        "-n",
        namespace,
        "--root-cause",
        "connection pool too small after 1.5.0",
        "--category",
        "capacity",
    )
    assert diagnosed.returncode == 0, diagnosed.stderr
    resolved = _run(
        cluster,
        program,
        "resolve",
        "pay-notes",
        "-n",
        namespace,
        "--fix",
        "pool size from config",
        "--commit",
        "abc1234",
    )
    assert resolved.returncode == 0, resolved.stderr

    timeline = rescues.get(namespace, "pay-notes")["status"]["timeline"]
    by_event = {e["event"]: e for e in timeline}
    assert by_event["rescue_retriaged"]["message"] == (
        "Severity changed from SEV1 to SEV2 by rescue-admin: only card payments fail."
    )
    assert by_event["root_cause_recorded"]["message"] == (
        "Root cause (capacity): connection pool too small after 1.5.0."
    )
    assert by_event["fix_recorded"]["message"] == (
        "Permanent fix: pool size from config (commit abc1234)."
    )
    assert {by_event[e]["by"] for e in ("rescue_retriaged", "fix_recorded")} == {"rescue-admin"}


def test_a_category_outside_the_five_is_refused_by_the_command_line(
    cluster: controlplane.Cluster, namespace: str
) -> None:
    result = _run(
        cluster,
        stack.rescue_program(),
        "diagnose",
        "x",
        "-n",
        namespace,
        "--root-cause",
        "r",
        "--category",
        "gremlins",
    )
    assert result.returncode == 2
    assert "invalid choice: 'gremlins'" in result.stderr


def test_timeline_prints_one_line_per_entry_in_order(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay-timeline")
    result = _run(cluster, stack.rescue_program(), "timeline", "pay-timeline", "-n", namespace)
    assert result.returncode == 0, result.stderr
    events = [line.split()[1] for line in result.stdout.splitlines()]
    stored = [e["event"] for e in rescues.get(namespace, "pay-timeline")["status"]["timeline"]]
    assert events == stored
    assert events[:3] == ["rescue_detected", "rescue_opened_v1", "step_triage"]


def test_review_prints_the_template_and_records_lessons_and_action_items(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _sev1(rescues, namespace, "pay-review")
    program = stack.rescue_program()
    first = _run(cluster, program, "review", "pay-review", "-n", namespace)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("## Incident: Payments time out\n")
    assert "- What went well" in first.stdout

    second = _run(
        cluster,
        program,
        "review",
        "pay-review",
        "-n",
        namespace,
        "--lessons",
        "Alert on pool saturation, not only on errors.",
        "--action-item",
        "Add a pool saturation alert -- owner: ana, due: 2026-12-10",
    )
    assert second.returncode == 0, second.stderr
    assert "Alert on pool saturation, not only on errors." in second.stdout
    assert "- [ ] Add a pool saturation alert -- owner: ana, due: 2026-12-10" in second.stdout
    review = rescues.get(namespace, "pay-review")["spec"]["review"]
    assert review["by"] == "rescue-admin"


def test_show_says_how_long_each_step_took_from_the_start(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=10)
    rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": "pay-times"},
            "spec": {
                "severity": "SEV1",
                "incidentStart": format_time(started),
                "target": {"kind": "Deployment", "namespace": namespace, "name": "payments"},
            },
        },
    )
    eventually(
        lambda: (rescues.get(namespace, "pay-times").get("status") or {}).get("openedAt"),
        what="the operator to open the rescue",
    )
    result = _run(cluster, stack.rescue_program(), "show", "pay-times", "-n", namespace)
    assert re.search(
        r"^Times:      detect 10 min \d\d s, triage 10 min \d\d s after the start$",
        result.stdout,
        re.M,
    ), result.stdout
