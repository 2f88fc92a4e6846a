"""End to end: Debian's Prometheus scrapes the webhook and the operator while a scripted
incident with known timings runs, and the MTTR read back through Prometheus's HTTP API is the
one the incident had."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from helpers import OperatorHandle, eventually, notification
from kubernetes import client

from rescue import controlplane, stack
from rescue.core import kube
from rescue.core.incident import format_time

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = REPO_ROOT / "deploy" / "monitoring" / "rules.yml"

#: The incident: started 15 minutes ago, its alert ended 5 minutes ago, so the time to
#: restore is exactly 10 minutes, whenever the notifications arrive.
STARTED_AGO = timedelta(minutes=15)
ENDED_AGO = timedelta(minutes=5)
MTTR = (STARTED_AGO - ENDED_AGO).total_seconds()


def _address(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture
def watched(
    operator: OperatorHandle, cluster: controlplane.Cluster, namespace: str, tmp_path: Path
) -> Iterator[stack.Process]:
    """An operator of this namespace alone, so its metrics hold this incident and no other."""
    with operator.stopped():
        process = stack.start_operator(
            cluster, folder=tmp_path, name="operator-mttr", extra_args=("--namespace", namespace)
        )
        try:
            yield process
        finally:
            process.stop()


def _rules_every_second(folder: Path) -> tuple[Path, ...]:
    """The shipped rules, evaluated every second instead of every few minutes."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    copy = folder / "rules.yml"
    copy.write_text(yaml.safe_dump(rules))
    return (copy,)


@pytest.fixture
def prometheus(
    watched: stack.Process, webhook: stack.Process, tmp_path: Path
) -> Iterator[stack.Process]:
    process = stack.start_prometheus(
        folder=tmp_path,
        targets={
            "rescue-operator": _address(watched.extra["metrics"]),
            "rescue-webhook": _address(webhook.url),
        },
        rule_files=_rules_every_second(tmp_path),
    )
    yield process
    process.stop()


def _query(prometheus: stack.Process, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(prometheus: stack.Process, expr: str) -> float | None:
    result = _query(prometheus, expr)
    if len(result) != 1:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: nothing to divide yet


def test_mttr_from_prometheus_is_the_incidents_time_to_restore(
    prometheus: stack.Process,
    post: Any,
    api_client: Any,
    rescues: kube.Rescues,
    namespace: str,
) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescuepolicies",
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "RescuePolicy",
            "metadata": {"name": "measured"},
            "spec": {"gates": {"stableSeconds": 1}},
        },
    )
    # Both targets up before the incident, so every sample of it lands in scraped series.
    eventually(
        lambda: _value(prometheus, 'count(up{job=~"rescue-.*"} == 1)') == 2,
        timeout=30,
        what="Prometheus to scrape the operator and the webhook",
    )

    now = datetime.now(UTC)
    started = format_time(now - STARTED_AGO)
    assert post(notification(namespace=namespace, starts_at=started)).status_code == 200
    eventually(
        lambda: (
            rescues.list(namespace)
            and (rescues.list(namespace)[0].get("status") or {}).get("phase") == "Active"
        ),
        what="the rescue to open",
    )
    resolved = notification(namespace=namespace, status="resolved", starts_at=started)
    resolved["alerts"][0]["endsAt"] = format_time(now - ENDED_AGO)
    assert post(resolved).status_code == 200

    rescue = eventually(
        lambda: next(
            (r for r in rescues.list(namespace) if (r.get("status") or {}).get("recoveredAt")),
            None,
        ),
        what="the operator to verify the recovery",
    )
    assert rescue["status"]["recoveredAt"] == format_time(now - ENDED_AGO)

    mttr_query = (
        'sum(rescue_time_to_resolve_seconds_sum{job="rescue-operator",severity="SEV1"})'
        ' / sum(rescue_time_to_resolve_seconds_count{job="rescue-operator",severity="SEV1"})'
    )
    mttr = eventually(
        lambda: _value(prometheus, mttr_query),
        timeout=30,
        what="Prometheus to hold the MTTR",
    )
    assert mttr == pytest.approx(MTTR, abs=1.0)
    # The time to detect is from the alert's start to the rescue opening a moment after posting.
    detect = _value(
        prometheus,
        'rescue_time_to_detect_seconds_sum{severity="SEV1"}'
        ' / rescue_time_to_detect_seconds_count{severity="SEV1"}',
    )
    assert detect is not None
    assert STARTED_AGO.total_seconds() <= detect < STARTED_AGO.total_seconds() + 30
    # Exactly one rescue, counted once, with both notifications seen by the webhook.
    assert _value(prometheus, 'rescue_opened_total{severity="SEV1"}') == 1
    received = _value(prometheus, "sum(rescue_webhook_notifications_total)")
    assert received is not None and received >= 2

    # The shipped recording rule computes the same MTTR from the same histogram.
    recorded = eventually(
        lambda: _value(
            prometheus, 'severity:rescue_time_to_resolve_seconds:mean1d{severity="SEV1"}'
        ),
        timeout=30,
        what="the recording rule to evaluate",
    )
    assert recorded == pytest.approx(MTTR, abs=1.0)
