"""From one notification to one Rescue: create it, or merge into the one that exists.

Deduplication is by construction, not by memory. A notification first looks for the open
rescue of its alert group (a label selector); when there is none it creates one under the
incident's deterministic name, and an ``AlreadyExists`` from the API server means another
delivery of the same incident won the race, so this one merges instead. Merges are read, change,
write as a JSON patch guarded by a ``test`` of the object's generation, which moves only when the
spec does: a concurrent writer of the spec (another webhook replica, a person shelving the rescue)
makes the write fail and this one reads again, so no update is lost, while the operator's status
writes never get in the way.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rescue.core import kube, logcontext
from rescue.core.incident import (
    format_time,
    group_hash,
    incident_start,
    merge_alerts,
    rescue_labels,
    rescue_name,
)
from rescue.core.model import (
    API_VERSION,
    DEFAULT_SEVERITY,
    DEFAULT_SEVERITY_MAP,
    LABEL_GROUP,
    RESCUE_KIND,
    Severity,
    TargetLabels,
    map_severity,
    worst,
)
from rescue.core.policy import Policy
from rescue.webhook.payload import Notification
from rescue.webhook.policies import PolicySource

logger = logging.getLogger(__name__)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MERGE_ATTEMPTS = 20


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # a duplicate delivery: nothing new to record
    IGNORED = "ignored"  # a resolved notification for an incident never recorded


@dataclass(frozen=True)
class IntakeConfig:
    default_namespace: str = "rescue-system"
    severity_label: str = "severity"
    severity_map: Mapping[str, Severity] = field(default_factory=lambda: DEFAULT_SEVERITY_MAP)
    default_severity: Severity = DEFAULT_SEVERITY
    target_labels: TargetLabels = field(default_factory=TargetLabels)
    #: This many distinct workloads firing in one incident raise its severity a level (0: off).
    blast_radius: int = 3


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    namespace: str
    name: str


@dataclass(frozen=True)
class SeverityReading:
    """How an alert's severity is read: which label, and what its values mean."""

    label: str
    mapping: Mapping[str, Severity]
    default: Severity
    policy: str | None = None  # the policy whose triage decided it, or None: the flags

    def of(self, labels: Mapping[str, str]) -> Severity:
        return map_severity(labels.get(self.label), self.mapping, self.default)


def reading(config: IntakeConfig, policy: Policy | None = None) -> SeverityReading:
    """The flags' reading, or the policy's where it says anything: its label (the flags' when
    it names none) and its values over the flags' mapping."""
    flags = SeverityReading(config.severity_label, config.severity_map, config.default_severity)
    if policy is None or not policy.spec.triage.maps_severity:
        return flags
    triage = policy.spec.triage
    return SeverityReading(
        label=triage.severityLabel or config.severity_label,
        mapping={**config.severity_map, **triage.severityMap},
        default=config.default_severity,
        policy=policy.ref,
    )


def severity_of(
    notification: Notification, config: IntakeConfig, read: SeverityReading | None = None
) -> Severity:
    """The worst severity among the firing alerts (among all, if none fires)."""
    read = read or reading(config)
    alerts = [a for a in notification.alerts if a.status == "firing"] or notification.alerts
    return worst([read.of(a.labels) for a in alerts])


def namespace_for(target_namespace: str, config: IntakeConfig) -> str:
    """Rescues live beside their target, so that a team's RBAC and policies cover them."""
    if target_namespace and _DNS_LABEL.match(target_namespace):
        return target_namespace
    return config.default_namespace


def build_rescue(
    notification: Notification,
    config: IntakeConfig,
    namespace: str,
    read: SeverityReading | None = None,
) -> kube.Body:
    records = [a.to_record() for a in notification.alerts]
    merged, dropped = merge_alerts([], records)
    # The start of the incident counts every alert, also those the bound leaves out.
    started = incident_start(records)
    severity = severity_of(notification, config, read)
    labels = _labels(notification)
    target = config.target_labels.target_of(labels)
    alertname = notification.groupLabels.get("alertname") or notification.alerts[0].name
    spec: dict[str, Any] = {
        "severity": severity.value,
        "title": _title(notification),
        "target": target.model_dump(),
        "groupKey": notification.groupKey,
        "incidentStart": format_time(started),
        "alerts": merged,
        "truncatedAlerts": notification.truncatedAlerts + dropped,
    }
    if notification.externalURL:
        spec["externalURL"] = notification.externalURL[:4096]
    return {
        "apiVersion": API_VERSION,
        "kind": RESCUE_KIND,
        "metadata": {
            "name": rescue_name(
                alertname=alertname, group_key=notification.groupKey, started=started
            ),
            "namespace": namespace,
            "labels": rescue_labels(group_key=notification.groupKey, severity=severity.value),
        },
        "spec": spec,
    }


def _title(notification: Notification) -> str:
    first = notification.alerts[0]
    summary = (
        notification.commonAnnotations.get("summary")
        or first.annotations.get("summary")
        or first.annotations.get("description")
        or first.name
        or "alert"
    )
    return summary[:512]


def _labels(notification: Notification) -> dict[str, str]:
    """The labels the incident's alerts share: what names its target and selects its policy."""
    return dict(notification.commonLabels or notification.alerts[0].labels)


def _reading_in(
    namespace: str,
    notification: Notification,
    config: IntakeConfig,
    policies: PolicySource | None,
) -> SeverityReading:
    policy = policies.select(namespace, _labels(notification)) if policies else None
    return reading(config, policy)


def record(
    notification: Notification,
    *,
    rescues: kube.Rescues,
    config: IntakeConfig,
    policies: PolicySource | None = None,
) -> Result:
    """Record one notification; raises ``kube.KubeError`` for the caller to map to HTTP.

    ``policies``, when given, lets the RescuePolicy that selects the alerts in the rescue's
    namespace decide how their severity label is read.
    """
    labels = _labels(notification)
    namespace = namespace_for(config.target_labels.target_of(labels).namespace, config)
    read = _reading_in(namespace, notification, config, policies)
    body = build_rescue(notification, config, namespace, read)
    logcontext.about(f"{namespace}/{body['metadata']['name']}")

    # 1. The group's open rescue, if any: later notifications of an incident land there even
    #    when the alert that started it has resolved and another has joined.
    open_rescue = _open_rescue_of_group(rescues, namespace, notification.groupKey)
    if open_rescue is not None:
        return _merge(rescues, namespace, open_rescue, notification, config, read)

    # 2. A resolved notification is evidence, never a trigger: it does not start a rescue.
    if all(a.status == "resolved" for a in notification.alerts):
        name = body["metadata"]["name"]
        try:
            existing = rescues.get(namespace, name)
        except kube.NotFound:
            logger.info(
                "Resolved notification for group %s matches no rescue; nothing to record.",
                group_hash(notification.groupKey),
            )
            return Result(Outcome.IGNORED, namespace, name)
        return _merge(rescues, namespace, existing, notification, config, read)

    # 3. A new incident: the deterministic name makes a concurrent duplicate an AlreadyExists.
    try:
        return _create_or_merge(rescues, namespace, body, notification, config, read)
    except kube.NotFound:
        if namespace == config.default_namespace:
            raise
    # The target's namespace does not exist (yet): keep the incident in the default namespace
    # rather than lose it, its severity read as that namespace's policies say.
    logger.warning(
        "Namespace %s does not exist; recording the rescue in %s instead.",
        namespace,
        config.default_namespace,
    )
    fallback = config.default_namespace
    read = _reading_in(fallback, notification, config, policies)
    body = build_rescue(notification, config, fallback, read)
    return _create_or_merge(rescues, fallback, body, notification, config, read)


def _create_or_merge(
    rescues: kube.Rescues,
    namespace: str,
    body: kube.Body,
    notification: Notification,
    config: IntakeConfig,
    read: SeverityReading,
) -> Result:
    try:
        created = rescues.create(namespace, body)
    except kube.AlreadyExists:
        existing = rescues.get(namespace, body["metadata"]["name"])
        return _merge(rescues, namespace, existing, notification, config, read)
    meta = created["metadata"]
    logger.info(
        "Rescue %s/%s recorded for %s (%s%s).",
        meta["namespace"],
        meta["name"],
        body["spec"]["title"],
        body["spec"]["severity"],
        f", severity read as policy {read.policy} says" if read.policy else "",
    )
    return Result(Outcome.CREATED, meta["namespace"], meta["name"])


def _open_rescue_of_group(
    rescues: kube.Rescues, namespace: str, group_key: str
) -> kube.Body | None:
    # Known cost: this look-up is a second API call for every new incident, so the webhook
    # creates rescues at 51 to 76% of the API server's raw create rate (README, Benchmarks).
    # A watch-fed cache of the open rescues would save the call; it needs a freshness check
    # (the cache having seen every write up to the create's resourceVersion) before it may
    # answer "none", or two notifications of one incident could open two rescues.
    selector = f"{LABEL_GROUP}={group_hash(group_key)}"
    items = [
        item
        for item in rescues.list(namespace, label_selector=selector)
        if (item.get("status") or {}).get("phase") != "Completed"
        and (item.get("spec") or {}).get("groupKey") == group_key
    ]
    if not items:
        return None
    return max(items, key=lambda item: item["metadata"].get("creationTimestamp", ""))


def _targets(alerts: list[Any], config: IntakeConfig) -> int:
    """How many distinct workloads the incident's firing alerts name."""
    return len(
        {
            config.target_labels.target_of(a.get("labels") or {}).ref
            for a in alerts
            if a.get("status") == "firing"
        }
        - {"-"}
    )


def _one_worse(severity: Severity) -> Severity:
    order = list(Severity)
    return order[max(order.index(severity) - 1, 0)]


def _merge(
    rescues: kube.Rescues,
    namespace: str,
    current: kube.Body,
    notification: Notification,
    config: IntakeConfig,
    read: SeverityReading,
) -> Result:
    """Merge the notification's alerts into a rescue, retrying on a concurrent write."""
    name = current["metadata"]["name"]
    incoming = [a.to_record() for a in notification.alerts]
    for _attempt in range(MERGE_ATTEMPTS):
        spec = current.setdefault("spec", {})
        known = {(a.get("fingerprint"), a.get("startsAt")) for a in spec.get("alerts") or []}
        merged, dropped = merge_alerts(spec.get("alerts") or [], incoming)
        severity = Severity(spec.get("severity", DEFAULT_SEVERITY.value))
        # An alert that joins or fires again may raise the severity; a repeat of what was
        # already known never overrides what triage (or a person) decided since.
        fresh = [
            a
            for a in notification.alerts
            if a.status == "firing" and (a.identity, format_time(a.startsAt)) not in known
        ]
        if fresh:
            severity = worst([severity] + [read.of(a.labels) for a in fresh])
        # Blast radius: when the incident spreads to more workloads, triage raises it a level.
        note = None
        spread = _targets(merged, config)
        if (
            config.blast_radius
            and spread >= config.blast_radius > _targets(spec.get("alerts") or [], config)
            and severity is not Severity.SEV1
        ):
            severity = _one_worse(severity)
            note = {
                "severity": severity.value,
                "reason": f"blast radius: {spread} workloads are affected",
                "by": "rescue-webhook",
                "at": format_time(datetime.now(UTC)),
            }
        truncated = max(int(spec.get("truncatedAlerts", 0)), notification.truncatedAlerts + dropped)
        if (
            merged == spec.get("alerts")
            and severity.value == spec.get("severity")
            and truncated == int(spec.get("truncatedAlerts", 0))
        ):
            return Result(Outcome.UNCHANGED, namespace, name)
        generation = current["metadata"].get("generation", 1)
        ops = [
            {"op": "test", "path": "/metadata/generation", "value": generation},
            {"op": "add", "path": "/spec/alerts", "value": merged},
            {"op": "add", "path": "/spec/severity", "value": severity.value},
            {"op": "add", "path": "/spec/truncatedAlerts", "value": truncated},
        ]
        if note is not None:
            ops.append({"op": "add", "path": "/spec/triageNote", "value": note})
        try:
            rescues.json_patch(namespace, name, ops)
        except kube.KubeRejected as exc:
            # A failed test answers 422 like any invalid patch; the generation tells them apart.
            if exc.status != 422:
                raise
            current = rescues.get(namespace, name)
            if current["metadata"].get("generation", 1) == generation:
                raise
            continue
        logger.info(
            "Rescue %s/%s updated: %d alert(s), %d firing.",
            namespace,
            name,
            len(merged),
            sum(1 for a in merged if a["status"] == "firing"),
        )
        return Result(Outcome.UPDATED, namespace, name)
    raise kube.KubeUnavailable(
        f"rescue {namespace}/{name} kept changing under {MERGE_ATTEMPTS} attempts to update it"
    )
