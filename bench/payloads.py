"""Alertmanager notifications as a real installation sends them, for the benchmarks to post.

A notification is one alert group: Alertmanager's webhook payload, version 4, with the group's
key and labels, the labels every alert shares, and each alert with the labels a kube-prometheus
rule carries (pod, container, instance, job, ...), a summary, a description, runbook and
dashboard links, and the Prometheus query that fired as its ``generatorURL``: about 1 KB of JSON
per alert, so that parsing and storing cost what they cost in production.

Group keys carry the run's nonce, so every incident a benchmark means to be new is new.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rescue.webhook import intake
from rescue.webhook.payload import Notification

ALERTNAMES = ("KubePodCrashLooping", "HighErrorRate", "HighLatencyP99", "KubeContainerOOMKilled")
EXTERNAL_URL = "http://alertmanager.monitoring.svc:9093"


def zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fingerprint(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:16]


def alert(
    *,
    alertname: str,
    namespace: str,
    deployment: str,
    index: int,
    starts: datetime,
    severity: str = "critical",
    resolved_at: datetime | None = None,
) -> dict[str, Any]:
    """One alert of one pod of ``deployment``, firing since ``starts`` (or resolved)."""
    pod = f"{deployment}-7d9f{index % 97:02d}b6c5-{fingerprint(deployment, index)[:5]}"
    labels = {
        "alertname": alertname,
        "namespace": namespace,
        "deployment": deployment,
        "pod": pod,
        "container": "app",
        "instance": f"10.42.{index % 250}.{index * 7 % 250}:8080",
        "job": "kubernetes-pods",
        "service": deployment,
        "severity": severity,
        "team": "bench",
        "prometheus": "monitoring/k8s",
    }
    query = (
        f'sum(rate(http_requests_total{{namespace="{namespace}",deployment="{deployment}",'
        f'code=~"5.."}}[5m])) / sum(rate(http_requests_total{{namespace="{namespace}",'
        f'deployment="{deployment}"}}[5m])) > 0.05'
    )
    generator = "http://prometheus.monitoring.svc:9090/graph?" + urllib.parse.urlencode(
        {"g0.expr": query, "g0.tab": "1"}
    )
    return {
        "status": "resolved" if resolved_at else "firing",
        "labels": labels,
        "annotations": {
            "summary": f"{deployment} in {namespace} is failing more than 5% of requests",
            "description": (
                f"Pod {pod} of {namespace}/{deployment} has answered 5xx to more than 5% of "
                "requests over the last 5 minutes; check the latest deploy and its dependencies."
            ),
            "runbook_url": f"https://runbooks.example.org/{alertname.lower()}",
            "dashboard": f"https://grafana.example.org/d/app/app?var-deployment={deployment}",
        },
        "startsAt": zulu(starts),
        "endsAt": zulu(resolved_at) if resolved_at else "0001-01-01T00:00:00Z",
        "generatorURL": generator,
        "fingerprint": fingerprint(alertname, namespace, pod),
    }


def notification(
    *, group: str, alertname: str, namespace: str, deployment: str, alerts: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A version 4 notification of the group ``group`` (the unique part of its key)."""
    group_labels = {"alertname": alertname, "namespace": namespace, "deployment": deployment}
    common = dict(alerts[0]["labels"])
    for other in alerts[1:]:
        common = {k: v for k, v in common.items() if other["labels"].get(k) == v}
    shared_annotations = dict(alerts[0]["annotations"]) if len(alerts) == 1 else {}
    firing = any(a["status"] == "firing" for a in alerts)
    matchers = ", ".join(f'{k}="{v}"' for k, v in group_labels.items())
    return {
        "version": "4",
        "groupKey": f'{{}}/{{team="bench"}}:{{{matchers}}} bench="{group}"',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "rescue",
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": shared_annotations,
        "externalURL": EXTERNAL_URL,
        "alerts": list(alerts),
    }


def incident(
    *, group: str, namespace: str, size: int, starts: datetime, alertname: str = ALERTNAMES[1]
) -> dict[str, Any]:
    """A new incident's first notification: ``size`` pods of one deployment, all firing."""
    deployment = f"svc-{group}"
    alerts = [
        alert(
            alertname=alertname,
            namespace=namespace,
            deployment=deployment,
            index=index,
            starts=starts,
        )
        for index in range(size)
    ]
    return notification(
        group=group, alertname=alertname, namespace=namespace, deployment=deployment, alerts=alerts
    )


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def rescue_of(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The Rescue the webhook creates for this notification, built by the webhook's own code."""
    return intake.build_rescue(
        Notification.model_validate(document), intake.IntakeConfig(), namespace
    )
