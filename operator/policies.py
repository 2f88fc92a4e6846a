"""Which RescuePolicy applies to a rescue, decided from the alert labels it carries.

The operator keeps every RescuePolicy in a kopf index (an in-memory map kept current by a
watch), so selecting one costs no API call. A policy selects the alerts whose labels match all
of its ``selector.matchLabels``; an empty selector selects every alert in its namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rescue.core.model import Severity


def selects(policy_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = (policy_spec.get("selector") or {}).get("matchLabels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def incident_labels(spec: Mapping[str, Any]) -> dict[str, str]:
    """The labels every alert of the incident shares (Alertmanager's ``commonLabels``)."""
    alerts = list(spec.get("alerts") or [])
    if not alerts:
        return {}
    common = dict(alerts[0].get("labels") or {})
    for alert in alerts[1:]:
        labels = alert.get("labels") or {}
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common


def opens(
    policies: Iterable[Mapping[str, Any]], *, severity: Severity, labels: Mapping[str, str]
) -> bool:
    """True when a selecting policy opens rescues of this (lower) severity by itself."""
    for policy in policies:
        if selects(policy, labels) and severity.value in (
            (policy.get("triage") or {}).get("open") or []
        ):
            return True
    return False
