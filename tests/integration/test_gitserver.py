"""The local git forge: real git clients against git http-backend over HTTP, with a token.

No cluster: every test talks to its own server on 127.0.0.1 with the git program a user has.
Credentials travel the way they do for a real forge, in headers from git's configuration or a
credential helper, never in the URL.
"""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rescue.gitserver import GitServer

TOKEN = "t0k3n-" + "a1b2c3d4e5f6"


def _git_env(home: Path, config: dict[str, str] | None = None) -> dict[str, str]:
    """A git client that knows nothing but what the test gives it (no prompts, no helpers)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    items = list((config or {}).items())
    env["GIT_CONFIG_COUNT"] = str(len(items))
    for index, (key, value) in enumerate(items):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"http.extraHeader": f"Authorization: Basic {encoded}"}


def _git(
    env: dict[str, str], *argv: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["git", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"git {' '.join(argv)}: {result.stderr}"
    return result


def _commit(env: dict[str, str], work: Path, name: str, content: bytes, message: str) -> str:
    (work / name).write_bytes(content)
    _git(env, "add", name, cwd=work)
    _git(env, "commit", "--quiet", "-m", message, cwd=work)
    return _git(env, "rev-parse", "HEAD", cwd=work).stdout.strip()


def _bare_log(repo: Path, ref: str = "main") -> list[str]:
    result = subprocess.run(
        ["git", f"--git-dir={repo}", "log", "--format=%s", ref],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.splitlines() if result.returncode == 0 else []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "forge", token=TOKEN) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def authed(home: Path) -> dict[str, str]:
    return _git_env(home, _basic("git", TOKEN))


@pytest.fixture
def seeded(server: GitServer, authed: dict[str, str], tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository "deploy" with one commit on main, and a clone of it (bare, work)."""
    bare = server.create_repo("deploy")
    work = tmp_path / "work"
    _git(authed, "clone", "--quiet", server.repo_url("deploy"), str(work))
    _commit(authed, work, "README", b"deploy\n", "first")
    _git(authed, "push", "--quiet", "origin", "main", cwd=work)
    return bare, work


def test_clone_commit_and_push_land_in_the_bare_repository(
    server: GitServer, authed: dict[str, str], tmp_path: Path
) -> None:
    bare = server.create_repo("deploy")
    assert bare == server.root / "deploy.git"
    assert server.repo_url("deploy") == f"{server.url}/deploy.git"
    assert server.url.startswith("http://127.0.0.1:")

    work = tmp_path / "work"
    _git(authed, "clone", "--quiet", server.repo_url("deploy"), str(work))
    assert TOKEN not in (work / ".git" / "config").read_text()
    _commit(authed, work, "replicas.yaml", b"replicas: 3\n", "Scale checkout to 3")
    _git(authed, "push", "origin", "main", cwd=work)

    assert _bare_log(bare) == ["Scale checkout to 3"]
    assert ("POST", "/deploy.git/git-receive-pack", 200) in server.requests
    assert all(TOKEN not in path for _, path, _ in server.requests)


def test_fetch_sees_a_commit_pushed_from_another_clone(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], tmp_path: Path
) -> None:
    _, work = seeded
    other = tmp_path / "other"
    _git(authed, "clone", "--quiet", server.repo_url("deploy"), str(other))
    _commit(authed, other, "README", b"changed\n", "second")
    _git(authed, "push", "--quiet", "origin", "main", cwd=other)

    _git(authed, "pull", "--quiet", "--ff-only", cwd=work)
    assert (work / "README").read_bytes() == b"changed\n"


def test_a_bearer_token_is_accepted(
    server: GitServer, seeded: tuple[Path, Path], home: Path, tmp_path: Path
) -> None:
    env = _git_env(home, {"http.extraHeader": f"Authorization: Bearer {TOKEN}"})
    work = tmp_path / "bearer"
    _git(env, "clone", "--quiet", server.repo_url("deploy"), str(work))
    _commit(env, work, "bearer.txt", b"yes\n", "pushed with a bearer token")
    _git(env, "push", "--quiet", "origin", "main", cwd=work)
    assert _bare_log(seeded[0])[0] == "pushed with a bearer token"


def test_a_push_without_credentials_fails_with_an_authentication_error(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], home: Path
) -> None:
    bare, work = seeded
    _commit(authed, work, "x.txt", b"x\n", "should not land")
    anonymous = _git_env(home)
    result = _git(anonymous, "push", "origin", "main", cwd=work, check=False)

    assert result.returncode != 0
    # git got a 401 and, with prompts disabled and no helper, had nothing to answer it with.
    assert "could not read Username" in result.stderr
    assert ("GET", "/deploy.git/info/refs?service=git-receive-pack", 401) in server.requests
    assert _bare_log(bare) == ["first"]


def test_a_wrong_token_from_a_credential_helper_fails_authentication(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], home: Path
) -> None:
    bare, work = seeded
    _commit(authed, work, "x.txt", b"x\n", "should not land")
    store = home / "credentials"
    store.write_text(server.url.replace("http://", "http://git:wrong-token@") + "\n")
    env = _git_env(home, {"credential.helper": f"store --file={store}"})
    result = _git(env, "push", "origin", "main", cwd=work, check=False)

    assert result.returncode != 0
    assert "Authentication failed" in result.stderr
    assert _bare_log(bare) == ["first"]


def test_a_wrong_token_in_a_header_fails_and_the_right_one_then_works(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], home: Path
) -> None:
    bare, work = seeded
    _commit(authed, work, "x.txt", b"x\n", "lands only with the right token")
    for wrong in (_basic("git", "nope"), {"http.extraHeader": "Authorization: Bearer nope"}):
        result = _git(_git_env(home, wrong), "push", "origin", "main", cwd=work, check=False)
        assert result.returncode != 0
        assert _bare_log(bare) == ["first"]
    assert ("GET", "/deploy.git/info/refs?service=git-receive-pack", 401) in server.requests

    _git(authed, "push", "--quiet", "origin", "main", cwd=work)
    assert _bare_log(bare) == ["lands only with the right token", "first"]


def test_an_unauthenticated_request_gets_401_with_a_basic_challenge(server: GitServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/deploy.git/info/refs?service=git-upload-pack")
        response = connection.getresponse()
        response.read()
        assert response.status == 401
        assert response.getheader("WWW-Authenticate") == 'Basic realm="rescue-git"'
    finally:
        connection.close()


def test_one_connection_carries_chunked_and_sized_responses_and_a_chunked_request(
    server: GitServer, seeded: tuple[Path, Path]
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    auth = {"Authorization": "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # Smart HTTP: http-backend streams, so the answer is chunked.
        connection.request("GET", "/deploy.git/info/refs?service=git-upload-pack", headers=auth)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert b"refs/heads/main" in response.read()
        first_socket = connection.sock

        # A file http-backend serves as is: it says the length, and the connection stays open.
        connection.request("GET", "/deploy.git/HEAD", headers=auth)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(len(b"ref: refs/heads/main\n"))
        assert response.read() == b"ref: refs/heads/main\n"

        # Protocol v2 ls-refs with the body sent in chunks, as git sends large requests.
        pieces = iter([b"0014command=ls-refs\n", b"0000"])
        connection.request(
            "POST",
            "/deploy.git/git-upload-pack",
            body=pieces,
            headers={
                **auth,
                "Content-Type": "application/x-git-upload-pack-request",
                "Git-Protocol": "version=2",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.read().endswith(b" refs/heads/main\n0000")
        assert connection.sock is first_socket
    finally:
        connection.close()


def test_rejecting_pushes_fails_a_push_while_fetch_still_works(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str]
) -> None:
    bare, work = seeded
    _commit(authed, work, "x.txt", b"x\n", "refused")
    server.reject_pushes(True)

    result = _git(authed, "push", "origin", "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "503" in result.stderr
    assert _bare_log(bare) == ["first"]
    _git(authed, "fetch", "origin", cwd=work)
    assert ("POST", "/deploy.git/git-upload-pack", 200) in server.requests

    server.reject_pushes(False)
    _git(authed, "push", "--quiet", "origin", "main", cwd=work)
    assert _bare_log(bare) == ["refused", "first"]


def test_a_push_of_a_5mb_file_streams_as_a_chunked_request(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], tmp_path: Path
) -> None:
    bare, work = seeded
    big = secrets.token_bytes(5 * 1024 * 1024)  # random, so the pack stays ~5 MB
    _commit(authed, work, "big.bin", big, "a large file")
    # Above http.postBuffer (1 MiB) git sends the pack with Transfer-Encoding: chunked.
    traced = {**authed, "GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}
    result = _git(traced, "push", "origin", "main", cwd=work)
    assert "Transfer-Encoding: chunked" in result.stderr
    assert TOKEN not in result.stderr

    assert _bare_log(bare) == ["a large file", "first"]
    stored = subprocess.run(
        ["git", f"--git-dir={bare}", "cat-file", "blob", "main:big.bin"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert stored == big

    again = tmp_path / "again"
    _git(authed, "clone", "--quiet", server.repo_url("deploy"), str(again))
    assert (again / "big.bin").read_bytes() == big


def test_two_concurrent_pushes_to_different_branches_both_land(
    server: GitServer, seeded: tuple[Path, Path], authed: dict[str, str], tmp_path: Path
) -> None:
    bare, _ = seeded
    clones = []
    for branch in ("left", "right"):
        work = tmp_path / branch
        _git(authed, "clone", "--quiet", server.repo_url("deploy"), str(work))
        _git(authed, "checkout", "--quiet", "-b", branch, cwd=work)
        _commit(authed, work, f"{branch}.bin", secrets.token_bytes(2 << 20), f"on {branch}")
        clones.append((branch, work))

    pushes = [
        subprocess.Popen(
            ["git", "push", "--quiet", "origin", branch],
            cwd=work,
            env=authed,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for branch, work in clones
    ]
    for push in pushes:
        with push:
            _, stderr = push.communicate(timeout=120)
            assert push.returncode == 0, stderr

    assert _bare_log(bare, "left") == ["on left", "first"]
    assert _bare_log(bare, "right") == ["on right", "first"]
    # Above http.postBuffer git first POSTs a tiny probe, then the pack: two POSTs per push.
    assert server.requests.count(("POST", "/deploy.git/git-receive-pack", 200)) == 1 + 2 * 2
    assert {status for _, _, status in server.requests} == {200}


def test_ten_thousand_commits_and_200_tags_push_and_clone_in_reasonable_time(
    server: GitServer, authed: dict[str, str], tmp_path: Path
) -> None:
    count = 10_000
    source = tmp_path / "history"
    _git(authed, "init", "--quiet", "-b", "main", str(source))
    stream = bytearray()
    for number in range(1, count + 1):
        content = f"revision {number}\n".encode()
        message = f"commit {number}\n".encode()
        stream += b"commit refs/heads/main\nmark :%d\n" % number
        stream += b"committer Test <test@example.invalid> %d +0000\n" % (1_700_000_000 + number)
        stream += b"data %d\n%b\n" % (len(message), message)
        stream += b"M 644 inline state.txt\ndata %d\n%b\n" % (len(content), content)
        if number % 50 == 0:  # 200 tags: the clone's list of wants is large enough to gzip
            stream += b"reset refs/tags/v%d\nfrom :%d\n\n" % (number, number)
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=source,
        env=authed,
        input=bytes(stream),
        capture_output=True,
        timeout=120,
        check=True,
    )
    bare = server.create_repo("history")

    started = time.monotonic()
    _git(authed, "push", "--quiet", server.repo_url("history"), "main", "--tags", cwd=source)
    clone = tmp_path / "clone"
    traced = {**authed, "GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}
    cloned = _git(traced, "clone", "--quiet", server.repo_url("history"), str(clone))
    elapsed = time.monotonic() - started
    assert "Content-Encoding: gzip" in cloned.stderr  # git compressed its request body

    tags = _git(authed, "tag", "--list", cwd=clone).stdout.split()
    assert len(tags) == count // 50

    for repo in (f"--git-dir={bare}", f"--git-dir={clone / '.git'}"):
        counted = _git(authed, repo, "rev-list", "--count", "main").stdout.strip()
        assert counted == str(count)
    assert (clone / "state.txt").read_text() == f"revision {count}\n"
    assert elapsed < 60, f"push and clone of {count} commits took {elapsed:.1f}s"


def test_create_repo_refuses_names_that_leave_the_root(server: GitServer) -> None:
    for name in ("../outside", "a/../../b", "/abs", ""):
        with pytest.raises(ValueError):
            server.create_repo(name)
    server.create_repo("team/nested")
    assert (server.root / "team" / "nested.git" / "HEAD").is_file()


def test_the_module_serves_until_sigterm(tmp_path: Path, home: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    argv = [sys.executable, "-P", "-m", "rescue.gitserver", "--root", str(tmp_path / "forge")]
    argv += ["--token-file", str(token_file), "--port", "0", "--create", "demo"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            listed = _git(_git_env(home, _basic("anyone", TOKEN)), "ls-remote", f"{url}/demo.git")
            assert listed.stdout == ""  # an empty repository, reached and authorised
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert TOKEN not in stderr


def test_stop_ends_an_idle_kept_alive_connection_promptly(tmp_path: Path) -> None:
    server = GitServer(tmp_path / "forge", token=TOKEN).start()
    port = int(server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/nothing.git/info/refs")
        connection.getresponse().read()  # 401, and the connection stays open
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        with pytest.raises(RuntimeError):
            _ = server.url
    finally:
        connection.close()
        server.stop()  # a second stop is harmless
