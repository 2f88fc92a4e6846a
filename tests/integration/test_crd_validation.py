"""The CRDs on the real API server: what the schema refuses and what `kubectl get` shows."""

from __future__ import annotations

from typing import Any

import pytest

from rescue import stack
from rescue.core import kube


def _rescue(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "alc.hecate.dev/v1alpha1",
        "kind": "Rescue",
        "metadata": {"name": name},
        "spec": {"severity": "SEV2", **spec},
    }


def test_unknown_severity_is_refused_by_the_schema(rescues: kube.Rescues, namespace: str) -> None:
    with pytest.raises(kube.KubeRejected) as refused:
        rescues.create(namespace, _rescue("bad-severity", severity="SEV5"))
    assert refused.value.status == 422
    assert "spec.severity" in str(refused.value)


def test_phase_outside_the_four_is_refused_on_the_status(
    rescues: kube.Rescues, namespace: str, api_client: Any
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    rescues.create(namespace, _rescue("bad-phase"))
    api = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object_status(
            "alc.hecate.dev",
            "v1alpha1",
            namespace,
            "rescues",
            "bad-phase",
            {"status": {"phase": "Exploded"}},
            _content_type="application/merge-patch+json",
        )
    assert refused.value.status == 422
    assert "status.phase" in str(refused.value.body)


def test_too_many_alerts_are_refused(rescues: kube.Rescues, namespace: str) -> None:
    alert = {"fingerprint": "f", "status": "firing", "startsAt": "2026-12-03T10:00:00Z"}
    with pytest.raises(kube.KubeRejected):
        rescues.create(namespace, _rescue("too-many", alerts=[alert] * 51))


def test_printer_columns_and_short_name(
    cluster: Any, rescues: kube.Rescues, namespace: str
) -> None:
    rescues.create(namespace, _rescue("columns", target={"namespace": "shop", "name": "cart"}))
    out = stack.kubectl(cluster, "get", "rsc", "-n", namespace)
    header = out.splitlines()[0].split()
    assert header == ["NAME", "SEVERITY", "PHASE", "STEP", "TARGET", "COMMIT", "AGE"]
    assert "columns" in out
    by_category = stack.kubectl(cluster, "get", "alc", "-n", namespace)
    assert "rescue.alc.hecate.dev/columns" in by_category
