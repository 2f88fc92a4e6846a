"""The one adapter through which Rescue reaches a Git repository: the ``git`` program.

Mitigation is a forward commit to the GitOps repository, so this module must be boring and
safe: argument lists only (never a shell), ``--`` before paths, credentials passed through the
environment of the one ``git`` process that needs them (never in a URL on disk, an argument
list or a log), one lock per repository (threads and processes alike), and a cached bare clone
that is fetched, not cloned again, for each rescue.

Commits are built with plumbing on a private index, never in a work tree: read the branch
head's tree, swap the target's folder for its last known good content, write the tree, commit
it on top of the head. Nothing else in the repository can change, by construction.

Errors form a small hierarchy: ``GitUnavailable`` (the remote cannot be reached: retry later),
``GitAuthError`` (credentials refused: a person must act), ``NonFastForward`` (the branch moved:
rebuild on the new head), and ``GitError`` for the rest.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

GIT_TIMEOUT = 120.0
#: How long a written commit-graph serves before the next fetch adds to it (seconds).
GRAPH_REFRESH = 300.0
_STDERR_LIMIT = 600
_FIELD = "\x1f"
_RECORD = "\x1e"


class GitError(Exception):
    """A git operation failed; the message carries git's own (shortened) words."""


class GitUnavailable(GitError):
    """The remote could not be reached or answered with a server error: retry later."""


class GitAuthError(GitError):
    """The remote refused the credentials: a person has to fix the Secret or the URL."""


class NonFastForward(GitError):
    """The branch moved since it was fetched: rebuild the commit on the new head."""


class InvalidRepository(GitError):
    """The repository settings can never work (a URL with credentials in it, a bad branch)."""


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: an HTTPS token, a username and password, or an SSH private key."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    ssh_private_key: str | None = None

    @classmethod
    def from_secret(cls, data: Mapping[str, str]) -> Credentials:
        """From a Secret's data: ``token``, ``username``+``password``, or ``ssh-privatekey``."""
        return cls(
            token=data.get("token") or None,
            username=data.get("username") or None,
            password=data.get("password") or None,
            ssh_private_key=data.get("ssh-privatekey") or data.get("identity") or None,
        )

    def __repr__(self) -> str:  # never print a secret, even by accident
        kinds = [k for k in ("token", "password", "ssh_private_key") if getattr(self, k)]
        return f"Credentials(username={self.username!r}, with={kinds})"


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    committed: datetime
    author: str
    subject: str
    trailers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.sha[:12]

    def trailer(self, key: str) -> str | None:
        values = self.trailers.get(key.lower())
        return values[0] if values else None


@dataclass(frozen=True)
class Identity:
    name: str = "Rescue"
    email: str = "rescue@localhost"


def check_branch(branch: str) -> None:
    """Refuse a branch name git would refuse (``git check-ref-format``'s rules)."""
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", branch],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    # Inside a repository `@{-1}` would be expanded to the previous branch: valid only if git
    # gives the name back unchanged.
    if result.returncode != 0 or branch.startswith("-") or result.stdout.strip() != branch:
        raise InvalidRepository(f"{branch!r} is not a valid branch name")


def check_url(url: str) -> None:
    """Refuse URLs that carry credentials: they would end up in .git/config and in logs."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https") and (parsed.password or parsed.username):
        raise InvalidRepository(
            "the repository URL must not contain credentials; put them in the Secret"
        )
    if parsed.scheme not in ("http", "https", "ssh", "file", "") and not re.match(
        r"^[\w.-]+@[\w.-]+:", url
    ):
        raise InvalidRepository(f"unsupported repository URL scheme {parsed.scheme!r}")
    if url.startswith("-"):
        raise InvalidRepository("the repository URL must not start with '-'")


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class Repository:
    """One branch of one remote, through a cached bare clone under ``cache_root``."""

    def __init__(
        self,
        url: str,
        branch: str,
        *,
        cache_root: Path,
        credentials: Credentials | None = None,
        identity: Identity | None = None,
    ) -> None:
        check_url(url)
        check_branch(branch)
        self.url = url
        self.branch = branch
        self.credentials = credentials or Credentials()
        self.identity = identity or Identity()
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.dir = cache_root / digest
        self._remote_ref = f"refs/remotes/origin/{branch}"
        # Walks of the history between two fetches are answered once (the branch cannot move).
        self._logs: dict[tuple[str | None, str | None, int], list[Commit]] = {}

    # --- running git ----------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        c = self.credentials
        found = [c.token or "", c.password or ""]
        if c.token or c.password:
            user = c.username or "git"
            found.append(base64.b64encode(f"{user}:{c.token or c.password}".encode()).decode())
        return found

    @contextlib.contextmanager
    def _auth_env(self) -> Iterator[dict[str, str]]:
        """The environment that carries the credentials to one git process, and nothing else."""
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "LC_ALL": "C",
        }
        c = self.credentials
        if c.token or c.password:
            user = c.username or ("x-access-token" if c.token else "git")
            basic = base64.b64encode(f"{user}:{c.token or c.password}".encode()).decode()
            env.update(
                GIT_CONFIG_COUNT="1",
                GIT_CONFIG_KEY_0="http.extraHeader",
                GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
            )
        if c.ssh_private_key:
            with tempfile.TemporaryDirectory(prefix="rescue-ssh-") as tmp:
                key = Path(tmp) / "key"
                key.write_text(c.ssh_private_key.rstrip("\n") + "\n")
                key.chmod(0o600)
                known = Path(tmp) / "known_hosts"
                env["GIT_SSH_COMMAND"] = (
                    f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
                    f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known}"
                )
                yield env
            return
        yield env

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        remote: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        base_env.update(env or {})
        argv = ["git", "--git-dir", str(self.dir), *args]
        try:
            if remote:
                with self._auth_env() as auth:
                    result = subprocess.run(
                        argv,
                        input=input,
                        capture_output=True,
                        env={**base_env, **auth},
                        check=False,
                        timeout=GIT_TIMEOUT,
                    )
            else:
                base_env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C")
                result = subprocess.run(
                    argv,
                    input=input,
                    capture_output=True,
                    env=base_env,
                    check=False,
                    timeout=GIT_TIMEOUT,
                )
        except subprocess.TimeoutExpired as exc:
            raise GitUnavailable(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f} s") from exc
        if check and result.returncode != 0:
            # push --porcelain reports a rejected ref on stdout, the hints on stderr.
            said = result.stderr.decode(errors="replace") + result.stdout.decode(errors="replace")
            raise self._error(args[0], said)
        return result

    def _error(self, command: str, stderr: str) -> GitError:
        text = _redact(stderr.strip(), self._secrets())[-_STDERR_LIMIT:]
        lowered = text.lower()
        message = f"git {command} failed: {text}"
        if any(
            s in lowered
            for s in ("non-fast-forward", "fetch first", "[rejected]", "updates were rejected")
        ):
            return NonFastForward(message)
        if any(
            s in lowered
            for s in (
                "authentication failed",
                "http 401",
                "http 403",
                "permission denied",
                "could not read username",
                "terminal prompts disabled",
                "403",
            )
        ):
            return GitAuthError(message)
        if any(
            s in lowered
            for s in (
                "could not resolve",
                "connection refused",
                "timed out",
                "http 5",
                "unable to access",
                "failed to connect",
                "remote end hung up",
                "could not read from remote",
                "the requested url returned error: 5",
            )
        ):
            return GitUnavailable(message)
        return GitError(message)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One user of this clone at a time, across threads and processes."""
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        with _thread_lock(str(self.dir)):
            lock_path = self.dir.parent / f"{self.dir.name}.lock"
            with lock_path.open("w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    # --- reading --------------------------------------------------------------------------

    def fetch(self) -> str:
        """Bring the cached clone up to date with the remote branch; returns its head."""
        if not (self.dir / "HEAD").exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "init", "--quiet", "--bare", str(self.dir)],
                check=True,
                capture_output=True,
                timeout=GIT_TIMEOUT,
            )
        refspec = f"+refs/heads/{self.branch}:{self._remote_ref}"
        self._git("fetch", "--quiet", "--no-tags", "--prune", "--", self.url, refspec, remote=True)
        self._logs.clear()
        # A commit-graph with changed-path filters lets `git log -- <path>` skip the commits
        # that did not touch the path instead of opening all of them (10x on a long history).
        # Written incrementally, and not again within GRAPH_REFRESH: the few commits fetched
        # since are read as they are, and the Mitigate step saves a git process.
        chain = self.dir / "objects" / "info" / "commit-graphs" / "commit-graph-chain"
        try:
            fresh = time.time() - chain.stat().st_mtime < GRAPH_REFRESH
        except OSError:
            fresh = False
        if not fresh:
            self._git(
                "commit-graph", "write", "--reachable", "--changed-paths", "--split", check=False
            )
        return self.head()

    def remote_head(self) -> str | None:
        """The branch's head on the remote, read without a clone (``git ls-remote``); None
        when the remote has no such branch. Proves the URL answers and the credentials read."""
        with self._auth_env() as auth:
            env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
            try:
                result = subprocess.run(
                    ["git", "ls-remote", "--heads", "--", self.url, f"refs/heads/{self.branch}"],
                    capture_output=True,
                    env={**env, **auth},
                    check=False,
                    timeout=GIT_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                raise GitUnavailable(f"git ls-remote took longer than {GIT_TIMEOUT:.0f} s") from exc
        if result.returncode != 0:
            raise self._error("ls-remote", result.stderr.decode(errors="replace"))
        line = result.stdout.decode(errors="replace").split("\n", 1)[0]
        return line.split("\t", 1)[0] or None

    def head(self) -> str:
        return (
            self._git("rev-parse", "--verify", f"{self._remote_ref}^{{commit}}")
            .stdout.decode()
            .strip()
        )

    def log(
        self, *, rev: str | None = None, path: str | None = None, limit: int = 500
    ) -> list[Commit]:
        """Commits reachable from ``rev`` (the branch head), newest first, optionally of a path."""
        key = (rev, path, limit)
        if key not in self._logs:
            self._logs[key] = self._walk(rev=rev, path=path, limit=limit)
        return list(self._logs[key])

    def with_trailer(self, key: str, value: str, *, since: datetime) -> Commit | None:
        """The newest commit on the branch, committed after ``since``, whose trailer ``key`` is
        ``value``. git filters the messages and stops walking at ``since``, so the cost is that
        of the commits since then, not of the history: on the benchmark's 10,000-commit
        repository, 5 ms for a day of commits where reading the last 2,000 and parsing them
        here took 28 ms (bench/README.md, rollback)."""
        for commit in self._walk(
            rev=None,
            path=None,
            limit=0,
            only=(
                "--fixed-strings",
                f"--grep={key}: {value}",
                f"--since=@{int(since.timestamp())}",
            ),
        ):
            if commit.trailer(key) == value:
                return commit
        return None

    def _walk(
        self, *, rev: str | None, path: str | None, limit: int, only: tuple[str, ...] = ()
    ) -> list[Commit]:
        fmt = (
            _FIELD.join(["%H", "%P", "%ct", "%an <%ae>", "%s", "%(trailers:only,unfold)"]) + _RECORD
        )
        args = ["log", f"--format={fmt}", *only, rev or self._remote_ref]
        if limit:
            args.insert(2, f"--max-count={limit}")
        if path is not None:
            args += ["--", path]
        out = self._git(*args).stdout.decode(errors="replace")
        commits = []
        for record in out.split(_RECORD):
            record = record.strip("\n")
            if not record:
                continue
            fields = record.split(_FIELD)
            sha, parents, stamp, author, trailers = fields[:4] + fields[-1:]
            subject = _FIELD.join(fields[4:-1])  # a subject may itself hold the separator
            commits.append(
                Commit(
                    sha=sha,
                    parents=tuple(parents.split()),
                    committed=datetime.fromtimestamp(int(stamp), tz=UTC),
                    author=author,
                    subject=subject,
                    trailers=_parse_trailers(trailers),
                )
            )
        return commits

    def grep(self, rev: str, pattern: str) -> list[str]:
        """Files at ``rev`` with a line matching the (basic) regular expression ``pattern``."""
        result = self._git("grep", "-l", "-z", "-e", pattern, rev, "--", check=False)
        if result.returncode not in (0, 1):
            raise self._error("grep", result.stderr.decode(errors="replace"))
        prefix = f"{rev}:"
        names = result.stdout.decode(errors="replace").split("\0")
        return [n.removeprefix(prefix) for n in names if n]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``descendant`` contains ``ancestor`` (False when either is unknown here)."""
        result = self._git("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        return result.returncode == 0

    def exists(self, rev: str, path: str) -> bool:
        result = self._git("cat-file", "-e", f"{rev}:{path}", check=False)
        return result.returncode == 0

    def read(self, rev: str, path: str) -> bytes | None:
        result = self._git("cat-file", "blob", f"{rev}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    def files(self, rev: str, path: str = "") -> list[str]:
        args = ["ls-tree", "-r", "--name-only", "-z", rev]
        if path:
            args += ["--", path]
        out = self._git(*args).stdout.decode(errors="replace")
        return [name for name in out.split("\0") if name]

    def changed(self, old: str, new: str) -> list[str]:
        """The files that differ between two revisions."""
        out = self._git("diff", "--name-only", "-z", "--no-renames", old, new).stdout
        return [name for name in out.decode(errors="replace").split("\0") if name]

    def diff(self, old: str, new: str, path: str | None = None) -> str:
        args = ["diff", "--no-color", "--no-ext-diff", old, new]
        if path:
            args += ["--", path]
        return self._git(*args).stdout.decode(errors="replace")

    # --- writing --------------------------------------------------------------------------

    def commit_change(
        self,
        *,
        base: str,
        restore: Mapping[str, str | None] | None = None,
        write: Mapping[str, bytes | None] | None = None,
        message: str,
        when: datetime | None = None,
    ) -> str | None:
        """A commit on top of ``base`` that changes only what it is told to; None if no change.

        ``restore`` maps a folder (or file) to the revision whose content it gets back (None: the
        path goes away); ``write`` maps a file to its new content (None: removed).
        """
        with tempfile.TemporaryDirectory(prefix="rescue-index-") as tmp:
            # A private index, and an empty work tree that nothing ever reads or writes: the
            # index commands insist on having one, even with --cached.
            (Path(tmp) / "tree").mkdir()
            env = {
                "GIT_INDEX_FILE": str(Path(tmp) / "index"),
                "GIT_WORK_TREE": str(Path(tmp) / "tree"),
            }
            self._git("read-tree", base, env=env)
            for path, rev in (restore or {}).items():
                self._git(
                    "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", path, env=env
                )
                if rev is None or not self.exists(rev, path):
                    continue
                kind = self._git("cat-file", "-t", f"{rev}:{path}").stdout.decode().strip()
                if kind == "tree":
                    self._git(
                        "read-tree", f"--prefix={path.rstrip('/')}/", f"{rev}:{path}", env=env
                    )
                else:
                    mode_line = self._git("ls-tree", rev, "--", path).stdout.decode().split()
                    self._git(
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        f"{mode_line[0]},{mode_line[2]},{path}",
                        env=env,
                    )
            for path, content in (write or {}).items():
                if content is None:
                    self._git("rm", "--cached", "--quiet", "--ignore-unmatch", "--", path, env=env)
                    continue
                blob = (
                    self._git("hash-object", "-w", "--stdin", input=content).stdout.decode().strip()
                )
                self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = self._git("write-tree", env=env).stdout.decode().strip()
        if tree == self._git("rev-parse", f"{base}^{{tree}}").stdout.decode().strip():
            return None
        stamp = f"{int(when.timestamp())} +0000" if when else None
        commit_env = {
            "GIT_AUTHOR_NAME": self.identity.name,
            "GIT_AUTHOR_EMAIL": self.identity.email,
            "GIT_COMMITTER_NAME": self.identity.name,
            "GIT_COMMITTER_EMAIL": self.identity.email,
        }
        if stamp:
            commit_env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        out = self._git(
            "commit-tree", tree, "-p", base, "-F", "-", input=message.encode(), env=commit_env
        )
        return out.stdout.decode().strip()

    def push(self, sha: str) -> None:
        """Fast-forward the remote branch to ``sha``; never forced."""
        self._git(
            "push",
            "--quiet",
            "--porcelain",
            "--",
            self.url,
            f"{sha}:refs/heads/{self.branch}",
            remote=True,
        )
        self._git("update-ref", self._remote_ref, sha)
        self._logs.clear()


def _parse_trailers(text: str) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            found.setdefault(key.strip().lower(), []).append(value.strip())
    return {k: tuple(v) for k, v in found.items()}
