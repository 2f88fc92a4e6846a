"""The Mitigate step: restore service by a forward commit to the GitOps repository.

``advance`` looks at where a rescue's mitigation stands (``status.mitigation``) and takes the
next step, and only that: choose a policy and check its gates, find or build the commit, push it
or propose it, then wait until the GitOps controller has applied it and the alert has resolved.
It is called again and again (on every change of the rescue, and after the delay it asks for),
so each step is safe to repeat: before building a commit it looks for one carrying this rescue's
``Rescue:`` trailer on the branch, which is how a commit pushed just before a crash is found and
recorded instead of being made twice.

It never touches the workload: the cluster only changes because Flux or Argo CD applies the
commit. It runs in a worker thread (``git`` is a blocking program).
"""

from __future__ import annotations

import logging

from rescue.core import failpoints, forge, git
from rescue.core.policy import Policy, PolicyError
from rescue.operator import changes, commits, manifests, verification
from rescue.operator.changes import release
from rescue.operator.outcome import (
    COMMITTED,
    FAILED,
    FINAL_STATES,
    OPEN_STATES,
    PROPOSED,
    PULL_REQUEST,
    REJECTED,
    UNVERIFIED,
    VERIFIED,
    Applied,
    Environment,
    Facts,
    RescueView,
    Result,
    hold,
    not_applicable,
    note_gate,
    record,
    retry,
)

__all__ = [
    "COMMITTED",
    "OPEN_STATES",
    "UNVERIFIED",
    "VERIFIED",
    "Applied",
    "Environment",
    "Facts",
    "RescueView",
    "Result",
    "advance",
    "release",
]

logger = logging.getLogger(__name__)


def advance(rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment) -> Result:
    state = dict(rescue.mitigation)
    result = Result(mitigation=state)
    current = state.get("state")
    if current in FINAL_STATES:
        result.done = True
        return result
    try:
        if current == COMMITTED:
            return verification.verify(rescue, policy, facts, env, result)
        if current == PROPOSED:
            return _decide(rescue, policy, facts, env, result)
        if current == PULL_REQUEST:
            return verification.await_merge(rescue, policy, env, result)
        return _start(rescue, policy, facts, env, result)
    except git.GitUnavailable as exc:
        return retry(result, "GitUnreachable", f"The GitOps repository cannot be reached: {exc}")
    except forge.ForgeUnavailable as exc:
        return retry(
            result, "ForgeUnreachable", f"The forge cannot be reached: {exc}", exc.retry_after
        )
    except forge.ForgeAuthError as exc:
        return retry(
            result,
            "ForgeAuthFailed",
            f"The forge refused the token; fix the policy's Secret: {exc}",
            delay=300.0,
        )
    except git.GitAuthError as exc:
        return retry(
            result,
            "GitAuthFailed",
            f"The GitOps repository refused the credentials; fix the policy's Secret: {exc}",
            delay=300.0,
        )
    except (git.GitError, forge.ForgeError, PolicyError, manifests.ManifestError) as exc:
        state.update(state=FAILED, reason=str(exc)[:1000])
        result.say(
            "mitigation_failed", f"Mitigation failed and needs a person: {exc}", warning=True
        )
        result.done = True
        return result


def _start(
    rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment, result: Result
) -> Result:
    # 1. Does any policy let us act at all?
    if policy is None:
        return not_applicable(result, "no RescuePolicy selects this incident's alerts")
    mode = policy.spec.mitigation.mode_for(rescue.severity)
    result.mitigation.update(policy=policy.ref, strategy=policy.spec.mitigation.strategy, mode=mode)
    if mode == "none":
        return not_applicable(
            result, f"policy {policy.ref} allows no mitigation for {rescue.severity}"
        )
    if not rescue.target.name:
        return not_applicable(result, "the alerts name no workload to act on")
    if policy.spec.repository is None:
        return not_applicable(result, f"policy {policy.ref} names no GitOps repository")

    # 2. Gates that wait: they hold automation back until their condition clears.
    gates = policy.spec.gates
    firing_for = (facts.now - rescue.incident_start).total_seconds()
    if firing_for < gates.minFiringSeconds:
        wait = gates.minFiringSeconds - firing_for
        return hold(
            result,
            "min_firing",
            f"Gate minFiringSeconds holds the mitigation: the alert has fired for "
            f"{firing_for:.0f} s of the {gates.minFiringSeconds} s required.",
            max(wait, 1.0),
        )
    if facts.target_busy_with:
        return hold(
            result,
            "one_per_target",
            f"Gate one-mitigation-per-target holds the mitigation: {facts.target_busy_with} "
            f"already has an open mitigation of {rescue.target.ref}.",
            30.0,
        )
    if facts.mitigating_elsewhere >= gates.maxConcurrent:
        return hold(
            result,
            "budget",
            f"Gate maxConcurrent holds the mitigation: {facts.mitigating_elsewhere} mitigation(s) "
            f"are already open in the cluster (budget {gates.maxConcurrent}).",
            30.0,
        )

    repo = env.repository(policy)
    path = policy.spec.repository.path_for(rescue.target)
    result.mitigation["path"] = path
    with repo.locked():
        head = repo.fetch()

        # 3. Our own commit may already be there: pushed just before a crash or a restart.
        found = changes.own_commit(repo, rescue)
        if found is not None:
            result.say(
                "mitigation_recorded",
                f"Found this rescue's commit {found.short} already on {repo.branch}; "
                "recording it instead of committing again.",
            )
            return record(result, found)

        # 4. Gates that look at earlier rescues: their record in the repository, and an
        #    open rescue whose mitigation of this target did not clear its alert.
        held = changes.history_gate(repo, path, rescue, policy, facts.now)
        if held is None and facts.automation_stopped_by:
            held = (
                "not_a_regression",
                f"Automatic mitigation of {rescue.target.ref} is stopped: the mitigation of "
                f"{facts.automation_stopped_by} did not clear its alert, so the cause is probably "
                "not a deploy; the change is proposed for a person to approve instead.",
            )
        if held is not None:
            gate, message = held
            if result.mitigation.get("heldBy") != gate:
                result.say(f"gate_held_{gate}", message)
            note_gate(result, gate)
            result.mitigation.update(heldBy=gate)
            mode = "propose"

        # 5. The change itself.
        change = changes.build(repo, head, path, rescue, policy, result)
        if change is None:
            return result
        failpoints.reached("before-commit")
        sha = repo.commit_change(base=head, **change)
        if sha is None:
            return not_applicable(result, f"{path} already matches the state it would restore")

        if mode == "commit":
            return changes.push(repo, rescue, policy, path, result, first=sha)
        if mode == "pull-request":
            return changes.pull_request(
                repo, head, sha, rescue, policy, path, change["message"], env, result
            )
        result.mitigation.update(
            state=PROPOSED,
            proposal={
                "base": head,
                "message": change["message"],
                "diff": changes.clip(repo.diff(head, sha)),
            },
        )
        result.say(
            "mitigation_proposed",
            f"Proposed {result.mitigation['strategy']} of {rescue.target.ref} ({path}); "
            f"`rescue approve {rescue.name}` commits it, `rescue reject` drops it.",
        )
        return result


def _decide(
    rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment, result: Result
) -> Result:
    approval = rescue.approval or {}
    decision = approval.get("decision")
    if decision is None:
        return result  # waiting for a person; their decision is a spec change that wakes us
    who = str(approval.get("by") or "someone")
    if decision == "rejected":
        reason = str(approval.get("reason") or "no reason given")
        result.mitigation.update(state=REJECTED, reason=reason, decidedBy=who)
        result.say(
            "mitigation_rejected",
            f"Proposed mitigation rejected by {who}: {commits.one_line(reason)}.",
        )
        result.done = True
        return result
    if policy is None or policy.spec.repository is None:
        return not_applicable(result, "the policy that proposed this mitigation is gone")
    result.mitigation["decidedBy"] = who
    result.say("mitigation_approved", f"Proposed mitigation approved by {who}; committing it.")
    repo = env.repository(policy)
    path = policy.spec.repository.path_for(rescue.target)
    with repo.locked():
        head = repo.fetch()
        found = changes.own_commit(repo, rescue)
        if found is not None:
            return record(result, found)
        sha = changes.rebuild(repo, head, path, rescue, policy, result)
        if sha is None:
            return not_applicable(result, f"{path} already matches the state it would restore")
        return changes.push(repo, rescue, policy, path, result, first=sha)
