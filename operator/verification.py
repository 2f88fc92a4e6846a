"""Whether a pushed mitigation has worked: the GitOps controller has applied a revision that
contains the commit, and the incident's alerts have resolved, within the policy's window.
"""

from __future__ import annotations

from datetime import timedelta

from rescue.core import failpoints, git
from rescue.core.incident import format_time, parse_time
from rescue.core.policy import Policy
from rescue.operator.changes import own_commit
from rescue.operator.outcome import (
    UNVERIFIED,
    VERIFIED,
    Environment,
    Facts,
    RescueView,
    Result,
    not_applicable,
    record,
)


def await_merge(
    rescue: RescueView, policy: Policy | None, env: Environment, result: Result
) -> Result:
    """A pull request's commit counts once the branch contains it (found by its trailer)."""
    if policy is None or policy.spec.repository is None:
        return not_applicable(result, "the policy that opened this pull request is gone")
    repo = env.repository(policy)
    with repo.locked():
        repo.fetch()
        found = own_commit(repo, rescue)
    if found is None:
        result.retry_after = 30.0
        return result
    result.say(
        "mitigation_committed",
        f"Pull request merged: {found.short} is on {repo.branch}; waiting for the GitOps "
        "controller to apply it and the alert to resolve.",
    )
    return record(result, found)


def verify(
    rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment, result: Result
) -> Result:
    failpoints.reached("verifying")
    state = result.mitigation
    commit = str(state.get("commit", ""))
    awaiting = []
    if policy is not None and policy.spec.repository is not None:
        repo = env.repository(policy)
        applied = env.applied(repo, str(state.get("path", "")))
        if applied is not None:
            state["controller"] = applied.controller
            revision = (applied.revision or "").rsplit(":", 1)[-1].rsplit("@", 1)[-1]
            if not revision or not contains(repo, revision, commit):
                awaiting.append(f"{applied.controller} to apply {commit[:12]}")
            else:
                state["appliedRevision"] = revision
                # The end of "time to mitigate": the first time the controller is seen with it.
                state.setdefault("appliedAt", format_time(facts.now))
    if rescue.firing > 0:
        awaiting.append(f"the alert to resolve ({rescue.firing} firing)")
    if not awaiting:
        state.update(state=VERIFIED, verifiedAt=format_time(facts.now))
        # No GitOps controller to ask when it applied the commit: the push is the last moment
        # we know of (the alert resolving later only confirms it).
        state.setdefault("appliedAt", state.get("pushedAt") or state["verifiedAt"])
        state.pop("awaiting", None)
        result.conditions.append(
            ("MitigationVerified", True, "Verified", "Applied and the alert resolved.")
        )
        result.say(
            "mitigation_verified",
            f"Mitigation {commit[:12]} is applied and the alert has resolved; service is restored.",
        )
        result.done = True
        return result
    window = policy.spec.gates.verifyWithinSeconds if policy else 600
    pushed = parse_time(str(state.get("pushedAt") or format_time(facts.now)))
    # Only time the rescue was active counts: a shelved rescue's window does not run out.
    shelved = rescue.paused_seconds - int(state.setdefault("pausedAtPush", rescue.paused_seconds))
    if facts.now - pushed - timedelta(seconds=shelved) > timedelta(seconds=window):
        state.update(state=UNVERIFIED, reason="; ".join(awaiting))
        result.conditions.append(
            ("MitigationVerified", False, "NotVerified", "Still awaiting " + "; ".join(awaiting))
        )
        result.say(
            "mitigation_unverified",
            f"Mitigation {commit[:12]} did not clear the incident within {window} s "
            f"(still awaiting {'; '.join(awaiting)}); it was probably not a deploy regression.",
            warning=True,
        )
        state["escalatedTo"] = "design"
        result.say(
            "rescue_escalated",
            f"Escalated to design: a mitigation of {rescue.target.ref} did not clear the alert. "
            "Automatic mitigation of this target stops until this rescue is concluded.",
            warning=True,
        )
        result.done = True
        return result
    if state.get("awaiting") != awaiting:
        state["awaiting"] = awaiting
        result.conditions.append(
            ("MitigationVerified", False, "Awaiting", "Awaiting " + "; ".join(awaiting))
        )
    result.retry_after = 5.0
    return result


def contains(repo: git.Repository, revision: str, commit: str) -> bool:
    if revision.startswith(commit) or commit.startswith(revision):
        return True
    with repo.locked():
        return repo.is_ancestor(commit, revision)
