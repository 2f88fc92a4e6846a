"""Building the mitigation's change and getting it onto the branch: the last known good
state, the scale and feature edits, holding image automation, pushing (rebuilt on a moved
branch, never forced), opening a pull request, and releasing the hold at conclusion; and the
post-incident review, committed to the branch or carried by a pull request of its own.

Everything here runs in a worker thread; what touches the cached clone holds the repository's
lock, what goes through the forge's API needs none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rescue.core import failpoints, forge, git, review
from rescue.core.incident import format_time
from rescue.core.policy import Policy, PolicyError
from rescue.operator import commits, lkg, manifests
from rescue.operator.outcome import (
    COMMITTED,
    NO_REGRESSION,
    PULL_REQUEST,
    Environment,
    RescueView,
    Result,
    not_applicable,
    retry,
)

logger = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
DIFF_LIMIT = 16 * 1024
HISTORY_LIMIT = 2000
TRAILER_RELEASE = "Rescue-Release"


def clip(diff: str) -> str:
    if len(diff) <= DIFF_LIMIT:
        return diff
    return diff[:DIFF_LIMIT] + "\n... (diff shortened)\n"


#: How far before the incident's start a rescue's own commit is looked for. Its commit is made
#: after the incident started, dated by the operator's clock; the walk stops at the first
#: commit dated before this, so a clock (ours, or a later committer's) wrong by more than a
#: day could hide the commit and a second one would be made.
CLOCK_SLOP = timedelta(days=1)


def own_commit(repo: git.Repository, rescue: RescueView) -> git.Commit | None:
    """This rescue's commit on the branch, if one was pushed (before a crash, by a peer)."""
    return repo.with_trailer(
        lkg.TRAILER_RESCUE, rescue.ref, since=rescue.incident_start - CLOCK_SLOP
    )


def history_gate(
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


def build(
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
        choice = choose(repo, path, rescue, policy)
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
        message, write = edit(repo, head, path, rescue, policy, result)

    held = hold_automation(repo, head, path, write)
    if held:
        result.mitigation["heldAutomation"] = held
        message = mention_held(message, held)
    return {"restore": restore, "write": write, "message": message}


def choose(repo: git.Repository, path: str, rescue: RescueView, policy: Policy) -> lkg.Choice:
    return lkg.choose(
        repo.log(path=path, limit=HISTORY_LIMIT),
        incident_start=rescue.incident_start,
        lookback=timedelta(seconds=policy.spec.mitigation.lookbackSeconds),
        path=path,
    )


def edit(
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


def hold_automation(
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


def mention_held(message: str, held: list[dict[str, str]]) -> str:
    names = ", ".join(f"{h['name']} ({h['file']})" for h in held)
    note = f"Image automation suspended until the rescue is concluded: {names}."
    return message.replace("\n\nRescue:", f"\n\n{note}\n\nRescue:", 1)


def rebuild(
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
        held = hold_automation(repo, head, path, write)
        if held:
            message = mention_held(message, held)
        return repo.commit_change(base=head, restore={path: lkg_sha}, write=write, message=message)
    change = build(repo, head, path, rescue, policy, result)
    if change is None:
        return None
    return repo.commit_change(base=head, **change)


def push(
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
            failpoints.reached("after-push")
            break
        except git.NonFastForward:
            if attempt == PUSH_ATTEMPTS:
                raise
            head = repo.fetch()
            # Another replica may have pushed this very mitigation meanwhile.
            theirs = own_commit(repo, rescue)
            if theirs is not None:
                sha = theirs.sha
                break
            logger.info(
                "Branch %s moved while pushing for %s; rebuilding on %s.",
                repo.branch,
                rescue.ref,
                head[:12],
            )
            rebuilt = rebuild(repo, head, path, rescue, policy, result)
            if rebuilt is None:
                return not_applicable(result, f"{path} already matches the state it would restore")
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


def pull_request(
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
        proposal={"base": head, "message": message, "diff": clip(repo.diff(head, sha))},
    )
    result.say(
        "mitigation_pull_request",
        f"Opened pull request #{pull.number} ({pull.url}) with the {result.mitigation['strategy']} "
        f"of {rescue.target.ref}; the mitigation counts once it is merged into {repo.branch}.",
    )
    result.retry_after = 30.0
    return result


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
                done = repo.with_trailer(
                    TRAILER_RELEASE, rescue.ref, since=rescue.incident_start - CLOCK_SLOP
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
        return retry(result, "GitUnreachable", f"Releasing the image automation failed: {exc}")
    except (git.GitError, manifests.ManifestError, PolicyError) as exc:
        state["released"] = "failed"
        result.say(
            "automation_release_failed",
            f"Could not resume the image automation; resume it by hand: {exc}",
            warning=True,
        )
    return result


TRAILER_REVIEW = "Rescue-Review"


def _review_message(rescue: RescueView) -> str:
    return commits.message(
        subject=f"rescue: post-incident review of {rescue.ref}",
        body=(
            f"The {rescue.severity.value} incident {rescue.ref} on {rescue.target.ref}, "
            "written from the rescue's record; people complete it with "
            "`rescue review --lessons`."
        ),
        trailers={TRAILER_REVIEW: rescue.ref},
    )


def commit_review(
    rescue: RescueView, policy: Policy, env: Environment, *, path: str, content: str
) -> str:
    """Commit the review to ``path`` on the branch (a no-op when it already reads the same)."""
    repo = env.repository(policy)
    with repo.locked():
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            head = repo.fetch()
            if (repo.read(head, path) or b"").decode(errors="replace") == content:
                return head
            message = _review_message(rescue)
            sha = repo.commit_change(base=head, write={path: content.encode()}, message=message)
            if sha is None:
                return head
            try:
                repo.push(sha)
            except git.NonFastForward:
                if attempt == PUSH_ATTEMPTS:
                    raise
                continue
            return sha
    raise git.GitError("the review could not be pushed")  # not reached: the loop returns


@dataclass(frozen=True)
class ReviewProposal:
    """Where the review's current text is: ``sha`` on ``branch``, in pull request ``pull``."""

    sha: str
    branch: str
    #: None when the base branch already reads like this: an earlier pull request was merged
    #: and nothing was added since, so there is nothing to propose.
    pull: forge.PullRequest | None
    changed: bool  # a commit was added to the pull request's branch by this call


def review_branch(rescue: RescueView) -> str:
    return f"rescue-review/{rescue.namespace}/{rescue.name}"


def propose_review(
    rescue: RescueView, policy: Policy, env: Environment, *, path: str, content: str
) -> ReviewProposal:
    """Carry the review in a pull request from ``rescue-review/<namespace>/<name>``.

    The open pull request of that branch is found first, so a restart or a second replica
    never opens another; a review that changed since is one more commit on top of its branch
    (a fast-forward, never forced, so what reviewers saw stays in its history). Once that pull
    request is merged or closed, a later change opens a follow-up from the same branch, rebuilt
    on the base branch. Raises ``forge.ForgeError`` (and, for the token, ``git.GitError``) for
    the caller's retry policy.
    """
    spec = policy.spec.repository
    if spec is None:
        raise PolicyError(f"policy {policy.ref} names no repository for the review")
    branch = review_branch(rescue)
    files: dict[str, bytes | None] = {path: content.encode()}
    message = _review_message(rescue)
    kind = review.required(rescue.severity)
    with env.forge(policy) as client:
        pull = client.find_pull_request(base=spec.branch, head=branch)
        if pull is None:
            try:
                pull = client.open_pull_request(
                    base=spec.branch,
                    head=branch,
                    files=files,
                    message=message,
                    title=f"Post-incident review of {rescue.ref} ({rescue.severity.value})",
                    body=(
                        f"The {kind} of the {rescue.severity.value} incident {rescue.ref} on "
                        f"{rescue.target.ref}, written from the rescue's record, at `{path}`.\n\n"
                        f"People add to it with `rescue review {rescue.name} --lessons ...` "
                        "and `--action-item ...`; each change becomes one more commit on this "
                        "pull request. The rescue counts its review as done once this pull "
                        "request carries it as it reads; it does not wait for the merge."
                    ),
                )
            except forge.NothingToChange:
                head = client.head_of(spec.branch)
                if head is None:
                    raise
                return ReviewProposal(sha=head, branch=spec.branch, pull=None, changed=False)
        update = client.update_branch(base=spec.branch, branch=branch, files=files, message=message)
    return ReviewProposal(sha=update.sha, branch=branch, pull=pull, changed=update.changed)
