"""Choosing the last known good state of a target, and saying why, from the Git history alone.

The suspect is the most recent change to the target's folder that landed before the incident
began (and within the policy's look-back), skipping commits Rescue made itself and changes that
an earlier rescue already rolled back: rolling those back again would undo a rescue, not a
deploy. The last known good state is the folder as it was just before the suspect. When there is
no suspect there is no deploy regression to roll back, and the operator says so instead of
acting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rescue.core.git import Commit

TRAILER_RESCUE = "Rescue"
TRAILER_FINGERPRINT = "Alert-Fingerprint"
TRAILER_ROLLBACK_TO = "Rollback-To"
TRAILER_ROLLS_BACK = "Rolls-Back"


@dataclass(frozen=True)
class Choice:
    """A decision about what to roll back to; ``lkg`` is None when nothing should be done."""

    suspect: Commit | None
    lkg: str | None
    reason: str


def choose(
    history: Sequence[Commit],
    *,
    incident_start: datetime,
    lookback: timedelta,
    path: str,
) -> Choice:
    """Pick the suspect commit and the state before it; ``history`` is newest first."""
    rolled_back = {c.trailer(TRAILER_ROLLS_BACK) for c in history} - {None}
    earliest = incident_start - lookback
    for commit in history:
        if commit.committed > incident_start:
            continue  # landed after the incident began: not its cause
        if commit.committed < earliest:
            break
        if commit.trailer(TRAILER_RESCUE):
            continue
        if commit.sha in rolled_back:
            continue
        if not commit.parents:
            return Choice(
                commit,
                None,
                f"the only change before the incident, {commit.short}, created {path}; "
                "there is no earlier state to return to",
            )
        return Choice(
            commit,
            commit.parents[0],
            f"{commit.short} ({commit.subject!r} by {commit.author}) is the last change to "
            f"{path} before the incident began at {incident_start:%Y-%m-%d %H:%M:%S} UTC",
        )
    days = lookback.total_seconds() / 86400
    return Choice(
        None,
        None,
        f"no deploy regression to roll back: nothing changed {path} in the "
        f"{days:g} day(s) before the incident began",
    )
