"""The GitHub client against a local stand-in for the REST API, backed by a real bare repository.

No forge is reachable from here, so ``forge_standin`` answers the endpoints the client uses and
makes its blobs, trees, commits and refs with git plumbing in a bare repository on disk. Every
assertion about the result is made with plain ``git`` on that repository.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from forge_standin import GitHubStandIn

from rescue.core.forge import (
    BranchUpdate,
    ForgeAuthError,
    ForgeError,
    ForgeRejected,
    ForgeUnavailable,
    GitHub,
    Issue,
    NothingToChange,
    PullRequest,
)

TOKEN = "ghp_" + "standin0123456789abcdefABCDEF"
OWNER, REPO = "acme", "deploy"
HEAD = "rescue/checkout-7f3a"
WEB = "apps/web/deployment.yaml"
API = "apps/api/deployment.yaml"
SEED = {
    WEB: b"kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    "apps/web/service.yaml": b"kind: Service\nmetadata:\n  name: web\n",
    API: b"kind: Deployment\nmetadata:\n  name: api\n",
    "README.md": b"deploy\n",
}
ROLLBACK = b"kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"


def _env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/"),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }


def _run(
    *argv: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, f"git {' '.join(argv)}: {result.stderr}"
    return result


def _in(bare: Path, *argv: str, check: bool = True) -> str:
    return _run("--git-dir", str(bare), *argv, check=check).stdout.strip()


def _sha(bare: Path, ref: str) -> str | None:
    result = _run("--git-dir", str(bare), "show-ref", "--verify", "--hash", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _push_commit(
    bare: Path, work: Path, files: dict[str, bytes], message: str, *, branch: str = "main"
) -> str:
    """Commit ``files`` in the work clone and push it to the bare repository's ``branch``."""
    for name, content in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    _run("add", "--all", cwd=work)
    _run("commit", "--quiet", "-m", message, cwd=work)
    _run("push", "--quiet", f"file://{bare}", f"HEAD:refs/heads/{branch}", cwd=work)
    return _run("rev-parse", "HEAD", cwd=work).stdout.strip()


def _no_token(exc: BaseException) -> None:
    """Neither the error nor anything it was raised from mentions the token."""
    seen: BaseException | None = exc
    while seen is not None:
        assert TOKEN not in str(seen)
        assert TOKEN not in repr(seen)
        seen = seen.__cause__ or seen.__context__


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    _run("init", "--quiet", "-b", "main", str(folder))
    return folder


@pytest.fixture
def bare(tmp_path: Path, work: Path) -> Path:
    """A bare repository whose main holds one commit of four manifests."""
    path = tmp_path / "deploy.git"
    _run("init", "--quiet", "--bare", "-b", "main", str(path))
    _push_commit(path, work, SEED, "Seed the deploy repository")
    return path


@pytest.fixture
def standin(bare: Path) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(bare, owner=OWNER, repo=REPO, token=TOKEN) as running:
        yield running


@pytest.fixture
def github(standin: GitHubStandIn) -> Iterator[GitHub]:
    with GitHub(api_url=standin.api_url, owner=OWNER, repo=REPO, token=TOKEN) as client:
        yield client


def _open(client: GitHub, files: dict[str, bytes | None] | None = None, **kw: str) -> PullRequest:
    args = {
        "base": "main",
        "head": HEAD,
        "message": "Roll web back to 2 replicas\n\nRescue: checkout-7f3a\n",
        "title": "Rescue checkout-7f3a: roll web back",
        "body": "Alert CheckoutErrors fired; this restores the last known good manifests.",
    }
    args.update(kw)
    return client.open_pull_request(files=files if files is not None else {WEB: ROLLBACK}, **args)


# --- opening a pull request ---------------------------------------------------------------


def test_opening_a_pull_request_makes_one_commit_on_a_new_branch_on_top_of_base(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    base = _sha(bare, "refs/heads/main")
    assert base is not None and _sha(bare, f"refs/heads/{HEAD}") is None

    pull = _open(github, {WEB: ROLLBACK, "apps/web/hpa.yaml": b"kind: HorizontalPodAutoscaler\n"})

    assert pull == PullRequest(
        number=1, url=f"{standin.api_url}/{OWNER}/{REPO}/pull/1", head=HEAD, created=True
    )
    head = _sha(bare, f"refs/heads/{HEAD}")
    assert head is not None
    assert _in(bare, "rev-list", f"main..{head}").split() == [head]
    assert _in(bare, "rev-list", "--parents", "-n", "1", head).split() == [head, base]
    assert _in(bare, "diff", "--name-only", "main", head).split() == [
        "apps/web/deployment.yaml",
        "apps/web/hpa.yaml",
    ]
    assert _in(bare, "cat-file", "blob", f"{head}:{WEB}") + "\n" == ROLLBACK.decode()
    assert _in(bare, "log", "-1", "--format=%B", head).startswith("Roll web back to 2 replicas")
    assert _sha(bare, "refs/heads/main") == base  # the base branch is untouched
    assert _in(bare, "fsck", "--strict", "--no-dangling") == ""


def test_the_pull_request_has_the_title_body_head_and_base_given(
    github: GitHub, standin: GitHubStandIn
) -> None:
    _open(github)

    [pull] = standin.pulls
    assert pull["title"] == "Rescue checkout-7f3a: roll web back"
    assert pull["body"].startswith("Alert CheckoutErrors fired")
    assert (pull["head"], pull["base"], pull["state"]) == (HEAD, "main", "open")
    posted = [(m, p) for m, p, status in standin.requests if m != "GET"]
    assert posted == [
        ("POST", f"/repos/{OWNER}/{REPO}/git/trees"),
        ("POST", f"/repos/{OWNER}/{REPO}/git/commits"),
        ("POST", f"/repos/{OWNER}/{REPO}/git/refs"),
        ("POST", f"/repos/{OWNER}/{REPO}/pulls"),
    ]


def test_a_file_mapped_to_none_is_deleted_on_the_branch(github: GitHub, bare: Path) -> None:
    _open(github, {API: None, WEB: ROLLBACK})

    assert _in(bare, "diff", "--name-status", "main", HEAD).splitlines() == [
        f"D\t{API}",
        f"M\t{WEB}",
    ]
    assert _run("--git-dir", str(bare), "cat-file", "-e", f"{HEAD}:{API}", check=False).returncode
    assert _in(bare, "cat-file", "-e", f"main:{API}") == ""


def test_content_that_is_not_utf8_is_sent_as_a_base64_blob(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    binary = b"\xff\xfe\x00\x01 not text\n"
    _open(github, {"apps/web/blob.bin": binary})

    assert ("POST", f"/repos/{OWNER}/{REPO}/git/blobs", 201) in standin.requests
    shown = subprocess.run(
        ["git", "--git-dir", str(bare), "cat-file", "blob", f"{HEAD}:apps/web/blob.bin"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert shown.stdout == binary


def test_opening_again_for_the_same_head_returns_the_open_pull_request_and_commits_nothing(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    first = _open(github)
    head = _sha(bare, f"refs/heads/{HEAD}")
    seen = len(standin.requests)

    again = _open(github, {WEB: b"something else entirely\n"})

    assert again == PullRequest(number=first.number, url=first.url, head=HEAD, created=False)
    assert _sha(bare, f"refs/heads/{HEAD}") == head
    assert [(m, p.split("?")[0]) for m, p, _ in standin.requests[seen:]] == [
        ("GET", f"/repos/{OWNER}/{REPO}/pulls")
    ]
    assert len(standin.pulls) == 1


def test_a_branch_left_by_a_closed_pull_request_is_moved_onto_the_new_base_head(
    github: GitHub, standin: GitHubStandIn, bare: Path, work: Path
) -> None:
    _open(github)
    old = _sha(bare, f"refs/heads/{HEAD}")
    standin.pulls[0]["state"] = "closed"
    moved_base = _push_commit(bare, work, {"README.md": b"deploy, v2\n"}, "Someone else's change")

    pull = _open(github)

    assert (pull.number, pull.created) == (2, True)
    head = _sha(bare, f"refs/heads/{HEAD}")
    assert head not in (None, old)
    assert _in(bare, "rev-list", "--parents", "-n", "1", str(head)).split() == [
        str(head),
        moved_base,
    ]
    assert _in(bare, "diff", "--name-only", "main", str(head)).split() == [WEB]
    assert ("PATCH", f"/repos/{OWNER}/{REPO}/git/refs/heads/{HEAD}", 200) in standin.requests
    assert _sha(bare, "refs/heads/main") == moved_base


def test_a_branch_name_with_url_characters_reaches_the_right_ref(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    head = "rescue/web+fix#2%20&x=y;z"
    standin.pulls.append(
        {
            "number": 1,
            "head": head,
            "base": "main",
            "title": "old",
            "body": "",
            "state": "closed",
            "html_url": f"{standin.api_url}/{OWNER}/{REPO}/pull/1",
        }
    )
    _run("--git-dir", str(bare), "update-ref", f"refs/heads/{head}", "main")

    pull = _open(github, head=head)

    assert (pull.number, pull.head, pull.created) == (2, head, True)
    assert _in(bare, "diff", "--name-only", "main", f"refs/heads/{head}").split() == [WEB]
    assert [s for m, _, s in standin.requests if m == "PATCH"] == [200]
    assert _open(github, head=head) == PullRequest(pull.number, pull.url, head, created=False)


def test_a_change_that_changes_nothing_is_refused_and_leaves_no_branch(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    with pytest.raises(NothingToChange) as caught:
        _open(github, {WEB: SEED[WEB]})

    assert caught.value.status == 0
    assert _sha(bare, f"refs/heads/{HEAD}") is None
    assert standin.pulls == []
    assert not any(p.endswith("/git/commits") for m, p, _ in standin.requests if m == "POST")


def test_a_concurrent_writer_that_opens_the_pull_request_first_wins(
    standin: GitHubStandIn, bare: Path
) -> None:
    other = GitHub(api_url=standin.api_url, owner=OWNER, repo=REPO, token=TOKEN)

    class Interleave(httpx.BaseTransport):
        """Lets the other writer open its pull request just before ours is asked for."""

        def __init__(self, before: Callable[[], object]) -> None:
            self.inner = httpx.HTTPTransport()
            self.before: Callable[[], object] | None = before

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/pulls") and self.before:
                before, self.before = self.before, None
                before()
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    transport = Interleave(lambda: _open(other))
    with (
        other,
        GitHub(
            api_url=standin.api_url, owner=OWNER, repo=REPO, token=TOKEN, transport=transport
        ) as client,
    ):
        pull = _open(client)

    assert (pull.number, pull.created) == (1, False)
    assert len(standin.pulls) == 1
    assert ("POST", f"/repos/{OWNER}/{REPO}/pulls", 422) in standin.requests
    assert _in(bare, "diff", "--name-only", "main", HEAD).split() == [WEB]


# --- refusals before any request -----------------------------------------------------------


@pytest.mark.parametrize(
    "head", ["bad..name", "-rescue", "has space", "x.lock", "a~1", "", "a@{b", "@{-1}"]
)
def test_an_invalid_head_branch_name_is_refused_before_any_request(
    github: GitHub, standin: GitHubStandIn, head: str
) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _open(github, head=head)

    assert caught.value.status == 0
    assert standin.requests == []


def test_a_previous_branch_shorthand_is_refused_even_where_git_would_expand_it(
    github: GitHub, standin: GitHubStandIn, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a repository that switched branches, check-ref-format --branch @{-1} says yes and
    # prints the earlier branch's name.
    _run("checkout", "--quiet", "-b", "earlier", cwd=work)
    _run("checkout", "--quiet", "main", cwd=work)
    monkeypatch.chdir(work)

    with pytest.raises(ForgeRejected) as caught:
        _open(github, head="@{-1}")

    assert caught.value.status == 0
    assert standin.requests == []


def test_the_base_branch_is_never_the_head(github: GitHub, standin: GitHubStandIn) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _open(github, head="main")

    assert caught.value.status == 0
    assert standin.requests == []


@pytest.mark.parametrize("path", ["../etc/passwd", "/apps/web.yaml", ".git/config", "a//b", ""])
def test_a_path_outside_the_repository_is_refused_before_any_request(
    github: GitHub, standin: GitHubStandIn, path: str
) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _open(github, {path: b"x\n"})

    assert caught.value.status == 0
    assert standin.requests == []


# --- errors ------------------------------------------------------------------------------


def test_a_wrong_token_is_an_authentication_error(standin: GitHubStandIn, bare: Path) -> None:
    with (
        GitHub(api_url=standin.api_url, owner=OWNER, repo=REPO, token="ghp_wrong") as client,
        pytest.raises(ForgeAuthError) as caught,
    ):
        _open(client)

    assert "401" in str(caught.value)
    assert "ghp_wrong" not in str(caught.value)
    assert [status for _, _, status in standin.requests] == [401]
    assert _sha(bare, f"refs/heads/{HEAD}") is None


def test_a_503_is_unavailable_and_a_later_attempt_succeeds(
    github: GitHub, standin: GitHubStandIn
) -> None:
    standin.fail_next(503, method="POST", path="/git/trees")

    with pytest.raises(ForgeUnavailable) as caught:
        _open(github)
    _no_token(caught.value)
    assert "503" in str(caught.value)
    assert caught.value.retry_after is None

    assert _open(github).created


def test_a_429_is_unavailable_with_the_wait_github_asked_for(
    github: GitHub, standin: GitHubStandIn
) -> None:
    standin.fail_next(429, headers={"Retry-After": "7"})

    with pytest.raises(ForgeUnavailable) as caught:
        _open(github)

    assert caught.value.retry_after == 7.0
    _no_token(caught.value)


def test_an_exhausted_rate_limit_answered_with_403_is_a_wait_not_an_auth_error(
    github: GitHub, standin: GitHubStandIn
) -> None:
    reset = int(time.time()) + 60
    standin.fail_next(403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})

    with pytest.raises(ForgeUnavailable) as caught:
        _open(github)

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 61


def test_a_secondary_rate_limit_answered_with_403_is_a_wait() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "You have exceeded a secondary rate limit."})

    with (
        GitHub(
            api_url="https://github.invalid/api/v3",
            owner=OWNER,
            repo=REPO,
            token=TOKEN,
            transport=httpx.MockTransport(answer),
        ) as client,
        pytest.raises(ForgeUnavailable) as caught,
    ):
        _open(client)

    assert caught.value.retry_after is None
    assert "secondary rate limit" in str(caught.value)


def test_a_plain_403_is_an_authentication_error(github: GitHub, standin: GitHubStandIn) -> None:
    standin.fail_next(403)

    with pytest.raises(ForgeAuthError) as caught:
        _open(github)

    _no_token(caught.value)


def test_a_422_on_opening_the_pull_request_is_rejected_and_a_retry_reuses_the_branch(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    standin.fail_next(422, method="POST", path="/pulls")

    with pytest.raises(ForgeRejected) as caught:
        _open(github)
    assert caught.value.status == 422
    _no_token(caught.value)
    assert standin.pulls == []
    assert _sha(bare, f"refs/heads/{HEAD}") is not None  # the branch was made before

    pull = _open(github)
    assert (pull.number, pull.created) == (1, True)
    assert ("POST", f"/repos/{OWNER}/{REPO}/git/refs", 422) in standin.requests
    assert _in(bare, "rev-list", f"main..{HEAD}").count("\n") == 0  # still one commit


def test_a_missing_base_branch_is_rejected_as_not_found(github: GitHub, bare: Path) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _open(github, base="release")

    assert caught.value.status == 404
    assert "Not Found" in str(caught.value)
    assert _sha(bare, f"refs/heads/{HEAD}") is None


def test_a_forge_that_cannot_be_reached_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        GitHub(api_url=f"http://127.0.0.1:{port}", owner=OWNER, repo=REPO, token=TOKEN) as client,
        pytest.raises(ForgeUnavailable) as caught,
    ):
        _open(client)

    _no_token(caught.value)


def test_a_token_echoed_by_the_forge_is_redacted_from_the_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        said = f"token {request.headers['Authorization'].split()[-1]} is not allowed here"
        return httpx.Response(422, json={"message": said})

    with (
        GitHub(
            api_url="https://github.invalid/api/v3",
            owner=OWNER,
            repo=REPO,
            token=TOKEN,
            transport=httpx.MockTransport(answer),
        ) as client,
        pytest.raises(ForgeRejected) as caught,
    ):
        _open(client)

    _no_token(caught.value)
    assert "token *** is not allowed here" in str(caught.value)


def test_the_token_appears_in_no_error_and_no_representation(
    standin: GitHubStandIn, github: GitHub
) -> None:
    errors: list[ForgeError] = []
    for status in (401, 403, 404, 409, 422, 429, 500, 503):
        standin.fail_next(status)
        with pytest.raises(ForgeError) as caught:
            _open(github)
        errors.append(caught.value)
    for error in errors:
        _no_token(error)
    assert TOKEN not in repr(github)
    assert TOKEN not in repr(standin)


# --- from a repository URL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "api_url", "owner", "repo"),
    [
        ("https://github.com/acme/deploy.git", "https://api.github.com", "acme", "deploy"),
        ("https://github.com/acme/deploy", "https://api.github.com", "acme", "deploy"),
        ("https://github.com/acme/deploy/", "https://api.github.com", "acme", "deploy"),
        ("git@github.com:acme/deploy.git", "https://api.github.com", "acme", "deploy"),
        (
            "https://git.corp.example/ops/gitops.git",
            "https://git.corp.example/api/v3",
            "ops",
            "gitops",
        ),
        ("https://git.corp.example/ops/gitops", "https://git.corp.example/api/v3", "ops", "gitops"),
        (
            "ssh://git@git.corp.example:2222/ops/gitops.git",
            "https://git.corp.example/api/v3",
            "ops",
            "gitops",
        ),
        ("https://acme.ghe.com/ops/gitops.git", "https://api.acme.ghe.com", "ops", "gitops"),
    ],
)
def test_a_repository_url_maps_to_its_api(url: str, api_url: str, owner: str, repo: str) -> None:
    with GitHub.from_repository_url(url, token=TOKEN) as client:
        assert (client.api_url, client.owner, client.repo) == (api_url, owner, repo)


def test_an_explicit_api_url_overrides_the_guess() -> None:
    with GitHub.from_repository_url(
        "https://git.corp.example/ops/gitops.git", token=TOKEN, api_url="https://api.corp.example/"
    ) as client:
        assert (client.api_url, client.owner, client.repo) == (
            "https://api.corp.example",
            "ops",
            "gitops",
        )


@pytest.mark.parametrize(
    "url",
    [
        f"https://x-access-token:{TOKEN}@github.com/acme/deploy.git",
        "https://github.com/acme",
        "https://github.com/acme/deploy/tree/main",
        "file:///srv/git/deploy.git",
        "https://github.com/acme/../deploy",
    ],
)
def test_a_url_that_names_no_single_repository_is_refused(url: str) -> None:
    with pytest.raises(ForgeRejected) as caught:
        GitHub.from_repository_url(url, token=TOKEN)

    assert caught.value.status == 0
    _no_token(caught.value)


# --- moving an open pull request's branch forward ------------------------------------------

REVIEW = "postmortems/shop/checkout-7f3a.md"


def _update(client: GitHub, content: bytes, **kw: str) -> BranchUpdate:
    args = {"base": "main", "branch": HEAD, "message": "Review: add the lessons\n"}
    args.update(kw)
    return client.update_branch(files={REVIEW: content}, **args)


def test_an_update_adds_one_commit_on_top_of_the_branch_and_leaves_base_alone(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    _open(github, {REVIEW: b"## Incident\n"})
    before = _sha(bare, f"refs/heads/{HEAD}")
    base = _sha(bare, "refs/heads/main")

    update = _update(github, b"## Incident\n\n### Lessons Learned\nCanary first.\n")

    assert update.changed
    assert update.sha == _sha(bare, f"refs/heads/{HEAD}")
    assert _in(bare, "rev-list", "--parents", "-n", "1", update.sha).split() == [update.sha, before]
    assert "Canary first." in _in(bare, "cat-file", "blob", f"{update.sha}:{REVIEW}")
    assert _sha(bare, "refs/heads/main") == base
    assert len(standin.pulls) == 1
    moved = [(m, p) for m, p, _ in standin.requests if m == "PATCH"]
    assert moved == [("PATCH", f"/repos/{OWNER}/{REPO}/git/refs/heads/{HEAD}")]


def test_an_update_that_changes_nothing_makes_no_commit(
    github: GitHub, standin: GitHubStandIn, bare: Path
) -> None:
    _open(github, {REVIEW: b"## Incident\n"})
    head = _sha(bare, f"refs/heads/{HEAD}")
    seen = len(standin.requests)

    update = _update(github, b"## Incident\n")

    assert update == BranchUpdate(sha=str(head), changed=False)
    assert [m for m, _, _ in standin.requests[seen:]] == ["GET", "GET", "POST"]  # ref, commit, tree


def test_a_branch_moved_by_someone_else_meanwhile_is_built_on_not_overwritten(
    standin: GitHubStandIn, bare: Path, work: Path
) -> None:
    with GitHub(api_url=standin.api_url, owner=OWNER, repo=REPO, token=TOKEN) as first:
        _open(first, {REVIEW: b"## Incident\n"})
    theirs: list[str] = []

    def someone_pushes() -> None:
        _run("fetch", "--quiet", f"file://{bare}", f"refs/heads/{HEAD}", cwd=work)
        _run("checkout", "--quiet", "FETCH_HEAD", cwd=work)
        notes = {"NOTES.md": b"reviewer notes\n"}
        theirs.append(_push_commit(bare, work, notes, "Reviewer notes", branch=HEAD))

    class Interleave(httpx.BaseTransport):
        """Lets a person push to the branch just before our first move of it."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()
            self.pending = True

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "PATCH" and self.pending:
                self.pending = False
                someone_pushes()
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    with GitHub(
        api_url=standin.api_url, owner=OWNER, repo=REPO, token=TOKEN, transport=Interleave()
    ) as client:
        update = _update(client, b"## Incident\n\nLessons.\n")

    assert update.changed
    assert _in(bare, "rev-parse", f"{update.sha}^") == theirs[0]
    assert _in(bare, "cat-file", "blob", f"{update.sha}:NOTES.md") == "reviewer notes"
    statuses = [s for m, _, s in standin.requests if m == "PATCH"]
    assert statuses == [422, 200]  # refused as not a fast-forward, then built on their head


def test_the_base_branch_is_never_updated(github: GitHub, standin: GitHubStandIn) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _update(github, b"x\n", branch="main")
    assert caught.value.status == 0
    assert standin.requests == []


def test_updating_a_branch_that_does_not_exist_is_rejected_as_not_found(github: GitHub) -> None:
    with pytest.raises(ForgeRejected) as caught:
        _update(github, b"x\n", branch="rescue-review/none/such")
    assert caught.value.status == 404


def test_head_of_names_a_branch_head_or_none(github: GitHub, bare: Path) -> None:
    assert github.head_of("main") == _sha(bare, "refs/heads/main")
    assert github.head_of("no-such-branch") is None


# --- issues ----------------------------------------------------------------------------------

MARKER = "<!-- rescue: shop/checkout-7f3a -->"


def _issue(client: GitHub, labels: list[str] | None = None) -> Issue:
    return client.open_issue(
        title="Rescue findings for design: checkout",
        body="Root cause: connection leak.",
        labels=["rescue", "design"] if labels is None else labels,
        marker=MARKER,
    )


def test_an_issue_is_opened_with_its_labels_and_the_marker_as_last_line(
    github: GitHub, standin: GitHubStandIn
) -> None:
    issue = _issue(github)

    assert issue == Issue(number=1, url=f"{standin.api_url}/{OWNER}/{REPO}/issues/1", created=True)
    [stored] = standin.issues
    assert stored["labels"] == ["rescue", "design"]
    assert stored["body"].splitlines()[0] == "Root cause: connection leak."
    assert stored["body"].rstrip().splitlines()[-1] == MARKER
    searched = [p for m, p, _ in standin.requests if m == "GET"]
    assert searched[0].startswith(f"/repos/{OWNER}/{REPO}/issues?")
    assert "state=all" in searched[0] and "labels=rescue" in searched[0]


def test_opening_the_issue_again_finds_it_by_its_marker(
    github: GitHub, standin: GitHubStandIn
) -> None:
    first = _issue(github)
    seen = len(standin.requests)

    again = _issue(github)

    assert (again.number, again.url, again.created) == (first.number, first.url, False)
    assert len(standin.issues) == 1
    assert [m for m, _, _ in standin.requests[seen:]] == ["GET"]


def test_a_pull_request_carrying_the_marker_is_not_taken_for_the_issue(
    github: GitHub, standin: GitHubStandIn
) -> None:
    _open(github, body=f"Quotes the findings.\n{MARKER}\n")

    issue = _issue(github, labels=[])

    assert (issue.number, issue.created) == (2, True)  # one sequence for pulls and issues
    assert len(standin.issues) == 1


def test_an_issue_whose_labels_were_dropped_is_still_found(
    github: GitHub, standin: GitHubStandIn
) -> None:
    # GitHub drops the labels of a token without push access: the issue has none.
    standin.issues.append(
        {
            "number": 1,
            "title": "Rescue findings",
            "body": f"Earlier attempt.\n\n{MARKER}\n",
            "labels": [],
            "state": "closed",
            "created_at": "2026-12-03T10:00:00Z",
        }
    )

    issue = _issue(github)

    assert (issue.number, issue.created) == (1, False)
    assert len(standin.issues) == 1


def test_the_search_pages_through_older_issues(github: GitHub, standin: GitHubStandIn) -> None:
    for number in range(1, 151):
        standin.issues.append(
            {
                "number": number,
                "title": f"Issue {number}",
                "body": f"Body {number}\n{MARKER if number == 3 else ''}",
                "labels": ["rescue"],
                "state": "open",
                "created_at": "2026-12-03T10:00:00Z",
            }
        )

    issue = _issue(github, labels=["rescue"])

    assert (issue.number, issue.created) == (3, False)
    pages = [p for m, p, _ in standin.requests if m == "GET"]
    assert len(pages) == 2 and "page=2" in pages[1]


def test_a_forge_failing_while_searching_opens_no_issue(
    github: GitHub, standin: GitHubStandIn
) -> None:
    standin.fail_next(502, method="GET", path="/issues")

    with pytest.raises(ForgeUnavailable):
        _issue(github)
    assert standin.issues == []


@pytest.mark.parametrize("marker", ["", "two\nlines"])
def test_an_unusable_marker_is_refused_before_any_request(
    github: GitHub, standin: GitHubStandIn, marker: str
) -> None:
    with pytest.raises(ForgeRejected):
        github.open_issue(title="t", body="b", labels=[], marker=marker)
    assert standin.requests == []
