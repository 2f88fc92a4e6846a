"""The git adapter refuses repository settings that can never be safe, before running git."""

from __future__ import annotations

import pytest

from rescue.core import git


@pytest.mark.parametrize("branch", ["main", "release/2026-12", "rescue/shop/checkout-1a2b"])
def test_ordinary_branch_names_are_accepted(branch: str) -> None:
    git.check_branch(branch)


@pytest.mark.parametrize("branch", ["", "-f", "a..b", "x.lock", "@{-1}", "with space", "a~1"])
def test_branch_names_git_would_refuse_or_expand_are_refused(branch: str) -> None:
    with pytest.raises(git.InvalidRepository):
        git.check_branch(branch)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:token@git.example.org/platform/gitops.git",
        "https://token@git.example.org/platform/gitops.git",
        "--upload-pack=touch /tmp/x",
        "ext::sh -c touch% /tmp/pwned",
    ],
)
def test_urls_with_credentials_or_options_or_odd_schemes_are_refused(url: str) -> None:
    with pytest.raises(git.InvalidRepository):
        git.check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.org/platform/gitops.git",
        "ssh://git@git.example.org/platform/gitops.git",
        "git@github.com:platform/gitops.git",
        "file:///srv/git/gitops.git",
    ],
)
def test_ordinary_urls_are_accepted(url: str) -> None:
    git.check_url(url)


def test_credentials_never_show_in_their_repr() -> None:
    shown = repr(git.Credentials(token="s3cr3t-token", password="pw", ssh_private_key="KEY"))
    assert "s3cr3t" not in shown
    assert "pw'" not in shown
    assert "KEY" not in shown
