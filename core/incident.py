"""What makes one incident one Rescue: its name, its labels, and how its alerts merge.

Alertmanager delivers at least once: the same notification arrives again on every repeat
interval, on retries, and from each member of an HA pair. Rather than remember what it has seen,
Rescue names the resource after the incident itself (the alert group and the moment the incident
started), so a second create of the same incident meets ``AlreadyExists`` in the API server and
becomes an update. This module holds those pure rules; the webhook applies them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from rescue.core.model import LABEL_GROUP, LABEL_SEVERITY, MAX_ALERTS, MAX_TEXT

#: Go's zero time, which Alertmanager sends as ``endsAt`` of a firing alert with no known end.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


class AlertRecord(TypedDict):
    """One alert as a Rescue keeps it in ``spec.alerts`` (the CRD schema declares the same)."""

    fingerprint: str
    alertname: str
    status: str
    startsAt: str
    endsAt: NotRequired[str]
    labels: dict[str, str]
    annotations: dict[str, str]
    generatorURL: NotRequired[str]


def group_hash(group_key: str) -> str:
    """A label-safe digest of an Alertmanager group key (keys are long and full of quotes)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:20]


def rescue_name(*, alertname: str, group_key: str, started: datetime) -> str:
    """The deterministic name of the Rescue of one incident.

    Readable prefix from the alert name, then a digest of the group and the incident's start,
    so that the same incident always gets the same name and a later incident of the same group
    (after the first was concluded) gets a new one.
    """
    slug = _NOT_NAME_CHARS.sub("-", alertname.lower()).strip("-")[:40].strip("-") or "alert"
    stamp = format_time(started)
    digest = hashlib.sha256(f"{group_key}\n{stamp}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def rescue_labels(*, group_key: str, severity: str) -> dict[str, str]:
    return {LABEL_GROUP: group_hash(group_key), LABEL_SEVERITY: severity.lower()}


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, the form Kubernetes uses for timestamps."""
    moment = moment.astimezone(UTC)
    # %Y does not pad years below 1000 everywhere, and RFC 3339 wants four digits.
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def incident_start(alerts: Iterable[AlertRecord]) -> datetime:
    """When the incident began: the earliest start among its firing alerts (or all, if none)."""
    records = list(alerts)
    firing = [a for a in records if a["status"] == "firing"] or records
    return min(parse_time(a["startsAt"]) for a in firing)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Shorten text that would bloat the resource; say that it was shortened."""
    if len(text) <= limit:
        return text
    marker = "... (truncated)"
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


def clip_map(values: Mapping[str, str], limit: int = MAX_TEXT) -> dict[str, str]:
    return {clip(k, 256): clip(v, limit) for k, v in values.items()}


def merge_alerts(
    existing: Iterable[Mapping[str, Any]], incoming: Iterable[AlertRecord]
) -> tuple[list[AlertRecord], int]:
    """Merge a notification's alerts into those a Rescue already holds.

    Alerts are keyed by fingerprint; the incoming state wins, except that a notification that
    arrives late (a firing copy of an occurrence already known resolved, or older than it) never
    turns a resolved alert back into a firing one. The result is bounded to the most recently
    started alerts, an order that does not depend on status, so merging the same notification
    twice gives the same result; the number left out is returned so it can be recorded.
    """
    merged: dict[str, AlertRecord] = {}
    for alert in existing:
        record = _as_record(alert)
        merged[record["fingerprint"]] = record
    for record in incoming:
        current = merged.get(record["fingerprint"])
        if current is not None and _is_stale(current, record):
            continue
        merged[record["fingerprint"]] = record

    ordered = sorted(merged.values(), key=lambda a: (_negated(a["startsAt"]), a["fingerprint"]))
    kept = ordered[:MAX_ALERTS]
    kept.sort(key=lambda a: (a["startsAt"], a["fingerprint"]))
    return kept, len(ordered) - len(kept)


def _is_stale(current: AlertRecord, record: AlertRecord) -> bool:
    """A firing copy of an occurrence already known resolved (or of an older one) is stale."""
    return (
        current["status"] == "resolved"
        and record["status"] == "firing"
        and parse_time(record["startsAt"]) <= parse_time(current["startsAt"])
    )


def _negated(stamp: str) -> float:
    return -parse_time(stamp).timestamp()


def _as_record(alert: Mapping[str, Any]) -> AlertRecord:
    record: AlertRecord = {
        "fingerprint": str(alert.get("fingerprint", "")),
        "alertname": str(alert.get("alertname", "")),
        "status": str(alert.get("status", "firing")),
        "startsAt": str(alert.get("startsAt", "")),
        "labels": dict(alert.get("labels") or {}),
        "annotations": dict(alert.get("annotations") or {}),
    }
    if alert.get("endsAt"):
        record["endsAt"] = str(alert["endsAt"])
    if alert.get("generatorURL"):
        record["generatorURL"] = str(alert["generatorURL"])
    return record
