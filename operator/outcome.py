"""The vocabulary of the Mitigate step: what it knows of a rescue, what the cluster says, and
what one step of it decides (``Result``), with the few ways a step ends that every part shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rescue.core import forge, git
from rescue.core.incident import format_time
from rescue.core.model import Severity, Target
from rescue.core.policy import Policy

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
    paused_seconds: int = 0  # time spent shelved so far; it does not count against windows

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Facts:
    """What the cluster says, gathered by the handler from its indexes."""

    now: datetime
    mitigating_elsewhere: int = 0  # cluster-wide open (unverified) mitigations of other rescues
    target_busy_with: str | None = None  # another rescue with an open mitigation of this target
    #: An open rescue whose mitigation of this target did not clear its alert: automation stops.
    automation_stopped_by: str | None = None


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


def retry(result: Result, reason: str, message: str, delay: float | None = None) -> Result:
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


def not_applicable(result: Result, reason: str) -> Result:
    result.mitigation.update(state=NOT_APPLICABLE, reason=reason)
    result.say("mitigation_not_applicable", f"No mitigation applies: {reason}.")
    result.done = True
    return result


def hold(result: Result, gate: str, message: str, retry_after: float | None) -> Result:
    if result.mitigation.get("heldBy") != gate:
        result.say(f"gate_held_{gate}", message)
    note_gate(result, gate)
    result.mitigation.update(state=HELD, heldBy=gate, reason=message)
    result.retry_after = retry_after
    return result


def note_gate(result: Result, gate: str) -> None:
    """Remember every gate that ever held this mitigation back, for the gate-hold counter."""
    held = list(result.mitigation.get("gatesHeld") or [])
    if gate not in held:
        result.mitigation["gatesHeld"] = [*held, gate]


def record(result: Result, commit: git.Commit) -> Result:
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
