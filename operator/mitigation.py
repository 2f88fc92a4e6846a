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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from rescue.core import forge, git
from rescue.core.incident import format_time, parse_time
from rescue.core.model import Severity, Target
from rescue.core.policy import Policy, PolicyError
from rescue.operator import commits, lkg, manifests

logger = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
DIFF_LIMIT = 16 * 1024
HISTORY_LIMIT = 2000
TRAILER_RELEASE = "Rescue-Release"

# States of status.mitigation.state
NOT_APPLICABLE = "NotApplicable"
HELD = "Held"
NO_REGRESSION = "NoRegression"
PROPOSED = "Proposed"
PULL_REQUEST = "PullRequestOpen"
COMMITTED = "Committed"
VERIFIED = "Verified"
UNVERIFIED = "Unverified"
REJECTED = "Rejected"
FAILED = "Failed"
OPEN_STATES = frozenset({COMMITTED})
FINAL_STATES = frozenset({NOT_APPLICABLE, NO_REGRESSION, VERIFIED, UNVERIFIED, REJECTED, FAILED})


@dataclass(frozen=True)
class RescueView:
    """What the Mitigate step needs to know of one rescue."""

    namespace: str
    name: str
    severity: Severity
    target: Target
    incident_start: datetime
    alertname: str
    fingerprint: str
    firing: int
    mitigation: Mapping[str, Any]
    approval: Mapping[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Facts:
    """What the cluster says, gathered by the handler from its indexes."""

    now: datetime
    mitigating_elsewhere: int = 0  # cluster-wide open (unverified) mitigations of other rescues
    target_busy_with: str | None = None  # another rescue with an open mitigation of this target


@dataclass(frozen=True)
class Applied:
    """A GitOps controller that deploys the target's path, and the revision it last applied."""

    controller: str  # e.g. "Kustomization flux-system/shop"
    revision: str | None


class Environment(Protocol):
    def repository(self, policy: Policy) -> git.Repository: ...

    def forge(self, policy: Policy) -> forge.GitHub: ...

    def applied(self, repository: git.Repository, path: str) -> Applied | None: ...


@dataclass
class Result:
    """The new ``status.mitigation`` and what to say about the change."""

    mitigation: dict[str, Any]
    entries: list[tuple[str, str, bool]] = field(default_factory=list)  # (event, message, warning)
    done: bool = False
    retry_after: float | None = None
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)

    def say(self, event: str, message: str, *, warning: bool = False) -> None:
        self.entries.append((event, message, warning))


def advance(rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment) -> Result:
    state = dict(rescue.mitigation)
    result = Result(mitigation=state)
    current = state.get("state")
    if current in FINAL_STATES:
        result.done = True
        return result
    try:
        if current == COMMITTED:
            return _verify(rescue, policy, facts, env, result)
        if current == PROPOSED:
            return _decide(rescue, policy, facts, env, result)
        if current == PULL_REQUEST:
            return _await_merge(rescue, policy, env, result)
        return _start(rescue, policy, facts, env, result)
    except git.GitUnavailable as exc:
        return _retry(result, "GitUnreachable", f"The GitOps repository cannot be reached: {exc}")
    except forge.ForgeUnavailable as exc:
        return _retry(
            result, "ForgeUnreachable", f"The forge cannot be reached: {exc}", exc.retry_after
        )
    except forge.ForgeAuthError as exc:
        return _retry(
            result,
            "ForgeAuthFailed",
            f"The forge refused the token; fix the policy's Secret: {exc}",
            delay=300.0,
        )
    except git.GitAuthError as exc:
        return _retry(
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


def _retry(result: Result, reason: str, message: str, delay: float | None = None) -> Result:
    attempts = int(result.mitigation.get("attempts", 0)) + 1
    result.mitigation["attempts"] = attempts
    result.retry_after = delay or min(5.0 * 2 ** min(attempts, 6), 300.0)
    result.conditions.append(("GitReachable", False, reason, message[:1000]))
    if attempts == 1 or result.mitigation.get("lastError") != reason:
        result.say(
            "mitigation_retrying",
            f"{message} Retrying in {result.retry_after:.0f} s.",
            warning=True,
        )
    result.mitigation["lastError"] = reason
    return result


def _not_applicable(result: Result, reason: str) -> Result:
    result.mitigation.update(state=NOT_APPLICABLE, reason=reason)
    result.say("mitigation_not_applicable", f"No mitigation applies: {reason}.")
    result.done = True
    return result


def _hold(result: Result, gate: str, message: str, retry_after: float | None) -> Result:
    if result.mitigation.get("heldBy") != gate:
        result.say(f"gate_held_{gate}", message)
    result.mitigation.update(state=HELD, heldBy=gate, reason=message)
    result.retry_after = retry_after
    return result


def _start(
    rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment, result: Result
) -> Result:
    # 1. Does any policy let us act at all?
    if policy is None:
        return _not_applicable(result, "no RescuePolicy selects this incident's alerts")
    mode = policy.spec.mitigation.mode_for(rescue.severity)
    result.mitigation.update(policy=policy.ref, strategy=policy.spec.mitigation.strategy, mode=mode)
    if mode == "none":
        return _not_applicable(
            result, f"policy {policy.ref} allows no mitigation for {rescue.severity}"
        )
    if not rescue.target.name:
        return _not_applicable(result, "the alerts name no workload to act on")
    if policy.spec.repository is None:
        return _not_applicable(result, f"policy {policy.ref} names no GitOps repository")

    # 2. Gates that wait: they hold automation back until their condition clears.
    gates = policy.spec.gates
    firing_for = (facts.now - rescue.incident_start).total_seconds()
    if firing_for < gates.minFiringSeconds:
        wait = gates.minFiringSeconds - firing_for
        return _hold(
            result,
            "min_firing",
            f"Gate minFiringSeconds holds the mitigation: the alert has fired for "
            f"{firing_for:.0f} s of the {gates.minFiringSeconds} s required.",
            max(wait, 1.0),
        )
    if facts.target_busy_with:
        return _hold(
            result,
            "one_per_target",
            f"Gate one-mitigation-per-target holds the mitigation: {facts.target_busy_with} "
            f"already has an open mitigation of {rescue.target.ref}.",
            30.0,
        )
    if facts.mitigating_elsewhere >= gates.maxConcurrent:
        return _hold(
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
        found = _own_commit(repo, rescue)
        if found is not None:
            result.say(
                "mitigation_recorded",
                f"Found this rescue's commit {found.short} already on {repo.branch}; "
                "recording it instead of committing again.",
            )
            return _record(result, found)

        # 4. Gates that look at the repository's own record of earlier rescues.
        held = _history_gate(repo, path, rescue, policy, facts.now)
        if held is not None:
            gate, message = held
            if result.mitigation.get("heldBy") != gate:
                result.say(f"gate_held_{gate}", message)
            result.mitigation.update(heldBy=gate)
            mode = "propose"

        # 5. The change itself.
        change = _build(repo, head, path, rescue, policy, result)
        if change is None:
            return result
        sha = repo.commit_change(base=head, **change)
        if sha is None:
            return _not_applicable(result, f"{path} already matches the state it would restore")

        if mode == "commit":
            return _push(repo, rescue, policy, path, result, first=sha)
        if mode == "pull-request":
            return _pull_request(
                repo, head, sha, rescue, policy, path, change["message"], env, result
            )
        result.mitigation.update(
            state=PROPOSED,
            proposal={
                "base": head,
                "message": change["message"],
                "diff": _clip(repo.diff(head, sha)),
            },
        )
        result.say(
            "mitigation_proposed",
            f"Proposed {result.mitigation['strategy']} of {rescue.target.ref} ({path}); "
            f"`rescue approve {rescue.name}` commits it, `rescue reject` drops it.",
        )
        return result


def _pull_request(
    repo: git.Repository,
    head: str,
    sha: str,
    rescue: RescueView,
    policy: Policy,
    path: str,
    message: str,
    env: Environment,
    result: Result,
) -> Result:
    """Open (or find) the pull request that carries the change; the forge builds the commit."""
    files = {name: repo.read(sha, name) for name in repo.changed(head, sha)}
    subject, _, body = message.partition("\n\n")
    branch = f"rescue/{rescue.namespace}/{rescue.name}"
    with env.forge(policy) as client:
        pull = client.open_pull_request(
            base=repo.branch, head=branch, files=files, message=message, title=subject, body=body
        )
    result.mitigation.update(
        state=PULL_REQUEST,
        pullRequest={"url": pull.url, "number": pull.number, "branch": branch},
        proposal={"base": head, "message": message, "diff": _clip(repo.diff(head, sha))},
    )
    result.say(
        "mitigation_pull_request",
        f"Opened pull request #{pull.number} ({pull.url}) with the {result.mitigation['strategy']} "
        f"of {rescue.target.ref}; the mitigation counts once it is merged into {repo.branch}.",
    )
    result.retry_after = 30.0
    return result


def _await_merge(
    rescue: RescueView, policy: Policy | None, env: Environment, result: Result
) -> Result:
    """A pull request's commit counts once the branch contains it (found by its trailer)."""
    if policy is None or policy.spec.repository is None:
        return _not_applicable(result, "the policy that opened this pull request is gone")
    repo = env.repository(policy)
    with repo.locked():
        repo.fetch()
        found = _own_commit(repo, rescue)
    if found is None:
        result.retry_after = 30.0
        return result
    result.say(
        "mitigation_committed",
        f"Pull request merged: {found.short} is on {repo.branch}; waiting for the GitOps "
        "controller to apply it and the alert to resolve.",
    )
    return _record(result, found)


def _record(result: Result, commit: git.Commit) -> Result:
    """The mitigation is this commit on the branch: verification starts at once."""
    result.mitigation.update(
        state=COMMITTED,
        commit=commit.sha,
        shortCommit=commit.short[:7],
        pushedAt=format_time(commit.committed),
        attempts=0,
    )
    result.retry_after = 1.0
    return result


def _clip(diff: str) -> str:
    if len(diff) <= DIFF_LIMIT:
        return diff
    return diff[:DIFF_LIMIT] + "\n... (diff shortened)\n"


def _own_commit(repo: git.Repository, rescue: RescueView) -> git.Commit | None:
    for commit in repo.log(limit=HISTORY_LIMIT):
        if commit.trailer(lkg.TRAILER_RESCUE) == rescue.ref:
            return commit
    return None


def _history_gate(
    repo: git.Repository, path: str, rescue: RescueView, policy: Policy, now: datetime
) -> tuple[str, str] | None:
    gates = policy.spec.gates
    ours = [
        c
        for c in repo.log(path=path, limit=HISTORY_LIMIT)
        if c.trailer(lkg.TRAILER_RESCUE) not in (None, rescue.ref)
    ]
    if (
        ours
        and gates.cooldownSeconds
        and now - ours[0].committed < timedelta(seconds=gates.cooldownSeconds)
    ):
        return (
            "cooldown",
            f"Gate cooldownSeconds holds automation back: rescue commit {ours[0].short} changed "
            f"{path} at {format_time(ours[0].committed)}, within {gates.cooldownSeconds} s; "
            "the change is proposed for a person to approve instead.",
        )
    today = [c for c in ours if now - c.committed < timedelta(days=1)]
    if len(today) >= gates.maxPerDay:
        return (
            "max_per_day",
            f"Gate maxPerDay holds automation back: {len(today)} rescue commit(s) changed {path} "
            f"in the last day (limit {gates.maxPerDay}); the change is proposed instead.",
        )
    return None


def _build(
    repo: git.Repository,
    head: str,
    path: str,
    rescue: RescueView,
    policy: Policy,
    result: Result,
) -> dict[str, Any] | None:
    """The restore/write arguments and message of the commit, or None when there is none."""
    strategy = policy.spec.mitigation.strategy
    write: dict[str, bytes | None] = {}
    restore: dict[str, str | None] = {}
    if strategy == "rollback":
        choice = _choose(repo, path, rescue, policy)
        if choice.lkg is None or choice.suspect is None:
            result.mitigation.update(state=NO_REGRESSION, reason=choice.reason)
            result.say("mitigation_no_regression", f"Not rolling back: {choice.reason}.")
            result.done = True
            return None
        result.mitigation.update(
            suspect={
                "commit": choice.suspect.sha,
                "subject": choice.suspect.subject[:200],
                "author": choice.suspect.author[:200],
            },
            lkg=choice.lkg,
            why=choice.reason,
        )
        restore[path] = choice.lkg
        message = commits.rollback_message(
            rescue=rescue.ref,
            target=rescue.target.ref,
            path=path,
            suspect_sha=choice.suspect.sha,
            suspect_subject=choice.suspect.subject,
            lkg=choice.lkg,
            alert=rescue.alertname,
            fingerprint=rescue.fingerprint,
            severity=rescue.severity.value,
        )
    else:
        message, write = _edit(repo, head, path, rescue, policy, result)

    held = _hold_automation(repo, head, path, write)
    if held:
        result.mitigation["heldAutomation"] = held
        message = _mention_held(message, held)
    return {"restore": restore, "write": write, "message": message}


def _choose(repo: git.Repository, path: str, rescue: RescueView, policy: Policy) -> lkg.Choice:
    return lkg.choose(
        repo.log(path=path, limit=HISTORY_LIMIT),
        incident_start=rescue.incident_start,
        lookback=timedelta(seconds=policy.spec.mitigation.lookbackSeconds),
        path=path,
    )


def _edit(
    repo: git.Repository, head: str, path: str, rescue: RescueView, policy: Policy, result: Result
) -> tuple[str, dict[str, bytes | None]]:
    mitigation = policy.spec.mitigation
    files = [f for f in repo.files(head, path) if f.endswith((".yaml", ".yml"))]
    errors = []
    for name in files:
        text = (repo.read(head, name) or b"").decode()
        try:
            if mitigation.strategy == "scale":
                new, before, after = manifests.scale_up(
                    text,
                    kind=rescue.target.kind,
                    name=rescue.target.name,
                    factor=mitigation.scale.factor,
                    max_replicas=mitigation.scale.maxReplicas,
                )
                what = f"scale {rescue.target.ref} from {before} to {after} replicas"
            else:
                flag = mitigation.feature
                new, previous = manifests.set_flag(
                    text, config_map=flag.configMap, key=flag.key, value=flag.value
                )
                what = f"set {flag.key}={flag.value} in ConfigMap {flag.configMap} (was {previous})"
        except manifests.ManifestError as exc:
            errors.append(str(exc))
            continue
        result.mitigation["change"] = what
        message = commits.message(
            subject=f"rescue: {what}",
            body=(
                f"{rescue.severity.value} incident {rescue.ref}: the alert "
                f"{commits.one_line(rescue.alertname, 80)} is firing for {rescue.target.ref}.\n"
                f"This commit changes {name} only, to {what}, as policy {policy.ref} allows.\n"
                "Revert this commit to undo it once the cause is fixed."
            ),
            trailers={
                lkg.TRAILER_RESCUE: rescue.ref,
                lkg.TRAILER_FINGERPRINT: rescue.fingerprint,
            },
        )
        return message, {name: new.encode()}
    raise manifests.ManifestError(
        f"no manifest under {path} can be changed by {mitigation.strategy}: "
        + ("; ".join(errors[:3]) or "no YAML files")
    )


def _hold_automation(
    repo: git.Repository, head: str, path: str, write: dict[str, bytes | None]
) -> list[dict[str, str]]:
    """Suspend the image automation that would roll the mitigation forward again.

    The target is under image automation when its files carry Flux setter comments and an
    ImageUpdateAutomation's update path covers its folder; each such automation is suspended
    in the same commit, so the rollback cannot be undone by the next image scan.
    """
    setters = any(
        manifests.IMAGE_POLICY_MARKER in (repo.read(head, name) or b"").decode(errors="replace")
        for name in repo.files(head, path)
    )
    if not setters:
        return []
    held = []
    for name in repo.grep(head, "kind: *ImageUpdateAutomation"):
        if not name.endswith((".yaml", ".yml")):
            continue
        text = (write.get(name) or repo.read(head, name) or b"").decode(errors="replace")
        for automation, update_path in manifests.automation_paths(text):
            if manifests.covers(update_path, path):
                text = manifests.set_suspend(text, name=automation, suspend=True)
                write[name] = text.encode()
                held.append({"name": automation, "file": name})
    return held


def _mention_held(message: str, held: list[dict[str, str]]) -> str:
    names = ", ".join(f"{h['name']} ({h['file']})" for h in held)
    note = f"Image automation suspended until the rescue is concluded: {names}."
    return message.replace("\n\nRescue:", f"\n\n{note}\n\nRescue:", 1)


def release(rescue: RescueView, policy: Policy | None, env: Environment) -> Result:
    """At conclusion, resume the image automation the mitigation suspended, by commit."""
    state = dict(rescue.mitigation)
    result = Result(mitigation=state)
    held = list(state.get("heldAutomation") or [])
    if not held or state.get("released") or policy is None or policy.spec.repository is None:
        return result
    try:
        repo = env.repository(policy)
        with repo.locked():
            for attempt in range(1, PUSH_ATTEMPTS + 1):
                head = repo.fetch()
                done = next(
                    (
                        c
                        for c in repo.log(limit=HISTORY_LIMIT)
                        if c.trailer(TRAILER_RELEASE) == rescue.ref
                    ),
                    None,
                )
                if done is not None:
                    state["released"] = done.sha
                    return result
                write: dict[str, bytes | None] = {}
                for item in held:
                    text = (
                        write.get(item["file"]) or repo.read(head, item["file"]) or b""
                    ).decode()
                    write[item["file"]] = manifests.set_suspend(
                        text, name=item["name"], suspend=False
                    ).encode()
                names = ", ".join(item["name"] for item in held)
                message = commits.message(
                    subject=f"rescue: resume image automation held for {rescue.target.ref}",
                    body=(
                        f"Rescue {rescue.ref} is concluded, so the image automation it suspended "
                        f"({names}) may update {rescue.target.ref} again."
                    ),
                    trailers={TRAILER_RELEASE: rescue.ref},
                )
                sha = repo.commit_change(base=head, write=write, message=message)
                if sha is None:
                    state["released"] = head
                    return result
                try:
                    repo.push(sha)
                except git.NonFastForward:
                    if attempt == PUSH_ATTEMPTS:
                        raise
                    continue
                state["released"] = sha
                result.say(
                    "automation_released",
                    f"Image automation {names} resumed by commit {sha[:12]} now that the rescue "
                    "is concluded.",
                )
                return result
    except (git.GitUnavailable, git.GitAuthError) as exc:
        return _retry(result, "GitUnreachable", f"Releasing the image automation failed: {exc}")
    except (git.GitError, manifests.ManifestError, PolicyError) as exc:
        state["released"] = "failed"
        result.say(
            "automation_release_failed",
            f"Could not resume the image automation; resume it by hand: {exc}",
            warning=True,
        )
    return result


def _push(
    repo: git.Repository,
    rescue: RescueView,
    policy: Policy,
    path: str,
    result: Result,
    *,
    first: str,
) -> Result:
    """Push, rebuilding on the new head when someone else pushed meanwhile; never forced."""
    sha = first
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            repo.push(sha)
            break
        except git.NonFastForward:
            if attempt == PUSH_ATTEMPTS:
                raise
            head = repo.fetch()
            # Another replica may have pushed this very mitigation meanwhile.
            theirs = _own_commit(repo, rescue)
            if theirs is not None:
                sha = theirs.sha
                break
            logger.info(
                "Branch %s moved while pushing for %s; rebuilding on %s.",
                repo.branch,
                rescue.ref,
                head[:12],
            )
            rebuilt = _rebuild(repo, head, path, rescue, policy, result)
            if rebuilt is None:
                return _not_applicable(result, f"{path} already matches the state it would restore")
            sha = rebuilt
    result.mitigation.update(
        state=COMMITTED,
        commit=sha,
        shortCommit=sha[:7],
        pushedAt=format_time(datetime.now(UTC)),
        attempts=0,
    )
    result.mitigation.pop("lastError", None)
    result.conditions.append(
        ("GitReachable", True, "Pushed", f"Pushed {sha[:12]} to {repo.branch}.")
    )
    result.retry_after = 1.0  # start verifying at once
    result.say(
        "mitigation_committed",
        f"{str(result.mitigation.get('strategy', 'mitigation')).capitalize()} of "
        f"{rescue.target.ref} was pushed as {sha[:12]} to {repo.branch}; waiting for the GitOps "
        "controller to apply it and the alert to resolve.",
    )
    return result


def _rebuild(
    repo: git.Repository, head: str, path: str, rescue: RescueView, policy: Policy, result: Result
) -> str | None:
    if policy.spec.mitigation.strategy == "rollback" and result.mitigation.get("lkg"):
        lkg_sha = str(result.mitigation["lkg"])
        suspect = result.mitigation.get("suspect", {})
        message = commits.rollback_message(
            rescue=rescue.ref,
            target=rescue.target.ref,
            path=path,
            suspect_sha=str(suspect.get("commit", "")),
            suspect_subject=str(suspect.get("subject", "")),
            lkg=lkg_sha,
            alert=rescue.alertname,
            fingerprint=rescue.fingerprint,
            severity=rescue.severity.value,
        )
        write: dict[str, bytes | None] = {}
        held = _hold_automation(repo, head, path, write)
        if held:
            message = _mention_held(message, held)
        return repo.commit_change(base=head, restore={path: lkg_sha}, write=write, message=message)
    change = _build(repo, head, path, rescue, policy, result)
    if change is None:
        return None
    return repo.commit_change(base=head, **change)


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
        return _not_applicable(result, "the policy that proposed this mitigation is gone")
    result.mitigation["decidedBy"] = who
    result.say("mitigation_approved", f"Proposed mitigation approved by {who}; committing it.")
    repo = env.repository(policy)
    path = policy.spec.repository.path_for(rescue.target)
    with repo.locked():
        head = repo.fetch()
        found = _own_commit(repo, rescue)
        if found is not None:
            return _record(result, found)
        sha = _rebuild(repo, head, path, rescue, policy, result)
        if sha is None:
            return _not_applicable(result, f"{path} already matches the state it would restore")
        return _push(repo, rescue, policy, path, result, first=sha)


def _verify(
    rescue: RescueView, policy: Policy | None, facts: Facts, env: Environment, result: Result
) -> Result:
    state = result.mitigation
    commit = str(state.get("commit", ""))
    awaiting = []
    if policy is not None and policy.spec.repository is not None:
        repo = env.repository(policy)
        applied = env.applied(repo, str(state.get("path", "")))
        if applied is not None:
            state["controller"] = applied.controller
            revision = (applied.revision or "").rsplit(":", 1)[-1].rsplit("@", 1)[-1]
            if not revision or not _contains(repo, revision, commit):
                awaiting.append(f"{applied.controller} to apply {commit[:12]}")
            else:
                state["appliedRevision"] = revision
    if rescue.firing > 0:
        awaiting.append(f"the alert to resolve ({rescue.firing} firing)")
    if not awaiting:
        state.update(state=VERIFIED, verifiedAt=format_time(facts.now))
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
    if facts.now - pushed > timedelta(seconds=window):
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
        result.done = True
        return result
    if state.get("awaiting") != awaiting:
        state["awaiting"] = awaiting
        result.conditions.append(
            ("MitigationVerified", False, "Awaiting", "Awaiting " + "; ".join(awaiting))
        )
    result.retry_after = 5.0
    return result


def _contains(repo: git.Repository, revision: str, commit: str) -> bool:
    if revision.startswith(commit) or commit.startswith(revision):
        return True
    with repo.locked():
        return repo.is_ancestor(commit, revision)


def cache_root() -> Path:
    return Path.home() / ".cache" / "rescue" / "git"
