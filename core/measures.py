"""What a rescue's record says about how the response went: the step durations and the countable
outcomes, computed from the resource alone.

The operator's metrics, ``rescue report`` and the dashboards all read these, so a number means
the same wherever it shows. Every duration is measured from the incident's start (the earliest
firing alert's ``startsAt``) to a moment the operator wrote into the status:

========  ===================================================================================
detect    ``openedAt``: the rescue opened (at once for SEV1/2, later when a policy opens it)
triage    ``triagedAt``: triage decided the severity and handed over to mitigation
mitigate  ``mitigation.appliedAt``: the GitOps controller applied the mitigation's commit
resolve   ``recoveredAt``: every alert resolved, and stayed resolved for the policy's stable
          period (the MTTR)
conclude  ``concludedAt``: the exit checklist passed and the rescue was concluded
========  ===================================================================================

A duration is absent until its moment is recorded; one that would be negative (clock skew
between Prometheus and the cluster) counts as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rescue.core.incident import parse_time

#: The step durations in lifecycle order, as named in ``rescue_time_to_<step>_seconds``.
STEPS = ("detect", "triage", "mitigate", "resolve", "conclude")

#: Histogram bucket edges: seconds to a day, with one hour (the usual bound for an "elite" time
#: to restore) as an edge.
BUCKETS = (
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    43200.0,
    86400.0,
)

#: How ``status.mitigation.state`` reads as an outcome once it is final. Proposals that were
#: never applied count as ``proposed_only`` when the rescue is concluded (see ``outcomes``).
MITIGATION_OUTCOMES = {
    "Verified": "applied",
    "Unverified": "ineffective",
    "Failed": "failed",
    "NoRegression": "not_a_regression",
    "Rejected": "proposed_only",
}
_PROPOSALS = frozenset({"Proposed", "PullRequestOpen", "Held"})

#: The label values known in advance, so that every series exists (at zero) from the start:
#: ``increase()`` cannot see the first observation of a series that appears with it.
STRATEGIES = ("rollback", "scale", "feature-disable")
OUTCOMES = ("applied", "ineffective", "failed", "not_a_regression", "proposed_only")
GATES = (
    "min_firing",
    "one_per_target",
    "budget",
    "cooldown",
    "max_per_day",
    "not_a_regression",
)
DESTINATIONS = ("design",)


def incident_start(spec: Mapping[str, Any], status: Mapping[str, Any]) -> datetime | None:
    """When the incident began: the webhook's ``incidentStart``, else the earliest alert."""
    stamp = spec.get("incidentStart")
    if not stamp:
        starts = [str(a["startsAt"]) for a in spec.get("alerts") or [] if a.get("startsAt")]
        stamp = min(starts, key=parse_time) if starts else status.get("detectedAt")
    return parse_time(str(stamp)) if stamp else None


def moments(status: Mapping[str, Any]) -> dict[str, str]:
    """The recorded moment that ends each step, for the steps that have one."""
    found = {
        "detect": status.get("openedAt"),
        "triage": status.get("triagedAt"),
        "mitigate": (status.get("mitigation") or {}).get("appliedAt"),
        "resolve": status.get("recoveredAt"),
        "conclude": status.get("concludedAt"),
    }
    return {step: str(at) for step, at in found.items() if at}


def durations(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, float]:
    """Seconds from the incident's start to the end of each step recorded so far."""
    start = incident_start(spec, status)
    if start is None:
        return {}
    return {
        step: max((parse_time(at) - start).total_seconds(), 0.0)
        for step, at in moments(status).items()
    }


def severity_of(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """The severity the response acted on (the status's), else the one asked for."""
    return str(status.get("severity") or spec.get("severity") or "unknown")


def outcomes(status: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every countable fact of the record, each under a key that names it exactly once.

    The values are the counter's label values: ``("SEV1",)`` for ``opened`` and ``concluded``,
    ``(strategy, outcome)`` for a mitigation, ``(gate,)`` for a gate that held, and
    ``(destination,)`` for an escalation. Keys never change meaning, so a key seen once is
    never counted again.
    """
    found: dict[str, tuple[str, ...]] = {}
    severity = str(status.get("severity") or "unknown")
    if status.get("openedAt"):
        found["opened"] = (severity,)
    if status.get("concludedAt"):
        found["concluded"] = (severity,)
    mitigation = status.get("mitigation") or {}
    state = str(mitigation.get("state") or "")
    strategy = str(mitigation.get("strategy") or "rollback")
    if state in MITIGATION_OUTCOMES:
        found["mitigation"] = (strategy, MITIGATION_OUTCOMES[state])
    elif state in _PROPOSALS and status.get("concludedAt"):
        found["mitigation"] = (strategy, "proposed_only")
    for gate in mitigation.get("gatesHeld") or []:
        found[f"gate:{gate}"] = (str(gate),)
    if mitigation.get("escalatedTo"):
        found["escalation:mitigation"] = (str(mitigation["escalatedTo"]),)
    if status.get("escalatedTo"):
        found["escalation:recurring"] = (str(status["escalatedTo"]),)
    return found


def is_open(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in ("Active", "Paused")


def open_for(status: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds since the rescue opened, while it is open."""
    if not is_open(status) or not status.get("openedAt"):
        return None
    return max((now - parse_time(str(status["openedAt"]))).total_seconds(), 0.0)
