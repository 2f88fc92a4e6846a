"""Aids for the person diagnosing: PROCESS.md's investigation checklist, answered where the
operator can answer it.

- What changed recently? The commits to the target's folder in the GitOps repository in the
  look-back window before the incident, with author and subject.
- Where to look? The alerts' own links: runbook, dashboard, and the query that fired.
- Is this a known issue? Earlier rescues of the same target or the same alert, by name.

They are gathered once, when the rescue reaches Diagnose, and kept in ``status.diagnosisAids``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from rescue.core import git
from rescue.core.incident import format_time
from rescue.core.policy import Policy, PolicyError
from rescue.operator import commits
from rescue.operator.outcome import Environment, RescueView

MAX_CHANGES = 10
MAX_RELATED = 10
#: Annotation names that carry links, as Prometheus rules conventionally name them.
LINK_ANNOTATIONS = ("runbook_url", "runbook", "dashboard_url", "dashboard", "grafana_url")


def links(alerts: Iterable[Mapping[str, Any]], external_url: str = "") -> dict[str, str]:
    """The distinct links the incident's alerts carry, by kind."""
    found: dict[str, str] = {}
    for alert in alerts:
        annotations = alert.get("annotations") or {}
        for key in LINK_ANNOTATIONS:
            value = str(annotations.get(key) or "")
            kind = "runbook" if key.startswith("runbook") else "dashboard"
            if value.startswith(("http://", "https://")) and kind not in found:
                found[kind] = value[:2048]
        generator = str(alert.get("generatorURL") or "")
        if generator.startswith(("http://", "https://")) and "query" not in found:
            found["query"] = generator[:2048]
    if external_url.startswith(("http://", "https://")):
        found.setdefault("alertmanager", external_url[:2048])
    return found


def recent_changes(
    history: Sequence[git.Commit], *, incident_start: datetime, lookback: timedelta
) -> list[dict[str, str]]:
    """Commits to the target's folder before the incident, newest first (Rescue's own too)."""
    earliest = incident_start - lookback
    return [
        {
            "commit": c.sha[:12],
            "at": format_time(c.committed),
            "author": commits.one_line(c.author, 120),
            "subject": commits.one_line(c.subject, 200),
        }
        for c in history
        if earliest <= c.committed <= incident_start
    ][:MAX_CHANGES]


def summary(aids: Mapping[str, Any]) -> str:
    """One sentence for the timeline: what the aids found."""
    parts = []
    changes = aids.get("recentChanges") or []
    if changes:
        latest = changes[0]
        parts.append(
            f"{len(changes)} recent change(s) to the target, latest {latest['commit']} by "
            f"{latest['author']}: {latest['subject']}"
        )
    elif aids.get("path"):
        parts.append(f"no change to {aids['path']} before the incident")
    related = aids.get("related") or []
    if related:
        parts.append(f"seen before in {', '.join(related[:3])}")
    else:
        parts.append("no earlier rescue of this target or alert")
    if aids.get("links"):
        parts.append("links: " + ", ".join(sorted(aids["links"])))
    return "Diagnosis aids: " + "; ".join(parts) + "."


def gather(
    rescue: RescueView,
    policy: Policy | None,
    env: Environment,
    *,
    alerts: Sequence[Mapping[str, Any]],
    external_url: str,
    related: Sequence[str],
) -> dict[str, Any]:
    """Everything above for one rescue; git errors leave the recent changes out, not the rest."""
    aids: dict[str, Any] = {
        "links": links(alerts, external_url),
        "related": list(related)[:MAX_RELATED],
    }
    if policy is None or policy.spec.repository is None or not rescue.target.name:
        return aids
    try:
        path = policy.spec.repository.path_for(rescue.target)
        repo = env.repository(policy)
        with repo.locked():
            repo.fetch()
            history = repo.log(path=path, limit=200)
    except (git.GitError, PolicyError) as exc:
        # An aid must never stop the rescue: say what could not be looked up, keep the rest.
        aids["recentChangesError"] = str(exc)[:500]
        return aids
    aids["path"] = path
    aids["recentChanges"] = recent_changes(
        history,
        incident_start=rescue.incident_start,
        lookback=timedelta(seconds=policy.spec.mitigation.lookbackSeconds),
    )
    return aids
