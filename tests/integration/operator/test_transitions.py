"""The operator's lifecycle on a real API server, driven as people drive it: the CLI and kubectl."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from helpers import OperatorHandle, eventually
from kubernetes import client

from rescue import controlplane, stack
from rescue.core import kube

pytestmark = pytest.mark.usefixtures("operator")


def _create(rescues: kube.Rescues, namespace: str, name: str, severity: str, **spec: Any) -> None:
    rescues.create(
        namespace,
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "Rescue",
            "metadata": {"name": name},
            "spec": {
                "severity": severity,
                "target": {"kind": "Deployment", "namespace": namespace, "name": "cart"},
                **spec,
            },
        },
    )


def _status(rescues: kube.Rescues, namespace: str, name: str) -> dict[str, Any]:
    return dict(rescues.get(namespace, name).get("status") or {})


def _phase_is(rescues: kube.Rescues, namespace: str, name: str, phase: str, step: str = "") -> Any:
    def check() -> Any:
        status = _status(rescues, namespace, name)
        if status.get("phase") == phase and (not step or status.get("step") == step):
            return status
        return None

    return eventually(check, what=f"{namespace}/{name} to be {phase} {step}")


def _events(api_client: Any, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return [e.reason for e in sorted(events.items, key=lambda e: e.metadata.creation_timestamp)]


def _cli(cluster: controlplane.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [stack.rescue_program(), *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )


def test_sev1_is_opened_at_once_and_walks_the_steps_in_order(
    rescues: kube.Rescues, namespace: str, api_client: Any
) -> None:
    # Without a policy no mitigation applies, so the rescue passes Mitigate quickly and says why.
    _create(rescues, namespace, "down", "SEV1")
    status = _phase_is(rescues, namespace, "down", "Active", "Diagnose")
    assert [e["event"] for e in status["timeline"]] == [
        "rescue_detected",
        "rescue_opened_v1",
        "step_triage",
        "step_mitigate",
        "mitigation_not_applicable",
        "step_diagnose",
        "diagnosis_aids",
    ]
    assert "no RescuePolicy selects" in status["timeline"][4]["message"]
    assert status["target"] == f"{namespace}/cart"
    eventually(
        lambda: "rescue_opened_v1" in _events(api_client, namespace, "down"),
        what="the rescue_opened_v1 Event",
    )


def test_sev3_stays_pending_without_a_policy(rescues: kube.Rescues, namespace: str) -> None:
    _create(rescues, namespace, "minor", "SEV3")
    status = _phase_is(rescues, namespace, "minor", "Pending", "Detect")
    assert [e["event"] for e in status["timeline"]] == ["rescue_detected"]


def test_a_policy_created_later_opens_the_pending_sev3_it_selects(
    rescues: kube.Rescues, namespace: str, api_client: Any
) -> None:
    alert = {
        "fingerprint": "1",
        "alertname": "SlowCart",
        "status": "firing",
        "startsAt": "2026-12-03T10:00:00Z",
        "labels": {"team": "shop"},
    }
    other = {**alert, "fingerprint": "2", "labels": {"team": "search"}}
    _create(rescues, namespace, "selected", "SEV3", alerts=[alert])
    _create(rescues, namespace, "not-selected", "SEV3", alerts=[other])
    _phase_is(rescues, namespace, "selected", "Pending")

    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescuepolicies",
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "RescuePolicy",
            "metadata": {"name": "shop"},
            "spec": {"selector": {"matchLabels": {"team": "shop"}}, "triage": {"open": ["SEV3"]}},
        },
    )
    status = _phase_is(rescues, namespace, "selected", "Active")
    assert "opened by policy" in status["timeline"][1]["message"]
    assert _status(rescues, namespace, "not-selected")["phase"] == "Pending"


def test_shelve_resume_and_a_premature_conclude_through_the_cli(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str, api_client: Any
) -> None:
    _create(rescues, namespace, "walk", "SEV2")
    _phase_is(rescues, namespace, "walk", "Active")

    shelved = _cli(cluster, "shelve", "walk", "-n", namespace, "--reason", "waiting on the vendor")
    assert shelved.returncode == 0, shelved.stderr
    assert "is Paused" in shelved.stdout
    resumed = _cli(cluster, "resume", "walk", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    assert "is Active" in resumed.stdout
    # Nothing of the exit checklist is done yet: conclude says exactly what is missing.
    concluded = _cli(cluster, "conclude", "walk", "-n", namespace, "--summary", "rolled back")
    assert concluded.returncode == 1
    assert "conclude refused: The exit checklist is not complete; missing: service restored" in (
        concluded.stderr
    )
    assert "findings routed" in concluded.stderr

    status = _status(rescues, namespace, "walk")
    assert status["phase"] == "Active"
    events = [e["event"] for e in status["timeline"]]
    assert events[-3:] == ["rescue_shelved_v1", "rescue_resumed_v1", "transition_refused"]
    shelve_entry = status["timeline"][-3]
    assert "waiting on the vendor" in shelve_entry["message"]
    assert shelve_entry["by"] == "rescue-admin"
    reasons = eventually(
        lambda: (r := _events(api_client, namespace, "walk")) and "transition_refused" in r and r,
        what="the lifecycle Events",
    )
    for reason in ("rescue_opened_v1", "rescue_shelved_v1", "rescue_resumed_v1"):
        assert reason in reasons


def test_shelving_a_pending_rescue_is_refused_with_a_condition(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _create(rescues, namespace, "early", "SEV4")
    _phase_is(rescues, namespace, "early", "Pending")
    refused = _cli(cluster, "shelve", "early", "-n", namespace, "--reason", "later")
    assert refused.returncode == 1
    assert "shelve refused" in refused.stderr
    status = _status(rescues, namespace, "early")
    assert status["phase"] == "Pending"
    (condition,) = [c for c in status["conditions"] if c["type"] == "TransitionRefused"]
    assert condition["status"] == "True"
    assert condition["reason"] == "ShelveWhilePending"


def test_concluding_a_shelved_rescue_is_refused(
    cluster: controlplane.Cluster, rescues: kube.Rescues, namespace: str
) -> None:
    _create(rescues, namespace, "parked", "SEV1")
    _phase_is(rescues, namespace, "parked", "Active")
    assert _cli(cluster, "shelve", "parked", "-n", namespace, "--reason", "r").returncode == 0
    refused = _cli(cluster, "conclude", "parked", "-n", namespace)
    assert refused.returncode == 1
    assert "resume it (spec.paused: false) before concluding" in refused.stderr
    assert _status(rescues, namespace, "parked")["phase"] == "Paused"


def test_operator_killed_and_restarted_changes_nothing_twice(
    rescues: kube.Rescues, namespace: str, api_client: Any, operator: OperatorHandle
) -> None:
    # After kill -9 the new operator's resume handlers run over every rescue, find everything
    # recorded, and add no timeline entry and no Event.
    _create(rescues, namespace, "settled", "SEV1")
    before = _phase_is(rescues, namespace, "settled", "Active", "Diagnose")
    events_before = eventually(
        lambda: (r := _events(api_client, namespace, "settled")) and len(r) >= 7 and r,
        what="the first Events",
    )
    restarted = operator.restart(kill=True)
    eventually(
        lambda: f"{namespace}/settled is up to date" in restarted.tail(2000),
        what="the restarted operator to resume the rescue",
    )
    assert _status(rescues, namespace, "settled")["timeline"] == before["timeline"]
    assert _events(api_client, namespace, "settled") == events_before
