"""The lifecycle as a pure function: from a Rescue's spec and status to what must change.

A reconcile reads what people asked for (``spec.paused``, ``spec.conclusion``, the severity)
and what has happened (``status``), and returns the new status and the Events to post. It never
repeats itself: every decision is taken against the recorded status, so running it again on its
own result decides nothing, which is what makes a restarted or replayed handler harmless.

Only the four transitions of the lifecycle contract exist. A request the current phase cannot
honour is refused with the condition ``TransitionRefused``, whose message says why and what to
do instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rescue.core.incident import format_time, parse_time
from rescue.core.model import (
    MAX_TIMELINE,
    TRANSITIONS,
    LifecycleEvent,
    Phase,
    Severity,
    Step,
    Target,
)
from rescue.core.review import basis as review_basis
from rescue.core.review import required as review_required

REFUSED = "TransitionRefused"


@dataclass(frozen=True)
class Emitted:
    """A Kubernetes Event to post: its reason is the timeline event's name."""

    reason: str
    message: str
    type: str = "Normal"


@dataclass
class Decision:
    """The status after a reconcile, and what happened on the way there."""

    status: dict[str, Any]
    events: list[Emitted] = field(default_factory=list)
    #: Seconds after which the rescue should be looked at again (a stable period running).
    wait: float | None = None

    @property
    def changed(self) -> bool:
        return bool(self.events)


class _Recorder:
    """Applies changes to a copy of the status and remembers them as timeline and Events."""

    def __init__(self, status: Mapping[str, Any], now: datetime) -> None:
        self.status: dict[str, Any] = copy.deepcopy(dict(status))
        self.moment = now
        self.now = format_time(now)
        self.events: list[Emitted] = []

    def record(self, event: str, message: str, *, by: str = "", warning: bool = False) -> None:
        entry: dict[str, Any] = {"at": self.now, "event": event, "message": message}
        if by:
            entry["by"] = by
        timeline = list(self.status.get("timeline") or [])
        timeline.append(entry)
        if len(timeline) > MAX_TIMELINE:
            timeline, folded = bound_timeline(timeline, self.status.get("timelineSummary"))
            self.status["timelineSummary"] = folded
        self.status["timeline"] = timeline
        self.events.append(Emitted(event, message, "Warning" if warning else "Normal"))

    def transition(self, event: LifecycleEvent, message: str, *, by: str = "") -> None:
        phase = Phase(self.status["phase"])
        target = TRANSITIONS[(phase, event)]
        self.status["phase"] = target.value
        self.record(event.value, message, by=by)

    def step(self, step: Step, message: str) -> None:
        self.status["step"] = step.value
        self.record(f"step_{step.value.lower()}", message)

    def set_condition(self, kind: str, *, active: bool, reason: str, message: str) -> None:
        conditions = [dict(c) for c in self.status.get("conditions") or []]
        wanted = "True" if active else "False"
        for condition in conditions:
            if condition.get("type") == kind:
                if condition.get("status") != wanted:
                    condition["lastTransitionTime"] = self.now
                condition.update(status=wanted, reason=reason, message=message)
                break
        else:
            conditions.append(
                {
                    "type": kind,
                    "status": wanted,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": self.now,
                }
            )
        self.status["conditions"] = conditions


def record_mitigation(
    decision: Decision,
    *,
    now: datetime,
    mitigation: Mapping[str, Any],
    entries: list[tuple[str, str, bool]],
    conditions: list[tuple[str, bool, str, str]],
    done: bool,
) -> Decision:
    """Fold the Mitigate step's progress into a decision; ``done`` hands over to Diagnose."""
    rec = _Recorder(decision.status, now)
    rec.events = list(decision.events)
    rec.status["mitigation"] = dict(mitigation)
    for event, message, warning in entries:
        rec.record(event, message, warning=warning)
    for kind, active, reason, message in conditions:
        rec.set_condition(kind, active=active, reason=reason, message=message)
    if done and rec.status.get("step") == Step.MITIGATE.value:
        rec.step(
            Step.DIAGNOSE, "Diagnosis started: find the root cause now that mitigation is done."
        )
    return Decision(status=rec.status, events=rec.events, wait=decision.wait)


def note(
    decision: Decision,
    *,
    now: datetime,
    key: str,
    value: Any,
    event: str,
    message: str,
    warning: bool = False,
) -> Decision:
    """Keep ``value`` at ``status.<key>`` and say so once, on the timeline and as an Event.

    What the handler learns outside the pure reconcile (diagnosis aids, a committed review, an
    escalation the operator decides) goes through here, so it is recorded the same way.
    """
    rec = _Recorder(decision.status, now)
    rec.events = list(decision.events)
    rec.status[key] = dict(value) if isinstance(value, Mapping) else value
    rec.record(event, message, warning=warning)
    return Decision(status=rec.status, events=rec.events, wait=decision.wait)


#: Entries that repeat during a long incident and that a review needs only as counts.
ROUTINE = frozenset({"alerts_firing", "mitigation_retrying", "transition_refused"})
SUMMARY = "timeline_summarised"


def bound_timeline(
    timeline: list[dict[str, Any]], summary: Mapping[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fold the oldest routine entries into one summary entry until the timeline fits.

    Lifecycle events, steps, mitigation decisions, root cause and fix are kept: they are what a
    review is written from. Only when nothing routine is left are the oldest other entries
    (never the first) folded too. The counts live in ``status.timelineSummary``.
    """
    folded = dict(summary or {"count": 0, "events": {}})
    events: dict[str, int] = dict(folded.get("events") or {})
    kept = [e for e in timeline if e.get("event") != SUMMARY]
    excess = len(kept) + 1 - MAX_TIMELINE  # +1 for the summary entry itself
    order = [i for i, e in enumerate(kept) if i and e.get("event") in ROUTINE]
    order += [i for i, e in enumerate(kept) if i and e.get("event") not in ROUTINE]
    dropped = set(order[: max(excess, 0)])
    for index in sorted(dropped):
        entry = kept[index]
        events[entry["event"]] = events.get(entry["event"], 0) + 1
        folded.setdefault("from", entry["at"])
        folded["to"] = entry["at"]
    folded["count"] = int(folded.get("count", 0)) + len(dropped)
    folded["events"] = events
    counts = ", ".join(f"{name} x{n}" for name, n in sorted(events.items()))
    entry = {
        "at": folded.get("to", kept[0]["at"]),
        "event": SUMMARY,
        "message": (
            f"{folded['count']} earlier entries from {folded.get('from')} to {folded.get('to')} "
            f"are summarised here: {counts}."
        ),
    }
    rest = [e for i, e in enumerate(kept) if i not in dropped]
    return [rest[0], entry, *rest[1:]], folded


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def reconcile(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    now: datetime,
    policy_opens: bool = False,
    stable_seconds: int = 300,
    reviews_stored: bool = False,
) -> Decision:
    """Decide the next status of a Rescue; pure, and a fixed point on its own output."""
    rec = _Recorder(status, now)
    severity = Severity(spec["severity"])
    target = Target.model_validate(spec.get("target") or {})

    if not rec.status.get("phase"):
        rec.status.update(phase=Phase.PENDING.value, step=Step.DETECT.value)
        rec.status["detectedAt"] = rec.now
        rec.record(
            "rescue_detected",
            f"{severity} incident detected{_on(target)}: {_summary(spec)}.",
        )
    rec.status["target"] = target.ref
    _observe_alerts(rec, spec)

    phase = Phase(rec.status["phase"])
    if phase is Phase.PENDING and (severity.opens_at_once or policy_opens):
        why = "always opened" if severity.opens_at_once else "opened by policy"
        rec.transition(LifecycleEvent.OPENED, f"Rescue opened: {severity} is {why}.")
        rec.status["openedAt"] = rec.now
        rec.step(Step.TRIAGE, f"Triage started at severity {severity}{_on(target)}.")
        rec.status["triagedAt"] = rec.now
        rec.status["severity"] = severity.value

    _follow_requests(rec, spec, reviews_stored=reviews_stored)
    # Mitigate before diagnosing: triage hands over as soon as the severity is known.
    if Phase(rec.status["phase"]) is Phase.ACTIVE and rec.status.get("step") == Step.TRIAGE.value:
        rec.step(Step.MITIGATE, f"Mitigation started for {severity}; diagnosis comes after.")
    _retriage(rec, severity, spec)
    _findings(rec, spec)
    decided = Decision(status=rec.status, events=rec.events)
    return walk(decided, spec, now=now, stable_seconds=stable_seconds)


#: Mitigation states that still need the operator: the step cannot be left behind them.
PENDING_MITIGATION = frozenset({"Held", "Proposed", "PullRequestOpen", "Committed"})


def walk(
    decision: Decision, spec: Mapping[str, Any], *, now: datetime, stable_seconds: int = 300
) -> Decision:
    """Take the steps after Mitigate that the record allows, in order, never skipping one.

    Diagnose ends when the root cause is recorded. Resolve ends when the resolution is
    verified, not assumed: every alert resolved and staying resolved for ``stable_seconds``, no
    mitigation still under way, and a permanent fix recorded or the incident escalated.
    """
    rec = _Recorder(decision.status, now)
    rec.events = list(decision.events)
    wait = _recovery(rec, now, stable_seconds)
    if rec.status.get("phase") != Phase.ACTIVE.value:
        return Decision(status=rec.status, events=rec.events, wait=wait)

    if rec.status.get("step") == Step.DIAGNOSE.value and (spec.get("diagnosis") or {}).get(
        "rootCause"
    ):
        category = spec["diagnosis"].get("category", "unclassified")
        rec.step(Step.RESOLVE, f"Resolution started: the root cause ({category}) is known.")

    if rec.status.get("step") == Step.RESOLVE.value:
        mitigation = rec.status.get("mitigation") or {}
        fixed = bool((spec.get("resolution") or {}).get("fix"))
        escalated = bool(mitigation.get("escalatedTo"))
        resolved_at = rec.status.get("resolvedAt")
        quiet = rec.status.get("alertsFiring") == 0 and resolved_at
        if quiet and mitigation.get("state") not in PENDING_MITIGATION and (fixed or escalated):
            stable_for = (now - parse_time(str(resolved_at))).total_seconds()
            if stable_for >= stable_seconds:
                rec.status["restoredAt"] = rec.now
                why = "the permanent fix is recorded" if fixed else "the incident was escalated"
                rec.step(
                    Step.REVIEW,
                    f"Review started: every alert has stayed resolved for {_duration(stable_for)} "
                    f"and {why}.",
                )
            else:
                wait = stable_seconds - stable_for
    return Decision(status=rec.status, events=rec.events, wait=wait)


def _recovery(rec: _Recorder, now: datetime, stable_seconds: int) -> float | None:
    """Record once when service came back: the moment every alert resolved, as soon as they
    have stayed resolved for ``stable_seconds`` with no mitigation still under way. The time
    from the incident's start to that moment is the MTTR. Returns how long to wait otherwise.
    """
    if rec.status.get("recoveredAt") or rec.status.get("phase") not in (
        Phase.ACTIVE.value,
        Phase.PAUSED.value,
    ):
        return None
    resolved_at = rec.status.get("resolvedAt")
    if rec.status.get("alertsFiring") != 0 or not resolved_at:
        return None
    if (rec.status.get("mitigation") or {}).get("state") in PENDING_MITIGATION:
        return None
    stable_for = (now - parse_time(str(resolved_at))).total_seconds()
    if stable_for < stable_seconds:
        return stable_seconds - stable_for
    rec.status["recoveredAt"] = str(resolved_at)
    rec.record(
        "service_recovered",
        f"Service recovered at {resolved_at}: every alert has stayed resolved for "
        f"{_duration(stable_for)}.",
    )
    return None


def _follow_requests(
    rec: _Recorder, spec: Mapping[str, Any], *, reviews_stored: bool = False
) -> None:
    """Honour spec.paused and spec.conclusion where the lifecycle allows; refuse otherwise."""
    paused = bool(spec.get("paused", False))
    conclusion = spec.get("conclusion") or None
    refusal: tuple[str, str] | None = None

    # Resume first: a shelved rescue asked both to resume and to conclude does both, in order.
    if not paused and Phase(rec.status["phase"]) is Phase.PAUSED:
        shelved = rec.status.pop("shelvedAt", None)
        away = (rec.moment - parse_time(shelved)).total_seconds() if shelved else 0.0
        # Time shelved does not count against the automation's windows (verification).
        rec.status["pausedSeconds"] = int(rec.status.get("pausedSeconds", 0) + max(away, 0))
        rec.transition(
            LifecycleEvent.RESUMED,
            f"Rescue resumed after {_duration(away)} shelved.",
            by=str(spec.get("pausedBy", "")),
        )

    phase = Phase(rec.status["phase"])
    missing = (
        exit_checklist(spec, rec.status, reviews_stored=reviews_stored)
        if conclusion and phase is Phase.ACTIVE
        else []
    )
    if conclusion and phase is Phase.ACTIVE and missing:
        refusal = (
            "ConcludeChecklist",
            "The exit checklist is not complete; missing: " + "; ".join(missing) + ".",
        )
    elif conclusion and phase is Phase.ACTIVE:
        summary = str(conclusion.get("summary") or "").rstrip(".")
        rec.transition(
            LifecycleEvent.CONCLUDED,
            f"Rescue concluded: {summary}." if summary else "Rescue concluded.",
            by=str(conclusion.get("requestedBy", "")),
        )
        rec.status["concludedAt"] = rec.now
        _route(rec, spec, conclusion)
    elif conclusion and phase is Phase.PAUSED:
        refusal = (
            "ConcludeWhileShelved",
            "The rescue is shelved; resume it (spec.paused: false) before concluding.",
        )
    elif conclusion and phase is Phase.PENDING:
        refusal = (
            "ConcludeWhilePending",
            "The rescue was never opened, so it cannot be concluded; raise its severity "
            "or let a policy open it first.",
        )
    elif paused and phase is Phase.ACTIVE:
        reason = str(spec.get("pauseReason") or "no reason given").rstrip(".")
        rec.transition(
            LifecycleEvent.SHELVED, f"Rescue shelved: {reason}.", by=str(spec.get("pausedBy", ""))
        )
        rec.status["shelvedAt"] = rec.now
    elif paused and phase is Phase.PENDING:
        refusal = (
            "ShelveWhilePending",
            "Only an Active rescue can be shelved, and this one is still Pending; "
            "set spec.paused back to false or open the rescue first.",
        )

    if paused and Phase(rec.status["phase"]) is Phase.COMPLETED:
        refusal = (
            "ShelveWhileCompleted",
            "The rescue is concluded; a Completed rescue cannot be shelved or resumed.",
        )
    _set_refusal(rec, refusal)


def _route(rec: _Recorder, spec: Mapping[str, Any], conclusion: Mapping[str, Any]) -> None:
    """Conclusion sends the findings back around the wheel: an entry and an Event of their own."""
    route = str(conclusion.get("route") or "none")
    items = list(conclusion.get("actionItems") or []) + list(
        (spec.get("review") or {}).get("actionItems") or []
    )
    rec.status["routedTo"] = route
    if route == "none":
        rec.record("findings_routed", f"No findings to route; {len(items)} action item(s) listed.")
        return
    rec.record(
        "findings_routed",
        f"Findings routed to {route} with {len(items)} action item(s): "
        + "; ".join(str(i) for i in items[:5])
        + ("" if len(items) <= 5 else f"; and {len(items) - 5} more")
        + ".",
        by=str(conclusion.get("requestedBy", "")),
    )


def exit_checklist(
    spec: Mapping[str, Any], status: Mapping[str, Any], *, reviews_stored: bool = False
) -> list[str]:
    """What PROCESS.md's exit checklist still misses, each with how to supply it.

    ``reviews_stored``: the rescue's policy keeps reviews in its GitOps repository, so a review
    that is required must be there, as it now reads, before the rescue concludes.
    """
    conclusion = spec.get("conclusion") or {}
    review = spec.get("review") or {}
    mitigation = status.get("mitigation") or {}
    route = conclusion.get("route")
    missing = []
    if not status.get("restoredAt"):
        missing.append(
            "service restored (the resolution is verified once every alert stays resolved "
            "in step Resolve)"
        )
    if not (spec.get("diagnosis") or {}).get("rootCause"):
        missing.append("root cause (rescue diagnose NAME --root-cause ... --category ...)")
    escalated = (
        mitigation.get("escalatedTo")
        or status.get("escalatedTo")
        or route in ("design", "planning", "refactoring")
    )
    if not (spec.get("resolution") or {}).get("fix") and not escalated:
        missing.append(
            "permanent fix or escalation (rescue resolve NAME --fix ..., or conclude --route ...)"
        )
    if Severity(spec["severity"]) in (Severity.SEV1, Severity.SEV2) and not review.get("lessons"):
        missing.append("post-incident review (rescue review NAME --lessons ...)")
    committed = status.get("review")
    required = review_required(Severity(spec["severity"])) != "none"
    if (committed or (reviews_stored and required)) and (committed or {}).get(
        "trigger"
    ) != review_basis(spec):
        missing.append(
            "the post-incident review stored in the GitOps repository as it now reads (the "
            "operator commits it, or updates its pull request, within a minute of a change; "
            "the GitReachable condition and the log say what stops it)"
        )
    if not (conclusion.get("actionItems") or review.get("actionItems")):
        missing.append("action items (conclude --action-item ...)")
    if not route:
        missing.append("findings routed (conclude --route design|planning|refactoring|none)")
    return missing


def _set_refusal(rec: _Recorder, refusal: tuple[str, str] | None) -> None:
    current = condition(rec.status, REFUSED)
    if refusal is None:
        if current is not None and current.get("status") == "True":
            rec.set_condition(REFUSED, active=False, reason="NoRefusal", message="")
        return
    reason, message = refusal
    if current and current.get("status") == "True" and current.get("reason") == reason:
        return
    rec.set_condition(REFUSED, active=True, reason=reason, message=message)
    rec.record("transition_refused", message, warning=True)


def _observe_alerts(rec: _Recorder, spec: Mapping[str, Any]) -> None:
    """Record, once per change, how many of the incident's alerts are firing."""
    alerts = list(spec.get("alerts") or [])
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    before = rec.status.get("alertsFiring")
    if before == firing:
        return
    rec.status["alertsFiring"] = firing
    if before is None:
        return
    if firing == 0:
        rec.status["resolvedAt"] = _resolved_at(alerts, rec.moment)
        rec.record(
            "alerts_resolved",
            f"All {len(alerts)} alert(s) of the incident have resolved; "
            "service looks restored, pending verification.",
        )
    elif firing > before:
        rec.status.pop("resolvedAt", None)
        rec.record("alerts_firing", f"{firing} of {len(alerts)} alert(s) firing (was {before}).")
    else:
        rec.record("alerts_firing", f"{firing} of {len(alerts)} alert(s) firing (was {before}).")


def _resolved_at(alerts: list[Mapping[str, Any]], now: datetime) -> str:
    """When the last alert ended, as Alertmanager reports it (``endsAt``), not when the
    notification arrived: Alertmanager sends resolutions only every ``group_interval``, and that
    delay is not part of the time to restore. A missing or implausible end (before the alert
    started, or in the future) falls back to now."""
    ends = []
    for alert in alerts:
        try:
            ended = parse_time(str(alert.get("endsAt") or ""))
            started = parse_time(str(alert.get("startsAt") or ""))
        except ValueError:
            return format_time(now)
        if not started <= ended <= now:
            return format_time(now)
        ends.append(ended)
    return format_time(max(ends)) if ends else format_time(now)


def _retriage(rec: _Recorder, severity: Severity, spec: Mapping[str, Any]) -> None:
    """Record a change of severity made after triage began, with its cause and the old value."""
    before = rec.status.get("severity")
    if before is None or before == severity.value:
        return
    rec.status["severity"] = severity.value
    note = spec.get("triageNote") or {}
    if note.get("severity") == severity.value:
        who = str(note.get("by") or "someone")
        reason = str(note.get("reason") or "no reason given").rstrip(".")
        rec.record(
            "rescue_retriaged",
            f"Severity changed from {before} to {severity} by {who}: {reason}.",
            by=who,
        )
    else:
        rec.record(
            "rescue_retriaged",
            f"Severity changed from {before} to {severity}: an alert joined the incident or "
            "fired again.",
        )


def _findings(rec: _Recorder, spec: Mapping[str, Any]) -> None:
    """Record, once each, the root cause and the permanent fix people write on the rescue."""
    diagnosis = spec.get("diagnosis")
    if diagnosis and rec.status.get("diagnosis") != diagnosis:
        rec.status["diagnosis"] = dict(diagnosis)
        who = str(diagnosis.get("by") or "")
        rec.record(
            "root_cause_recorded",
            f"Root cause ({diagnosis.get('category', 'unclassified')}): "
            f"{str(diagnosis.get('rootCause', '')).rstrip('.')}.",
            by=who,
        )
    resolution = spec.get("resolution")
    if resolution and rec.status.get("resolution") != resolution:
        rec.status["resolution"] = dict(resolution)
        commit = f" (commit {str(resolution['commit'])[:12]})" if resolution.get("commit") else ""
        rec.record(
            "fix_recorded",
            f"Permanent fix: {str(resolution.get('fix', '')).rstrip('.')}{commit}.",
            by=str(resolution.get("by") or ""),
        )


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


def _on(target: Target) -> str:
    return f" on {target.kind} {target.ref}" if target.name else ""


def _summary(spec: Mapping[str, Any]) -> str:
    names = sorted({str(a.get("alertname", "")) for a in spec.get("alerts") or []} - {""})
    if not names:
        return str(spec.get("title") or "no alert attached")
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
