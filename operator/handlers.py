"""The kopf handlers: where Kubernetes events meet the lifecycle's decisions.

Every handler delegates to plain functions (``lifecycle`` decides phases and steps,
``mitigation`` takes the next step of the Mitigate step) and writes back only what they decided.
Create, update and resume (the operator starting over existing rescues) all run the same
reconcile, so a restart or a replayed event finds nothing left to do. Work that must happen
later (a gate that waits, a commit the GitOps controller has not applied yet) is asked for with
``kopf.TemporaryError(delay=...)``, which kopf keeps in the resource's annotations, so it
survives a restart too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import kopf

from rescue.core import forge, git, logcontext, review
from rescue.core.incident import parse_time
from rescue.core.model import GROUP, POLICY_PLURAL, RESCUE_PLURAL, VERSION, Severity, Target
from rescue.core.policy import Policy, PolicyError, select
from rescue.operator import (
    changes,
    diagnosis,
    escalation,
    lifecycle,
    mitigation,
    policies,
    telemetry,
    tracker,
)
from rescue.operator.environment import ClusterEnvironment

registry = kopf.OperatorRegistry()
logger = logging.getLogger(__name__)

#: Annotation the operator sets on Pending rescues when a policy changes, to have them
#: reconsidered (kopf reacts to annotation changes, not to status changes).
NUDGE = f"{GROUP}/policy-revision"
KOPF_PREFIX = f"operator.{GROUP}"
#: How long a policy handler waits for its own index to show the policy before nudging.
INDEX_WAIT = 5.0


#: Connections to the API server besides the watches, which each hold one for good.
SPARE_CONNECTIONS = 16


def connections_for(namespaces: int) -> int:
    """The pool's bound: a watch of rescues and one of policies per namespace (or one each
    cluster-wide), the peering watch, and spare ones for everything else."""
    return 2 * max(namespaces, 1) + 1 + SPARE_CONNECTIONS


@kopf.on.login(registry=registry)
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession | None:
    """In a Pod the ServiceAccount; elsewhere the kubeconfig ($KUBECONFIG), as kubectl would.

    The credentials go into a session of our own because kopf's has no bound on its
    connections: a burst of rescues opened hundreds at once, each with its TLS buffers, and
    the operator held 380 MiB with 1,000 rescues open (bench/README.md, operator). With the
    bound, requests beyond it wait for a connection instead.
    """
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(
        memo=memo, **kwargs
    ) or kopf.login_with_kubeconfig(memo=memo, **kwargs)
    if info is None:
        return None
    limit = int(memo.get("connections") or connections_for(0))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),  # the token, or the user and password
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        aiohttp_session=session,
        priority=info.priority,
        expiration=info.expiration,
    )


@kopf.on.startup(registry=registry)
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Handler progress and the last handled spec live in annotations under a domain of their
    # own, so the status stays ours, the CRD needs no field for kopf, and annotations under our
    # group (the policy nudge) still count as changes.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # A silent watch is restarted rather than trusted (see the kopf reports on silent watches).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    if "environment" not in memo:
        memo["environment"] = ClusterEnvironment.from_kubeconfig()
    if "peering" in memo:
        settings.peering.priority, settings.peering.lifetime = memo["peering"]


# The indexers are coroutines, though they never wait: kopf runs a plain function in its thread
# pool, six hops for every event of every rescue (in a resume's profile, a fifth of its samples).


@kopf.index(GROUP, VERSION, POLICY_PLURAL, registry=registry)
async def policies_by_namespace(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[str, dict[str, Any]]:
    return {namespace or "": {"name": name, "spec": dict(spec)}}


@kopf.index(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def open_mitigations(
    namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> dict[str, str]:
    """Rescues whose mitigation is pushed but not yet verified, by target."""
    # NB: an empty mapping, not None: kopf keeps an object's previous entries when an indexer
    # returns None, and would remember a mitigation that has since been verified.
    state = (status.get("mitigation") or {}).get("state")
    if state not in mitigation.OPEN_STATES:
        return {}
    return {str(status.get("target", "-")): f"{namespace}/{name}"}


@kopf.index(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def failed_mitigations(
    namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> dict[str, str]:
    """Open rescues whose mitigation did not clear the alert, by target."""
    state = (status.get("mitigation") or {}).get("state")
    if state != mitigation.UNVERIFIED or status.get("phase") == "Completed":
        return {}
    return {str(status.get("target", "-")): f"{namespace}/{name}"}


@kopf.index(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def rescues_seen(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[str, str]:
    """Every rescue by its target and by its alert names: "is this a known issue?"."""
    ref = f"{namespace}/{name}"
    keys = {f"target:{status.get('target')}"} if status.get("target") not in (None, "-") else set()
    keys |= {f"alert:{a.get('alertname')}" for a in spec.get("alerts") or [] if a.get("alertname")}
    return dict.fromkeys(keys, ref)


@kopf.index(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def rescues_by_target(
    namespace: str | None, name: str, meta: kopf.Meta, status: kopf.Status, **_: Any
) -> dict[str, str]:
    """Every rescue of a target with when it was created: recurring incidents."""
    target = status.get("target")
    if target in (None, "-"):
        return {}
    return {str(target): f"{meta.get('creationTimestamp', '')} {namespace}/{name}"}


@kopf.index(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def pending_rescues(
    namespace: str | None, name: str, status: kopf.Status, **_: Any
) -> dict[str, str] | None:
    if status.get("phase") not in (None, "Pending"):
        return {}
    return {namespace or "": name}


@kopf.on.create(GROUP, VERSION, POLICY_PLURAL, registry=registry)
@kopf.on.update(GROUP, VERSION, POLICY_PLURAL, field="spec", registry=registry)
async def reconsider_pending(
    namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A new or changed policy may open rescues that were left Pending."""
    index: kopf.Index[str, str] = kwargs["pending_rescues"]
    policy_index: kopf.Index[str, dict[str, Any]] = kwargs["policies_by_namespace"]
    env: ClusterEnvironment = memo["environment"]
    revision = str(body.metadata.get("resourceVersion", ""))

    # The rescues will read the policy from the index: wait until it holds this version.
    wanted = {"name": body.metadata.get("name"), "spec": dict(body.get("spec") or {})}
    for _ in range(int(INDEX_WAIT / 0.05)):
        if wanted in list(policy_index.get(namespace or "", [])):
            break
        await asyncio.sleep(0.05)

    for name in list(index.get(namespace or "", [])):
        await asyncio.to_thread(
            env.rescues.patch,
            namespace or "",
            name,
            {"metadata": {"annotations": {NUDGE: revision}}},
        )


def _policies(index: kopf.Index[str, dict[str, Any]], namespace: str) -> list[Policy]:
    found = []
    for entry in index.get(namespace, []):
        try:
            found.append(Policy.parse(namespace, entry["name"], entry["spec"]))
        except PolicyError as exc:
            logger.warning("Ignoring a policy: %s", exc)
    return found


@kopf.on.resume(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
@kopf.on.create(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
@kopf.on.update(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def reconcile_rescue(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    log_for = logger
    logcontext.about(f"{namespace or ''}/{name}")
    # kopf passes each index by its function's name.
    policy_index: kopf.Index[str, dict[str, Any]] = kwargs["policies_by_namespace"]
    open_index: kopf.Index[str, str] = kwargs["open_mitigations"]
    env: ClusterEnvironment = memo["environment"]
    namespace = namespace or ""
    now = datetime.now(UTC)
    current = dict(status)
    spec_data = dict(spec)
    severity = Severity(spec_data["severity"])
    labels = policies.incident_labels(spec_data)
    policy = select(_policies(policy_index, namespace), labels)

    opens = policy is not None and severity in policy.spec.triage.open
    stable = policy.spec.gates.stableSeconds if policy is not None else 300
    stored = policy is not None and policy.spec.repository is not None
    decision = lifecycle.reconcile(
        spec_data,
        current,
        now=now,
        policy_opens=opens,
        stable_seconds=stable,
        reviews_stored=stored,
    )

    retry_after: float | None = None
    if decision.status.get("phase") == "Active" and decision.status.get("step") == "Mitigate":
        view = _view(namespace, name, spec_data, decision.status, policy, labels)
        facts = _facts(open_index, kwargs["failed_mitigations"], view, now)
        result = await asyncio.to_thread(mitigation.advance, view, policy, facts, env)
        decision = _fold(decision, result)
        retry_after = result.retry_after
        # Mitigation done: the steps after it may follow at once.
        decision = lifecycle.walk(decision, spec_data, now=now, stable_seconds=stable)

    # Recurring incidents of one target escalate to design, once.
    if (
        policy is not None
        and decision.status.get("phase") == "Active"
        and not decision.status.get("escalatedTo")
        and decision.status.get("target") not in (None, "-")
    ):
        rule = policy.spec.escalation
        pattern = escalation.recurring(
            kwargs["rescues_by_target"].get(str(decision.status["target"]), []),
            me=f"{namespace}/{name}",
            now=now,
            window=timedelta(seconds=rule.recurringWindowSeconds),
            count=rule.recurringCount,
        )
        if pattern is not None:
            days = rule.recurringWindowSeconds / 86400
            decision = lifecycle.note(
                decision,
                now=now,
                key="escalatedTo",
                value="design",
                event="rescue_escalated",
                warning=True,
                message=(
                    f"Escalated to design: {decision.status['target']} needed {len(pattern) + 1} "
                    f"rescues within {days:g} day(s) (earlier: {', '.join(pattern[-5:])})."
                ),
            )

    # Diagnosis aids, once, when the rescue reaches Diagnose.
    if decision.status.get("step") == "Diagnose" and "diagnosisAids" not in decision.status:
        seen: kopf.Index[str, str] = kwargs["rescues_seen"]
        me = f"{namespace}/{name}"
        keys = [f"target:{decision.status.get('target')}"] + [
            f"alert:{a.get('alertname')}" for a in spec_data.get("alerts") or []
        ]
        related = sorted({ref for key in keys for ref in seen.get(key, []) if ref != me})
        view = _view(namespace, name, spec_data, decision.status, policy, labels)
        aids = await asyncio.to_thread(
            diagnosis.gather,
            view,
            policy,
            env,
            alerts=list(spec_data.get("alerts") or []),
            external_url=str(spec_data.get("externalURL") or ""),
            related=related,
        )
        decision = lifecycle.note(
            decision,
            now=datetime.now(UTC),
            key="diagnosisAids",
            value=aids,
            event="diagnosis_aids",
            message=diagnosis.summary(aids),
        )

    # At Review the post-incident review goes to the GitOps repository, and again whenever
    # people add to what it is written from.
    if decision.status.get("step") == "Review" and policy is not None:
        before = decision.status.get("review")
        decision, review_wait = await _commit_review(
            decision, namespace, name, spec_data, dict(body.metadata), policy, labels, env
        )
        if review_wait is not None:
            retry_after = min(retry_after or review_wait, review_wait)
        if decision.status.get("review") != before:
            # The fresh review may complete the exit checklist of a conclude asked meanwhile.
            again = lifecycle.reconcile(
                spec_data,
                decision.status,
                now=now,
                policy_opens=opens,
                stable_seconds=stable,
                reviews_stored=stored,
            )
            decision = lifecycle.Decision(
                status=again.status, events=decision.events + again.events, wait=decision.wait
            )

    # Conclusion releases the image automation the mitigation held, again by a commit.
    held = decision.status.get("mitigation") or {}
    if (
        decision.status.get("phase") == "Completed"
        and held.get("heldAutomation")
        and not held.get("released")
    ):
        view = _view(namespace, name, spec_data, decision.status, policy, labels)
        result = await asyncio.to_thread(mitigation.release, view, policy, env)
        decision = _fold(decision, result)
        if result.retry_after is not None:
            retry_after = min(retry_after or result.retry_after, result.retry_after)

    # Routed findings also become a tracker issue where the policy asks for one. The rescue is
    # already concluded: a forge that cannot be reached only delays the issue.
    if tracker.wanted(decision.status, policy) and policy is not None:
        decision, issue_wait = await _open_findings_issue(
            decision, namespace, name, spec_data, policy, env
        )
        if issue_wait is not None:
            retry_after = min(retry_after or issue_wait, issue_wait)

    # People and the CLI wait on this to know the operator has seen their change.
    decision.status["observedGeneration"] = body.metadata.get("generation", 0)
    for key, value in decision.status.items():
        if current.get(key) != value:
            patch.status[key] = value
    for key in current.keys() - decision.status.keys():
        patch.status[key] = None
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        log = log_for.warning if event.type == "Warning" else log_for.info
        log("Rescue %s/%s: %s", namespace, name, event.message)
    if not decision.events and decision.status == current:
        log_for.debug("Rescue %s/%s is up to date; nothing to do.", namespace, name)

    if decision.wait is not None:
        retry_after = min(retry_after or decision.wait, decision.wait)
    if retry_after is not None:
        raise kopf.TemporaryError(
            f"Rescue {namespace}/{name} is waiting; looking again in {retry_after:.0f} s.",
            delay=retry_after,
        )


async def _commit_review(
    decision: lifecycle.Decision,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    metadata: Mapping[str, Any],
    policy: Policy,
    labels: Mapping[str, str],
    env: ClusterEnvironment,
) -> tuple[lifecycle.Decision, float | None]:
    """Put the review as it now reads where the policy wants it; the wait, when it could not.

    In commit mode it is committed to the branch. In pull-request mode it is carried by a pull
    request from ``rescue-review/<namespace>/<name>``, and it counts as done for the exit
    checklist as soon as that pull request (open, or merged) carries its current text:
    reviews are often merged days later, and the conclusion must not wait for a merge.
    """
    severity = Severity(spec["severity"])
    if policy.spec.repository is None or review.required(severity) == "none":
        return decision, None
    trigger = review.basis(spec)
    current = decision.status.get("review") or {}
    if current.get("trigger") == trigger:
        return decision, None
    record = {"metadata": dict(metadata), "spec": dict(spec), "status": decision.status}
    content = review.render(record, now=datetime.now(UTC))
    path = review.path_for(namespace, name, directory=policy.spec.review.directory)
    view = _view(namespace, name, spec, decision.status, policy, labels)
    kind = review.required(severity)
    by_pull_request = policy.spec.review.mode == "pull-request"
    try:
        if by_pull_request:
            proposal = await asyncio.to_thread(
                changes.propose_review, view, policy, env, path=path, content=content
            )
        else:
            sha = await asyncio.to_thread(
                changes.commit_review, view, policy, env, path=path, content=content
            )
    except forge.ForgeUnavailable as exc:
        wait = max(exc.retry_after or 60.0, 5.0)
        logger.warning(
            "The forge cannot take the review of %s/%s right now (%s); trying again in %.0f s.",
            namespace,
            name,
            exc,
            wait,
        )
        return decision, wait
    except forge.ForgeAuthError as exc:
        logger.warning(
            "The forge refused the token for the review of %s/%s (%s); fix the Secret named by "
            "policy %s. Trying again in 300 s.",
            namespace,
            name,
            exc,
            policy.ref,
        )
        return decision, 300.0
    except forge.ForgeError as exc:
        logger.warning(
            "The forge refused the review of %s/%s (%s); check policy %s. Trying again in 300 s.",
            namespace,
            name,
            exc,
            policy.ref,
        )
        return decision, 300.0
    except (git.GitError, PolicyError) as exc:
        logger.warning(
            "The review of %s/%s could not be written (%s); trying again in 60 s.",
            namespace,
            name,
            exc,
        )
        return decision, 60.0

    value: dict[str, Any] = {"path": path, "trigger": trigger, "kind": kind}
    if not by_pull_request:
        value["commit"] = sha
        event, message = "review_committed", f"The {kind} is committed as {sha[:12]} at {path}."
    elif proposal.pull is None:
        # Merged earlier, and what changed since does not change the text: nothing to propose.
        value.update(commit=proposal.sha, pullRequest=current.get("pullRequest"))
        event = "review_committed"
        message = (
            f"The {kind} at {path} already reads like this on {proposal.branch} "
            f"({proposal.sha[:12]}); there is nothing to propose."
        )
    else:
        pull = proposal.pull
        value.update(
            commit=proposal.sha,
            pullRequest={"url": pull.url, "number": pull.number, "branch": proposal.branch},
        )
        if pull.created:
            event = "review_pull_request_opened"
            message = f"The {kind} is proposed in pull request #{pull.number} ({pull.url})"
        else:
            event = "review_pull_request_updated"
            message = f"Pull request #{pull.number} ({pull.url}) now carries the {kind}"
        message += (
            f" as it now reads, commit {proposal.sha[:12]} at {path}; that counts as done for the "
            "exit checklist, and the conclusion does not wait for the merge."
        )
    return (
        lifecycle.note(
            decision,
            now=datetime.now(UTC),
            key="review",
            value={k: v for k, v in value.items() if v is not None},
            event=event,
            message=message,
        ),
        None,
    )


async def _open_findings_issue(
    decision: lifecycle.Decision,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    policy: Policy,
    env: ClusterEnvironment,
) -> tuple[lifecycle.Decision, float | None]:
    """Open (or find again) the issue carrying the routed findings; the wait, when it could not."""
    branch = policy.spec.repository.branch if policy.spec.repository is not None else "-"
    issue = tracker.compose(namespace, name, spec, decision.status, branch=branch)
    try:
        opened = await asyncio.to_thread(tracker.open_issue, policy, env, issue)
    except forge.ForgeUnavailable as exc:
        wait = max(exc.retry_after or 60.0, 5.0)
        logger.warning(
            "The forge cannot take the findings issue of %s/%s right now (%s); the rescue stays "
            "concluded and the issue is tried again in %.0f s.",
            namespace,
            name,
            exc,
            wait,
        )
        return decision, wait
    except (forge.ForgeError, git.GitError) as exc:
        logger.warning(
            "The findings issue of %s/%s could not be opened (%s); check the repository, forge "
            "and Secret of policy %s. The rescue stays concluded; trying again in 300 s.",
            namespace,
            name,
            exc,
            policy.ref,
        )
        return decision, 300.0
    except PolicyError as exc:
        # Nothing to retry until the policy changes, and a policy change does not reach a
        # concluded rescue: say so once, in the log.
        logger.warning("No findings issue for %s/%s: %s.", namespace, name, exc)
        return decision, None
    how = "opened" if opened.created else "found again (opened before a restart)"
    return (
        lifecycle.note(
            decision,
            now=datetime.now(UTC),
            key="routedIssue",
            value={"url": opened.url, "number": opened.number},
            event="findings_issue_opened",
            message=(
                f"The findings routed to {decision.status.get('routedTo')} are in issue "
                f"#{opened.number} ({opened.url}), {how}."
            ),
        ),
        None,
    )


def _fold(decision: lifecycle.Decision, result: mitigation.Result) -> lifecycle.Decision:
    return lifecycle.record_mitigation(
        decision,
        now=datetime.now(UTC),
        mitigation=result.mitigation,
        entries=result.entries,
        conditions=result.conditions,
        done=result.done,
    )


def _view(
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    policy: Policy | None,
    labels: Mapping[str, str],
) -> mitigation.RescueView:
    alerts = list(spec.get("alerts") or [])
    target = Target.model_validate(spec.get("target") or {})
    if policy is not None:
        named = policy.target_of(labels)
        if named.name:
            target = named
    first = alerts[0] if alerts else {}
    start = spec.get("incidentStart") or first.get("startsAt") or status.get("detectedAt")
    return mitigation.RescueView(
        namespace=namespace,
        name=name,
        severity=Severity(spec["severity"]),
        target=target,
        incident_start=parse_time(str(start)),
        alertname=str(first.get("alertname") or spec.get("title") or name),
        fingerprint=str(first.get("fingerprint") or "-"),
        firing=sum(1 for a in alerts if a.get("status") == "firing"),
        mitigation=dict(status.get("mitigation") or {}),
        approval=spec.get("approval"),
        paused_seconds=int(status.get("pausedSeconds", 0)),
    )


def _facts(
    index: kopf.Index[str, str],
    failed: kopf.Index[str, str],
    view: mitigation.RescueView,
    now: datetime,
) -> mitigation.Facts:
    me = view.ref
    everyone = {ref for key in index for ref in index.get(key, []) if ref != me}
    busy = [ref for ref in index.get(view.target.ref, []) if ref != me]
    stopped = sorted(ref for ref in failed.get(view.target.ref, []) if ref != me)
    return mitigation.Facts(
        now=now,
        mitigating_elsewhere=len(everyone),
        target_busy_with=busy[0] if busy else None,
        automation_stopped_by=stopped[0] if stopped else None,
    )


@kopf.on.event(GROUP, VERSION, RESCUE_PLURAL, registry=registry)
async def count_for_metrics(
    event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Observe, once per rescue, the durations and outcomes its status now records.

    Every watch event is a chance: the first listing after a start catches what a crash left
    uncounted, and the operator's own status writes bring the new facts.
    """
    metrics: telemetry.OperatorMetrics | None = memo.get("metrics")
    if metrics is None or event.get("type") == "DELETED":
        return
    env: ClusterEnvironment = memo["environment"]
    await asyncio.to_thread(telemetry.count, metrics, env.rescues, dict(body))
