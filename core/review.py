"""The post-incident review, written from the rescue's own record in PROCESS.md's template.

Everything the operator and the people on the incident recorded (severity, the timeline, the
suspect and the mitigation commit, the root cause, the permanent fix, the action items) lands in
its section, so what is left for people is what only they know: the impact in their words and
the lessons learned. SEV1 and SEV2 get the full post-mortem, SEV3 a brief write-up, and SEV4 none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from rescue.core.incident import parse_time
from rescue.core.model import Severity

Kind = Literal["post-mortem", "brief", "none"]


def required(severity: Severity) -> Kind:
    """What PROCESS.md asks for: a blameless post-mortem for SEV1/2, a brief write-up for SEV3."""
    if severity in (Severity.SEV1, Severity.SEV2):
        return "post-mortem"
    return "brief" if severity is Severity.SEV3 else "none"


def basis(spec: Mapping[str, Any]) -> str:
    """A digest of what people record for the review: it changes when the review must too."""
    fields = {k: spec.get(k) for k in ("severity", "diagnosis", "resolution", "review")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def path_for(namespace: str, name: str, *, directory: str = "postmortems") -> str:
    """Where the review lives in the GitOps repository (``directory`` is the policy's)."""
    return f"{directory.strip('/')}/{namespace}/{name}.md"


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _clock(stamp: str, *, with_date: bool) -> str:
    moment = parse_time(stamp)
    return moment.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def _impact(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    alerts = list(spec.get("alerts") or [])
    names = sorted({str(a.get("alertname")) for a in alerts if a.get("alertname")})
    described = [
        str((a.get("annotations") or {}).get("description") or "")
        for a in alerts
        if (a.get("annotations") or {}).get("description")
    ]
    target = status.get("target") or "-"
    text = f"{len(alerts)} alert(s) ({', '.join(names) or 'unnamed'}) on {target}."
    if described:
        text += f" {described[0]}"
    return text + " _Who was affected, and how: to be completed by the incident's owner._"


def _mitigation(status: Mapping[str, Any]) -> str:
    m = status.get("mitigation") or {}
    state = m.get("state")
    if not state:
        return "_No mitigation was recorded._"
    lines = []
    if m.get("commit"):
        lines.append(
            f"{str(m.get('strategy', 'mitigation')).capitalize()} committed as `{m['commit'][:12]}`"
            + (f" to `{m['path']}`" if m.get("path") else "")
            + "."
        )
    suspect = m.get("suspect") or {}
    if suspect.get("commit"):
        lines.append(
            f"Suspect change: `{suspect['commit'][:12]}` ({suspect.get('subject', '')}); "
            f"restored to `{str(m.get('lkg', ''))[:12]}`."
        )
    if m.get("pullRequest"):
        lines.append(f"Pull request: {m['pullRequest'].get('url')}.")
    if m.get("reason") and not m.get("commit"):
        lines.append(f"{state}: {m['reason']}.")
    else:
        lines.append(f"Outcome: {state}.")
    return " ".join(lines)


def _resolution(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    resolution = spec.get("resolution") or {}
    if not resolution.get("fix"):
        escalated = (status.get("mitigation") or {}).get("escalatedTo")
        if escalated:
            return f"_No permanent fix recorded; escalated to {escalated}._"
        return "_No permanent fix recorded yet (`rescue resolve NAME --fix ...`)._"
    commit = f" (commit `{resolution['commit']}`)" if resolution.get("commit") else ""
    return f"{resolution['fix']}{commit}"


def render(rescue: Mapping[str, Any], *, now: datetime) -> str:
    """The review as Markdown: the full template for SEV1/2, the brief one for SEV3."""
    meta, spec = rescue.get("metadata") or {}, rescue.get("spec") or {}
    status = rescue.get("status") or {}
    severity = Severity(spec.get("severity", "SEV3"))
    start = str(spec.get("incidentStart") or status.get("detectedAt") or "")
    end = str(status.get("resolvedAt") or "")
    started = parse_time(start) if start else now
    ended = parse_time(end) if end else None
    span = _duration(((ended or now) - started).total_seconds())
    duration = (
        f"{start} to {end} ({span})" if ended else f"{start} to now, still open ({span} so far)"
    )
    timeline = list(status.get("timeline") or [])
    with_date = len({str(e.get("at", ""))[:10] for e in timeline}) > 1
    diagnosis = spec.get("diagnosis") or {}
    root_cause = (
        f"{diagnosis['rootCause']} (category: {diagnosis.get('category', 'unclassified')})"
        if diagnosis.get("rootCause")
        else "_Not identified yet (`rescue diagnose NAME --root-cause ...`)._"
    )
    review = spec.get("review") or {}
    lessons = str(review.get("lessons") or "").strip()
    items = list((spec.get("conclusion") or {}).get("actionItems") or []) + list(
        review.get("actionItems") or []
    )

    out = [
        f"## Incident: {spec.get('title') or meta.get('name', 'untitled')}",
        "",
        f"**Rescue:** {meta.get('namespace', '')}/{meta.get('name', '')}",
        f"**Severity:** {severity.value}",
        f"**Duration:** {duration}",
        f"**Impact:** {_impact(spec, status)}",
        "",
    ]
    if required(severity) == "post-mortem":
        out += ["### Timeline"]
        out += [
            f"- {_clock(str(e['at']), with_date=with_date)} -- {e.get('message', e['event'])}"
            for e in timeline
        ] or ["- (no entries)"]
        out.append("")
    out += ["### Root Cause", root_cause, ""]
    out += ["### Mitigation", _mitigation(status), ""]
    out += ["### Resolution", _resolution(spec, status), ""]
    if required(severity) == "post-mortem":
        out += ["### Lessons Learned"]
        out += (
            [lessons]
            if lessons
            else ["- What went well", "- What went poorly", "- Where we got lucky"]
        )
        out.append("")
    out += ["### Action Items"]
    out += [f"- [ ] {item}" for item in items] or ["- [ ] _none listed yet_"]
    return "\n".join(out) + "\n"
