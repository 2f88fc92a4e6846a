"""Choosing the suspect commit and the last known good state from the Git history alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rescue.core.git import Commit
from rescue.operator.lkg import (
    TRAILER_RESCUE,
    TRAILER_ROLLBACK_TO,
    TRAILER_ROLLS_BACK,
    Choice,
    choose,
)

START = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
PATH = "apps/shop/checkout"


def _sha(label: str) -> str:
    """A 40-character hex sha that is easy to tell apart in a failure message."""
    return (label.encode().hex() * 40)[:40]


def _commit(
    label: str,
    at: datetime,
    *,
    parents: tuple[str, ...] | None = None,
    trailers: dict[str, str] | None = None,
    subject: str = "",
) -> Commit:
    return Commit(
        sha=_sha(label),
        parents=(_sha(f"{label}-parent"),) if parents is None else parents,
        committed=at,
        author="Dev <dev@example.com>",
        subject=subject or f"deploy {label}",
        trailers={k.lower(): (v,) for k, v in (trailers or {}).items()},
    )


def _choose(history: list[Commit], lookback: timedelta = WEEK) -> Choice:
    return choose(history, incident_start=START, lookback=lookback, path=PATH)


def test_latest_commit_before_the_incident_is_the_suspect_and_its_parent_the_lkg() -> None:
    newest = _commit("new", START - timedelta(minutes=10))
    older = _commit("old", START - timedelta(days=1))
    choice = _choose([newest, older])
    assert choice.suspect == newest
    assert choice.lkg == _sha("new-parent")


def test_the_lkg_of_a_merge_suspect_is_its_first_parent() -> None:
    merge = _commit("merge", START - timedelta(hours=1), parents=(_sha("main"), _sha("topic")))
    assert _choose([merge]).lkg == _sha("main")


def test_commits_after_the_incident_began_are_not_suspects() -> None:
    after = _commit("after", START + timedelta(minutes=1))
    before = _commit("before", START - timedelta(minutes=30))
    choice = _choose([after, before])
    assert choice.suspect == before
    assert choice.lkg == _sha("before-parent")


def test_rescue_commits_are_not_suspects() -> None:
    rescue = _commit(
        "rescue", START - timedelta(minutes=5), trailers={TRAILER_RESCUE: "shop/earlier"}
    )
    deploy = _commit("deploy", START - timedelta(hours=2))
    choice = _choose([rescue, deploy])
    assert choice.suspect == deploy


def test_a_change_an_earlier_rescue_rolled_back_is_not_a_suspect() -> None:
    bad = _sha("bad")
    rollback = _commit(
        "rollback",
        START - timedelta(hours=1),
        trailers={
            TRAILER_RESCUE: "shop/earlier",
            TRAILER_ROLLBACK_TO: _sha("good"),
            TRAILER_ROLLS_BACK: bad,
        },
    )
    rolled_back = _commit("bad", START - timedelta(hours=2))
    good = _commit("good", START - timedelta(hours=3))
    choice = _choose([rollback, rolled_back, good])
    assert choice.suspect == good
    assert choice.lkg == _sha("good-parent")


def test_a_change_rolled_back_after_the_incident_began_is_not_a_suspect_either() -> None:
    rollback = _commit(
        "rollback",
        START + timedelta(minutes=3),
        trailers={TRAILER_RESCUE: "shop/other", TRAILER_ROLLS_BACK: _sha("bad")},
    )
    rolled_back = _commit("bad", START - timedelta(minutes=20))
    good = _commit("good", START - timedelta(hours=3))
    assert _choose([rollback, rolled_back, good]).suspect == good


def test_the_reason_names_the_suspect_its_subject_author_path_and_incident_start() -> None:
    suspect = _commit("new", START - timedelta(minutes=10), subject="bump checkout to v2")
    reason = _choose([suspect]).reason
    assert suspect.short in reason
    assert "'bump checkout to v2'" in reason
    assert "Dev <dev@example.com>" in reason
    assert PATH in reason
    assert "2026-12-03 10:00:00 UTC" in reason


def test_an_empty_history_has_no_deploy_regression_to_roll_back() -> None:
    choice = _choose([])
    assert (choice.suspect, choice.lkg) == (None, None)
    assert "no deploy regression to roll back" in choice.reason
    assert PATH in choice.reason


def test_nothing_within_the_lookback_means_no_deploy_regression_to_roll_back() -> None:
    ancient = _commit("ancient", START - timedelta(days=8))
    choice = _choose([ancient])
    assert (choice.suspect, choice.lkg) == (None, None)
    assert "no deploy regression to roll back" in choice.reason
    assert "7 day(s)" in choice.reason


def test_a_shorter_lookback_leaves_an_older_change_out() -> None:
    yesterday = _commit("yesterday", START - timedelta(days=1))
    assert _choose([yesterday], lookback=timedelta(days=2)).suspect == yesterday
    assert _choose([yesterday], lookback=timedelta(hours=12)).suspect is None


def test_only_commits_after_the_incident_mean_no_deploy_regression_to_roll_back() -> None:
    choice = _choose([_commit("after", START + timedelta(minutes=1))])
    assert (choice.suspect, choice.lkg) == (None, None)
    assert "no deploy regression to roll back" in choice.reason


def test_only_rescue_commits_mean_no_deploy_regression_to_roll_back() -> None:
    rescue = _commit("rescue", START - timedelta(hours=1), trailers={TRAILER_RESCUE: "shop/r"})
    choice = _choose([rescue])
    assert (choice.suspect, choice.lkg) == (None, None)
    assert "no deploy regression to roll back" in choice.reason


def test_a_root_commit_as_suspect_has_no_lkg_and_says_why() -> None:
    root = _commit("root", START - timedelta(hours=1), parents=())
    choice = _choose([root])
    assert choice.suspect == root
    assert choice.lkg is None
    assert root.short in choice.reason
    assert "no earlier state" in choice.reason
