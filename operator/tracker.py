"""Routed findings as an issue in the tracker, so the process they go to sees them as work.

Conclusion records where the findings go (``status.routedTo``); a policy with
``tracker.issues`` also opens an issue for them in its repository's forge, written from the
rescue's record: the summary, the root cause, the fix, the action items and where the review
is. The issue's body ends with a hidden marker line naming the rescue, by which the forge
client finds the issue again instead of opening a second one after a crash or on a second
replica. Opening it never holds the conclusion back: a forge that cannot be reached is tried
again later, and the rescue stays Completed meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rescue.core import forge
from rescue.core.policy import Policy, PolicyError
from rescue.operator.outcome import Environment

#: Where findings may be routed to that make an issue (``none`` does not).
ROUTES = frozenset({"design", "planning", "refactoring"})
TITLE_LIMIT = 200
TEXT_LIMIT = 2000


@dataclass(frozen=True)
class FindingsIssue:
    title: str
    body: str
    marker: str


def marker_for(namespace: str, name: str) -> str:
    return f"<!-- rescue: {namespace}/{name} -->"


def wanted(status: Mapping[str, Any], policy: Policy | None) -> bool:
    """Whether this concluded rescue still needs its findings issue."""
    return (
        policy is not None
        and policy.spec.tracker.issues
        and status.get("phase") == "Completed"
        and status.get("routedTo") in ROUTES
        and not status.get("routedIssue")
    )


def compose(
    namespace: str, name: str, spec: Mapping[str, Any], status: Mapping[str, Any], *, branch: str
) -> FindingsIssue:
    """The issue's title and body, written from the rescue's record."""
    route = str(status.get("routedTo"))
    conclusion = spec.get("conclusion") or {}
    diagnosis = spec.get("diagnosis") or {}
    resolution = spec.get("resolution") or {}
    target = str(status.get("target") or "-")
    about = _clip(str(spec.get("title") or ""), TITLE_LIMIT) or target
    title = _clip(f"Rescue findings for {route}: {about}", TITLE_LIMIT)

    root_cause = "_not recorded_"
    if diagnosis.get("rootCause"):
        category = diagnosis.get("category", "unclassified")
        root_cause = f"{_clip(str(diagnosis['rootCause']), TEXT_LIMIT)} (category: {category})"
    fix = "_none recorded; the findings are escalated here instead_"
    if resolution.get("fix"):
        fix = _clip(str(resolution["fix"]), TEXT_LIMIT)
        if resolution.get("commit"):
            fix += f" (commit `{str(resolution['commit'])[:12]}`)"
    items = [
        _clip(str(item), TEXT_LIMIT)
        for item in list(conclusion.get("actionItems") or [])
        + list((spec.get("review") or {}).get("actionItems") or [])
    ]
    who = f" by {conclusion['requestedBy']}" if conclusion.get("requestedBy") else ""
    lines = [
        f"Rescue `{namespace}/{name}` ({spec.get('severity', '-')} on `{target}`) was concluded"
        f"{who}, and its findings were routed to **{route}**.",
        "",
        f"**Summary:** {_clip(str(conclusion.get('summary') or ''), TEXT_LIMIT) or '_none given_'}",
        "",
        f"**Root cause:** {root_cause}",
        "",
        f"**Permanent fix:** {fix}",
        "",
        f"**Post-incident review:** {_where_review(status, branch)}",
        "",
        "### Action items",
        *([f"- [ ] {item}" for item in items] or ["- _none listed_"]),
        "",
        marker_for(namespace, name),
    ]
    return FindingsIssue(
        title=title, body="\n".join(lines) + "\n", marker=marker_for(namespace, name)
    )


def open_issue(policy: Policy, env: Environment, issue: FindingsIssue) -> forge.Issue:
    """Open the issue in the forge of the policy's repository, or find the one opened before.

    Raises ``forge.ForgeError`` (and, for the token, ``git.GitError``) for the caller's retry
    policy, and ``PolicyError`` when the policy names no repository.
    """
    if policy.spec.repository is None:
        raise PolicyError(f"policy {policy.ref} asks for tracker issues but names no repository")
    with env.forge(policy) as client:
        return client.open_issue(
            title=issue.title,
            body=issue.body,
            labels=list(policy.spec.tracker.labels),
            marker=issue.marker,
        )


def _where_review(status: Mapping[str, Any], branch: str) -> str:
    committed = status.get("review") or {}
    if not committed.get("path"):
        return "_none committed_"
    pull = committed.get("pullRequest") or {}
    if pull.get("url"):
        return f"`{committed['path']}` in pull request #{pull.get('number')} ({pull['url']})"
    commit = str(committed.get("commit") or "")[:12]
    return f"`{committed['path']}` on branch `{branch}`" + (
        f" (commit `{commit}`)" if commit else ""
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
