"""The operator's cached clone over smart HTTP: finding a rescue's own commit by its trailer in
a history with look-alikes, and the commit-graph that keeps path walks fast.

The operator never commits twice for one rescue because it finds the commit it (or a peer, or
its previous life) already pushed; the first test is the search it relies on.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rescue.core import git
from rescue.gitserver import GitServer
from rescue.sample import WorkClone

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _cached(url: str, token: str, tmp_path: Path) -> git.Repository:
    """The operator's view of the remote: a cached bare clone of its main branch."""
    return git.Repository(
        url,
        "main",
        cache_root=tmp_path / "cache",
        credentials=git.Credentials(token=token, username="git"),
    )


def test_with_trailer_finds_the_newest_exact_trailer_since_the_date_and_nothing_else(
    git_server: GitServer, git_token: str, tmp_path: Path
) -> None:
    git_server.create_repo("trailers")
    url = git_server.repo_url("trailers")
    work = WorkClone(url, token=git_token, path=tmp_path / "work")
    work.commit("Old rollback\n\nRescue: shop/api-1", when=START - timedelta(days=30))
    for n in range(50):
        work.commit(f"Deploy {n}", when=START - timedelta(days=29) + timedelta(minutes=n))
    mention = work.commit(
        "Note\n\nThe text says Rescue: shop/api-1 in passing, not as a trailer.\n",
        when=START + timedelta(minutes=1),
    )
    longer = work.commit("Rollback\n\nRescue: shop/api-10", when=START + timedelta(minutes=2))
    ours = work.commit("Rollback\n\nRescue: shop/api-1", when=START + timedelta(minutes=3))
    work.commit("Release\n\nRescue-Release: shop/api-1", when=START + timedelta(minutes=4))
    work.push()

    repo = _cached(url, git_token, tmp_path)
    with repo.locked():
        repo.fetch()

    found = repo.with_trailer("Rescue", "shop/api-1", since=START - timedelta(hours=1))
    assert found is not None and found.sha == ours
    assert found.sha not in (mention, longer)
    other = repo.with_trailer("Rescue", "shop/api-10", since=START)
    assert other is not None and other.sha == longer
    assert repo.with_trailer("Rescue-Release", "shop/api-1", since=START) is not None
    # Dated before the date asked for: not looked at, so not found.
    assert repo.with_trailer("Rescue", "shop/api-1", since=START + timedelta(minutes=5)) is None
    assert repo.with_trailer("Rescue", "shop/api-2", since=START - timedelta(days=60)) is None


def test_the_commit_graph_is_written_by_a_fetch_and_refreshed_only_once_it_is_stale(
    git_server: GitServer, git_token: str, tmp_path: Path
) -> None:
    git_server.create_repo("graph")
    url = git_server.repo_url("graph")
    work = WorkClone(url, token=git_token, path=tmp_path / "work")
    work.commit("First")
    work.push()
    repo = _cached(url, git_token, tmp_path)
    graphs = repo.dir / "objects" / "info" / "commit-graphs"

    def layers() -> list[str]:
        return sorted(p.name for p in graphs.glob("graph-*.graph"))

    with repo.locked():
        repo.fetch()
    written = layers()
    assert written, "the first fetch writes a commit-graph"

    work.commit("Second")
    work.push()
    with repo.locked():
        head = repo.fetch()
    assert layers() == written, "a fetch within GRAPH_REFRESH leaves the graph as it is"
    assert head == work.git("rev-parse", "HEAD").strip()

    stale = time.time() - git.GRAPH_REFRESH - 1
    os.utime(graphs / "commit-graph-chain", (stale, stale))
    work.commit("Third")
    work.push()
    with repo.locked():
        repo.fetch()
    assert layers() != written, "a fetch after GRAPH_REFRESH writes the new commits in"
