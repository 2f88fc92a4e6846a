"""Pull requests and issues on GitHub through its REST API, without a clone.

Why this exists: some GitOps repositories must not be written to directly. Their base branch is
protected, and a change lands only as a reviewed pull request. Rescue then proposes the
mitigation as a pull request instead of pushing it. That needs no local git at all. The change is
a handful of manifests, so it is built on the forge: a tree on top of the base branch's tree, one
commit whose parent is the base head, a branch (``head``) pointing at it, and a pull request from
that branch into ``base``. Nothing is fetched and nothing is pushed, and the only credential is
an API token sent in one header.

Safety rules:

* The base branch is only ever read. The one ref this module writes is ``head``, Rescue's own
  branch, and it is never equal to ``base``. ``open_pull_request`` creates it, or force-moves it
  when an earlier attempt left it behind; ``update_branch`` only ever fast-forwards it, so the
  commits people look at in an open pull request are never rewritten.
* ``open_pull_request`` is idempotent. When an open pull request from ``head`` into ``base``
  already exists, it is returned as it is (``created=False``) and no commit is made. A retry
  after a timeout, or a second replica, therefore cannot open a second pull request.
* ``open_issue`` is idempotent too. GitHub has no name to make an issue unique by, so the body
  carries a marker line (an HTML comment, invisible on the page) and an issue carrying it is
  looked for, among the issues with the first label, before one is opened.
* The token is never logged and never put in an exception message. Messages quote GitHub's own
  words, with the token redacted in case a server ever echoes it.

Errors form a small hierarchy, as in :mod:`rescue.core.git`. ``ForgeUnavailable`` means the
forge could not be reached, answered 5xx, or asked us to slow down: retry later, after
``retry_after`` seconds when GitHub said how long. ``ForgeAuthError`` means 401 or 403: the token
is wrong or lacks permission, and a person must act. ``ForgeRejected`` means any other refusal; it
carries the HTTP status, or 0 when Rescue refused before asking. ``NothingToChange`` is the
``ForgeRejected`` for a change that would leave ``base`` as it is.
"""

from __future__ import annotations

import base64
import logging
import re
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
USER_AGENT = "rescue-operator/0.1.0"
_MESSAGE_LIMIT = 300
#: Attempts of ``update_branch`` when someone else moves the branch between read and write.
UPDATE_ATTEMPTS = 3
#: Pages of 100 issues looked through for a marker before deciding there is no such issue.
ISSUE_PAGES = 10
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_FILE_MODE = "100644"


class ForgeError(Exception):
    """A forge operation failed; the message names the request and GitHub's own words."""


class ForgeUnavailable(ForgeError):
    """The forge cannot be reached, failed (5xx) or is rate limiting us (429): retry later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ForgeAuthError(ForgeError):
    """The forge refused the token (401) or its permissions (403): a person has to act."""


class ForgeRejected(ForgeError):
    """The forge refused the request (a 4xx); ``status`` is 0 when Rescue refused it first."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class NothingToChange(ForgeRejected):
    """The files already have the requested content on the base branch: there is nothing to
    propose."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the html_url, the page a person opens
    head: str
    created: bool  # False when an open pull request for that head already existed


@dataclass(frozen=True)
class BranchUpdate:
    sha: str  # the branch's head afterwards
    changed: bool  # False when the branch already held the files as given: no commit was made


@dataclass(frozen=True)
class Issue:
    number: int
    url: str  # the html_url
    created: bool  # False when an issue carrying the marker already existed


def check_branch(branch: str) -> None:
    """Refuse a branch name git would refuse (``git check-ref-format --branch``).

    In a repository, ``--branch`` expands ``@{-1}`` to the branch checked out before and says
    yes; a name is valid only when git hands it back unchanged.
    """
    if not branch or branch.startswith("-"):
        raise ForgeRejected(f"{branch!r} is not a valid branch name", status=0)
    try:
        result = subprocess.run(
            ["git", "check-ref-format", "--branch", branch],
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ForgeError("could not run git check-ref-format") from exc
    if result.returncode != 0 or result.stdout.decode(errors="replace").strip() != branch:
        raise ForgeRejected(f"{branch!r} is not a valid branch name", status=0)


def check_path(path: str) -> None:
    """Refuse a file path that is not a plain relative path inside the repository."""
    parts = path.split("/")
    if (
        not path
        or any(part in ("", ".", "..") for part in parts)
        or any(part.lower() == ".git" for part in parts)
        or "\0" in path
    ):
        raise ForgeRejected(f"{path!r} is not a usable file path", status=0)


def _check_name(kind: str, name: str) -> None:
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ForgeRejected(f"{name!r} is not a usable {kind} name", status=0)


def _check_token(token: str) -> None:
    # The token goes into a header: a character that cannot go there would make httpx raise an
    # error that might quote it. Never quote it here.
    if not token:
        raise ForgeAuthError("no token was given")
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ForgeAuthError("the token holds characters that cannot go into an HTTP header")


def _quote(branch: str) -> str:
    return urllib.parse.quote(branch, safe="/")


class GitHub:
    """One repository on GitHub (or GitHub Enterprise), reached through its REST API."""

    def __init__(
        self,
        *,
        api_url: str,
        owner: str,
        repo: str,
        token: str,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        _check_name("owner", owner)
        _check_name("repository", repo)
        _check_token(token)
        scheme = urllib.parse.urlsplit(api_url).scheme
        if scheme not in ("http", "https"):
            raise ForgeRejected(f"the API URL must be http(s), not {scheme!r}", status=0)
        self.api_url = api_url.rstrip("/")
        self.owner = owner
        self.repo = repo
        self._token = token
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_repository_url(cls, url: str, *, token: str, api_url: str | None = None) -> GitHub:
        """The client for a repository's clone URL.

        ``https://github.com/o/r(.git)`` uses ``https://api.github.com``. A GitHub Enterprise
        Cloud tenant ``https://T.ghe.com/o/r`` uses ``https://api.T.ghe.com``. Any other host is
        taken for GitHub Enterprise Server, ``https://host/o/r`` using ``https://host/api/v3``.
        SSH URLs (``git@host:o/r.git``, ``ssh://git@host/o/r``) map the same way, over https.
        ``api_url``, when given, overrides the guess.
        """
        scp = re.fullmatch(r"[\w.-]+@([\w.-]+):/?([^/]+)/([^/]+?)/?", url)
        if scp:
            scheme, host, owner, repo = "https", scp.group(1), scp.group(2), scp.group(3)
        else:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https", "ssh") or not parts.hostname:
                raise ForgeRejected("not a GitHub repository URL", status=0)
            if parts.password or (parts.username and parts.scheme != "ssh"):
                raise ForgeRejected("the repository URL must not contain credentials", status=0)
            segments = [s for s in parts.path.split("/") if s]
            if len(segments) != 2:
                raise ForgeRejected(f"{url!r} does not name one owner/repository", status=0)
            scheme = "https" if parts.scheme == "ssh" else parts.scheme
            host = parts.hostname
            if parts.port and parts.scheme != "ssh":
                host = f"{host}:{parts.port}"
            owner, repo = segments
        repo = repo.removesuffix(".git")
        if api_url is None:
            name = host.lower()
            if name in ("github.com", "www.github.com"):
                api_url = "https://api.github.com"
            elif name.endswith(".ghe.com") and not name.startswith("api."):
                api_url = f"https://api.{name}"
            else:
                api_url = f"{scheme}://{host}/api/v3"
        return cls(api_url=api_url, owner=owner, repo=repo, token=token)

    def __repr__(self) -> str:  # never the token
        return f"GitHub(api_url={self.api_url!r}, repository={self.owner}/{self.repo})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the pull request -----------------------------------------------------------------

    def open_pull_request(
        self,
        *,
        base: str,
        head: str,
        files: Mapping[str, bytes | None],
        message: str,
        title: str,
        body: str,
    ) -> PullRequest:
        """A pull request from ``head`` into ``base`` that writes ``files`` (None: deleted).

        Returns the open pull request from ``head`` into ``base`` when there already is one,
        untouched. Otherwise makes one commit on top of ``base``'s head that changes only
        ``files``, points ``head`` at it (moving ``head`` if it existed), and opens the pull
        request.
        """
        check_branch(base)
        check_branch(head)
        if head == base:
            raise ForgeRejected("the pull request's branch must not be its base branch", status=0)
        if not files:
            raise ForgeRejected("a pull request needs at least one file to change", status=0)
        for path in files:
            check_path(path)

        existing = self.find_pull_request(base=base, head=head)
        if existing is not None:
            logger.info("pull request #%d from %s already open", existing.number, head)
            return existing

        base_sha = self._string(
            self._call("GET", f"{self._repo_path}/git/ref/heads/{_quote(base)}"), "object", "sha"
        )
        base_tree = self._tree_of(base_sha)
        tree = self._tree_with(base_tree, files)
        if tree == base_tree:
            raise NothingToChange(
                f"the files already have this content on {base!r}: nothing to propose", status=0
            )
        commit = self._string(
            self._call(
                "POST",
                f"{self._repo_path}/git/commits",
                json={"message": message, "tree": tree, "parents": [base_sha]},
            ),
            "sha",
        )
        self._point_branch(head, commit)
        try:
            created = self._call(
                "POST",
                f"{self._repo_path}/pulls",
                json={"title": title, "head": head, "base": base, "body": body},
            )
        except ForgeRejected as exc:
            # Another writer (a second replica, or our own earlier attempt whose answer was
            # lost) opened it between our look and our request: theirs is the one.
            if exc.status == 422:
                raced = self.find_pull_request(base=base, head=head)
                if raced is not None:
                    return raced
            raise
        pull = PullRequest(
            number=self._int(created, "number"),
            url=self._string(created, "html_url"),
            head=head,
            created=True,
        )
        logger.info("opened pull request #%d from %s into %s", pull.number, head, base)
        return pull

    def find_pull_request(self, *, base: str, head: str) -> PullRequest | None:
        """The open pull request from ``head`` (in this repository) into ``base``, if any."""
        found = self._call(
            "GET",
            f"{self._repo_path}/pulls",
            params={"state": "open", "head": f"{self.owner}:{head}", "base": base},
        )
        if not isinstance(found, list):
            raise ForgeError("GitHub answered the pull request search with something not a list")
        for pull in found:
            # GitHub ignores a head filter it cannot parse, so check what it returned.
            if (
                self._string(pull, "head", "ref") != head
                or self._string(pull, "base", "ref") != base
            ):
                continue
            label = pull["head"].get("label")
            if label is not None and label != f"{self.owner}:{head}":
                continue
            if pull.get("state", "open") != "open":
                continue
            return PullRequest(
                number=self._int(pull, "number"),
                url=self._string(pull, "html_url"),
                head=head,
                created=False,
            )
        return None

    def update_branch(
        self, *, base: str, branch: str, files: Mapping[str, bytes | None], message: str
    ) -> BranchUpdate:
        """One more commit on top of ``branch`` that writes ``files`` (None: deleted).

        For a pull request that is already open: its branch moves forward and keeps the
        commits people may have reviewed. The ref is moved with ``force: false``, so GitHub
        refuses anything but a fast-forward; when someone else moved the branch between our read
        and our write, the commit is made again on their head (``UPDATE_ATTEMPTS`` times).
        ``base`` is the pull request's base branch, which this never writes. Returns the head
        unchanged (``changed=False``) when the branch already holds the files as given.
        """
        check_branch(base)
        check_branch(branch)
        if branch == base:
            raise ForgeRejected("the branch to update must not be the base branch", status=0)
        if not files:
            raise ForgeRejected("an update needs at least one file to change", status=0)
        for path in files:
            check_path(path)

        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            head = self._string(
                self._call("GET", f"{self._repo_path}/git/ref/heads/{_quote(branch)}"),
                "object",
                "sha",
            )
            head_tree = self._tree_of(head)
            tree = self._tree_with(head_tree, files)
            if tree == head_tree:
                return BranchUpdate(sha=head, changed=False)
            commit = self._string(
                self._call(
                    "POST",
                    f"{self._repo_path}/git/commits",
                    json={"message": message, "tree": tree, "parents": [head]},
                ),
                "sha",
            )
            try:
                self._call(
                    "PATCH",
                    f"{self._repo_path}/git/refs/heads/{_quote(branch)}",
                    json={"sha": commit, "force": False},
                )
            except ForgeRejected as exc:
                # 422: not a fast-forward any more, someone pushed to the branch meanwhile.
                if exc.status != 422 or attempt == UPDATE_ATTEMPTS:
                    raise
                logger.info("branch %s moved while updating it; building on its new head", branch)
                continue
            logger.info("branch %s moved forward to %s", branch, commit[:12])
            return BranchUpdate(sha=commit, changed=True)
        raise ForgeError(f"branch {branch!r} could not be updated")  # not reached

    def head_of(self, branch: str) -> str | None:
        """The commit ``branch`` points at, or None when there is no such branch."""
        check_branch(branch)
        try:
            answer = self._call("GET", f"{self._repo_path}/git/ref/heads/{_quote(branch)}")
        except ForgeRejected as exc:
            if exc.status == 404:
                return None
            raise
        return self._string(answer, "object", "sha")

    def _tree_of(self, commit: str) -> str:
        return self._string(
            self._call("GET", f"{self._repo_path}/git/commits/{commit}"), "tree", "sha"
        )

    def _tree_with(self, base_tree: str, files: Mapping[str, bytes | None]) -> str:
        """A tree that is ``base_tree`` with ``files`` written (or, for None, deleted)."""
        entries: list[dict[str, Any]] = []
        for path, content in files.items():
            entry: dict[str, Any] = {"path": path, "mode": _FILE_MODE, "type": "blob"}
            if content is None:
                entry["sha"] = None
            else:
                try:
                    entry["content"] = content.decode("utf-8")
                except UnicodeDecodeError:
                    entry["sha"] = self._blob(content)
            entries.append(entry)
        return self._string(
            self._call(
                "POST",
                f"{self._repo_path}/git/trees",
                json={"base_tree": base_tree, "tree": entries},
            ),
            "sha",
        )

    def _point_branch(self, head: str, sha: str) -> None:
        """Create ``refs/heads/<head>`` at ``sha``, or move it there when it already exists."""
        try:
            self._call(
                "POST",
                f"{self._repo_path}/git/refs",
                json={"ref": f"refs/heads/{head}", "sha": sha},
            )
        except ForgeRejected as exc:
            if exc.status != 422 or "reference already exists" not in str(exc).lower():
                raise
            # Our own branch, left by an earlier (closed or failed) attempt: move it. ``head`` is
            # never ``base``, checked above, so a protected branch is never forced.
            self._call(
                "PATCH",
                f"{self._repo_path}/git/refs/heads/{_quote(head)}",
                json={"sha": sha, "force": True},
            )

    def _blob(self, content: bytes) -> str:
        answer = self._call(
            "POST",
            f"{self._repo_path}/git/blobs",
            json={"content": base64.b64encode(content).decode("ascii"), "encoding": "base64"},
        )
        return self._string(answer, "sha")

    # --- issues ---------------------------------------------------------------------------

    def open_issue(self, *, title: str, body: str, labels: list[str], marker: str) -> Issue:
        """The issue whose body carries the line ``marker``: found, or opened with ``labels``.

        ``marker`` is appended to ``body`` as its last line when the body lacks it. Labels that
        do not exist yet are created by GitHub; a token without push access has them dropped
        silently, and the issue is then looked for among all issues.
        """
        if not marker.strip() or "\n" in marker or "\r" in marker:
            raise ForgeRejected("an issue marker must be one non-empty line", status=0)
        if not title.strip():
            raise ForgeRejected("an issue needs a title", status=0)
        if any(not label or "," in label for label in labels):
            raise ForgeRejected("an issue label must be non-empty and hold no comma", status=0)
        existing = self.find_issue(marker=marker, label=labels[0] if labels else None)
        if existing is None and labels:
            existing = self.find_issue(marker=marker, label=None)
        if existing is not None:
            logger.info("issue #%d already carries %s", existing.number, marker)
            return existing
        if marker.strip() not in _lines(body):
            body = f"{body.rstrip()}\n\n{marker}\n"
        created = self._call(
            "POST",
            f"{self._repo_path}/issues",
            json={"title": title, "body": body, "labels": list(labels)},
        )
        issue = Issue(
            number=self._int(created, "number"),
            url=self._string(created, "html_url"),
            created=True,
        )
        logger.info("opened issue #%d", issue.number)
        return issue

    def find_issue(self, *, marker: str, label: str | None) -> Issue | None:
        """The newest issue (open or closed, with ``label`` when given) whose body has the line
        ``marker``. GitHub lists pull requests among the issues; they are skipped."""
        params = {"state": "all", "per_page": "100"}
        if label:
            params["labels"] = label
        for page in range(1, ISSUE_PAGES + 1):
            found = self._call(
                "GET", f"{self._repo_path}/issues", params={**params, "page": str(page)}
            )
            if not isinstance(found, list):
                raise ForgeError("GitHub answered the issue listing with something not a list")
            for item in found:
                if not isinstance(item, dict) or "pull_request" in item:
                    continue
                if marker.strip() in _lines(str(item.get("body") or "")):
                    return Issue(
                        number=self._int(item, "number"),
                        url=self._string(item, "html_url"),
                        created=False,
                    )
            if len(found) < int(params["per_page"]):
                return None
        logger.warning(
            "Looked through %d pages of issues without finding %s; an older issue may carry it, "
            "but the search stops here.",
            ISSUE_PAGES,
            marker,
        )
        return None

    # --- HTTP -----------------------------------------------------------------------------

    @property
    def _repo_path(self) -> str:
        return f"/repos/{self.owner}/{self.repo}"

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        what = f"{method} {path}"
        try:
            response = self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise ForgeUnavailable(f"{what}: no answer in time") from exc
        except httpx.UnsupportedProtocol as exc:
            raise ForgeError(f"{what}: {self._redact(str(exc))}") from exc
        except httpx.TransportError as exc:
            raise ForgeUnavailable(
                f"{what}: {type(exc).__name__}: {self._redact(str(exc))}"
            ) from exc
        status = response.status_code
        logger.debug("GitHub %s -> %d", what, status)
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError as exc:
                raise ForgeError(f"{what}: the answer ({status}) is not JSON") from exc
        said = self._redact(_message(response))[:_MESSAGE_LIMIT]
        text = f"{what}: {status} {said}".rstrip()
        try:
            response.raise_for_status()  # every status but 2xx; redirects are not followed
        except httpx.HTTPStatusError as exc:
            raise self._error(text, said, response) from exc
        raise ForgeRejected(text, status=status)  # not reached: raise_for_status raised

    @staticmethod
    def _error(text: str, said: str, response: httpx.Response) -> ForgeError:
        status = response.status_code
        retry_after = _retry_after(response.headers)
        rate_limited = (
            response.headers.get("x-ratelimit-remaining") == "0"
            or retry_after is not None
            or "rate limit" in said.lower()
        )
        if status >= 500 or status == 429 or (status == 403 and rate_limited):
            # GitHub answers an exhausted (primary or secondary) rate limit with 403 or 429:
            # that is a wait, not a permission a person must grant.
            return ForgeUnavailable(text, retry_after=retry_after)
        if status in (401, 403):
            return ForgeAuthError(text)
        return ForgeRejected(text, status=status)

    # --- reading answers ------------------------------------------------------------------

    @staticmethod
    def _value(answer: Any, keys: tuple[str, ...]) -> Any:
        value = answer
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise ForgeError(f"GitHub's answer lacks {'.'.join(keys)}")
            value = value[key]
        return value

    @classmethod
    def _string(cls, answer: Any, *keys: str) -> str:
        value = cls._value(answer, keys)
        if not isinstance(value, str) or not value:
            raise ForgeError(f"GitHub's answer has no text in {'.'.join(keys)}")
        return value

    @classmethod
    def _int(cls, answer: Any, *keys: str) -> int:
        value = cls._value(answer, keys)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ForgeError(f"GitHub's answer has no number in {'.'.join(keys)}")
        return value


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def _message(response: httpx.Response) -> str:
    """GitHub's own words for a failure: ``message`` and the validation ``errors``."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(data, dict):
        return response.reason_phrase
    words = [str(data.get("message") or response.reason_phrase)]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            detail = error.get("message") or error.get("code")
            if detail:
                words.append(str(detail))
        elif isinstance(error, str):
            words.append(error)
    return "; ".join(words)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds GitHub asked us to wait: ``retry-after``, or until ``x-ratelimit-reset``."""
    value = headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
        except ValueError:
            return None
    return None
