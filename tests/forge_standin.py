"""A stand-in for the GitHub REST API, implementing only the documented endpoints Rescue uses; no
forge is reachable from here.

It is a test double and nothing more. ``rescue.core.forge`` must be tested against something
that speaks HTTP and really keeps commits, and a real forge cannot be reached from here. This
server answers the requests that client makes, shaped like GitHub's documented JSON for the
fields the client reads:

* ``GET  /repos/{o}/{r}/pulls?state=&head=o:branch&base=``  open pull requests, filtered
* ``POST /repos/{o}/{r}/pulls``                              open one (422 when one is open)
* ``GET  /repos/{o}/{r}/git/ref/heads/{branch}``             a ref (404 when missing)
* ``GET  /repos/{o}/{r}/git/commits/{sha}``                  a commit (its tree and parents)
* ``POST /repos/{o}/{r}/git/blobs``                          a blob (utf-8 or base64)
* ``POST /repos/{o}/{r}/git/trees``                          a tree on a base_tree; sha null deletes
* ``POST /repos/{o}/{r}/git/commits``                        a commit of a tree on parents
* ``POST /repos/{o}/{r}/git/refs``                           a ref (422 "Reference already exists")
* ``PATCH /repos/{o}/{r}/git/refs/heads/{branch}``           move a ref (force, or fast-forward)
* ``GET  /repos/{o}/{r}/issues?state=&labels=&per_page=&page=`` issues and pull requests, newest
  first; a pull request carries a ``pull_request`` key, as GitHub documents
* ``POST /repos/{o}/{r}/issues``                             open an issue (title, body, labels)

Everything else is 404 ``{"message": "Not Found"}``. Requests must carry
``Authorization: Bearer <token>`` (401 ``Bad credentials`` otherwise). Issues and pull requests
share one sequence of numbers, as on GitHub.

The objects are real: the server is backed by a bare repository on disk, and every blob, tree,
commit and ref it makes is made by ``git`` plumbing there (``hash-object -w``, ``read-tree`` and
``update-index --index-info`` and ``write-tree`` on a private index, ``commit-tree``,
``update-ref``). A test can therefore inspect the result with plain ``git``. Pull requests are
not git objects and live in memory (``pulls``), as do issues (``issues``). ``merge`` does what a
person's click on "Merge" does (the base branch fast-forwards to the pull request's head, which
is then closed as merged). Every request is recorded in ``requests`` as ``(method, path with
query, status)``. ``fail_next`` makes a request answer with a chosen status, to test how the
client handles errors and retries.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BLOB_MODES = {"100644", "100755", "120000"}
_REASONS = {
    400: "Bad Request",
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
MAX_BODY = 32 * 1024 * 1024


class _Answer(Exception):
    """Stop handling a request and answer with this status and JSON body."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _fail(status: int, message: str | None = None, **extra: Any) -> _Answer:
    body: dict[str, Any] = {"message": message or _REASONS.get(status, "Error")}
    body.update(extra)
    body["documentation_url"] = "https://docs.github.com/rest"
    return _Answer(status, body)


def _validation(message: str) -> _Answer:
    return _fail(422, "Validation Failed", errors=[{"code": "custom", "message": message}])


@dataclass
class _Failure:
    status: int
    method: str | None
    path: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path == self.path or path.endswith(self.path)
        )


class GitHubStandIn:
    """Serves ``/repos/{owner}/{repo}/...`` for one bare repository at http://127.0.0.1:PORT."""

    def __init__(self, bare_repo: Path, *, owner: str, repo: str, token: str) -> None:
        if not token:
            raise ValueError("the token must not be empty")
        self.bare_repo = Path(bare_repo)
        self.owner = owner
        self.repo = repo
        self.pulls: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []
        self._token = token.encode()
        self._lock = threading.RLock()  # one request changes the repository at a time
        self._failures: list[_Failure] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the token
        state = self.api_url if self._httpd is not None else "stopped"
        return f"GitHubStandIn({self.owner}/{self.repo}, {state})"

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> GitHubStandIn:
        if self._httpd is not None:
            raise RuntimeError("the stand-in is already running")
        if not (self.bare_repo / "HEAD").is_file():
            raise FileNotFoundError(f"no bare repository at {self.bare_repo}")
        httpd = _Server(("127.0.0.1", 0), _Handler, owner=self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"github-standin-{httpd.server_address[1]}",
            daemon=True,
        )
        self._httpd, self._thread = httpd, thread
        thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        if thread is not None:
            thread.join()
        httpd.abort_connections()
        httpd.server_close()
        self._httpd = self._thread = None

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT``, the base of every endpoint, once started."""
        if self._httpd is None:
            raise RuntimeError("the stand-in is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next request with ``status`` (and ``headers``) instead of serving it.

        With ``method`` and/or ``path`` (the request's path, or an ending of it, without the
        query), the next request that matches. Queued failures are used in order.
        """
        with self._lock:
            self._failures.append(_Failure(status, method, path, dict(headers or {})))

    def merge(self, number: int) -> str:
        """Merge open pull request ``number`` as a fast-forward of its base; the new base head."""
        with self._lock:
            (pull,) = [p for p in self.pulls if p["number"] == number and p["state"] == "open"]
            head = self._ref(f"refs/heads/{pull['head']}")
            base = self._ref(f"refs/heads/{pull['base']}")
            if head is None or base is None:
                raise RuntimeError(f"pull request #{number} lost its head or base branch")
            ahead = self._git("merge-base", "--is-ancestor", base, head, check=False)
            if ahead.returncode != 0:
                raise RuntimeError(f"pull request #{number} is not a fast-forward of its base")
            self._git(
                "update-ref",
                "-m",
                "merged by the GitHub stand-in",
                f"refs/heads/{pull['base']}",
                head,
                base,
            )
            pull.update(state="closed", merged_at=_iso(int(datetime.now(UTC).timestamp())))
            return head

    # --- serving --------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One request: (status, JSON body, extra headers). Records it."""
        with self._lock:
            try:
                answer = self._serve(method, target, authorization, body)
                status, payload, headers = answer
            except _Answer as stop:
                status, payload, headers = stop.status, stop.body, stop.headers
            self.requests.append((method, target, status))
            return status, payload, headers

    def _serve(
        self, method: str, target: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        split = urlsplit(target)
        path = unquote(split.path)
        for index, failure in enumerate(self._failures):
            if failure.matches(method, path):
                del self._failures[index]
                answer = _fail(failure.status)
                raise _Answer(failure.status, answer.body, failure.headers)
        if not self._authenticated(authorization):
            raise _fail(401, "Bad credentials")
        prefix = f"/repos/{self.owner}/{self.repo}"
        if not path.startswith(prefix + "/"):
            raise _fail(404)
        rest = path[len(prefix) :]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        data = self._json(body) if method in ("POST", "PATCH") else None
        if rest == "/pulls" and method == "GET":
            return 200, self._list_pulls(query), {}
        if rest == "/pulls" and method == "POST":
            return 201, self._create_pull(data), {}
        if rest.startswith("/git/ref/") and method == "GET":
            ref = "refs/" + rest[len("/git/ref/") :]
            sha = self._ref(ref)
            if sha is None:
                raise _fail(404)
            return 200, self._ref_json(ref, sha), {}
        if rest.startswith("/git/commits/") and method == "GET":
            return 200, self._commit_json(rest[len("/git/commits/") :]), {}
        if rest == "/git/blobs" and method == "POST":
            return 201, self._create_blob(data), {}
        if rest == "/git/trees" and method == "POST":
            return 201, self._create_tree(data), {}
        if rest == "/git/commits" and method == "POST":
            return 201, self._create_commit(data), {}
        if rest == "/git/refs" and method == "POST":
            return 201, self._create_ref(data), {}
        if rest.startswith("/git/refs/") and method == "PATCH":
            return 200, self._update_ref("refs/" + rest[len("/git/refs/") :], data), {}
        if rest == "/issues" and method == "GET":
            return 200, self._list_issues(query), {}
        if rest == "/issues" and method == "POST":
            return 201, self._create_issue(data), {}
        raise _fail(404)

    def _authenticated(self, header: str | None) -> bool:
        scheme, _, value = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self._token
        )

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            raise _fail(400, "Problems parsing JSON") from exc
        if not isinstance(data, dict):
            raise _fail(400, "Problems parsing JSON")
        return data

    # --- git --------------------------------------------------------------------------------

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        clean = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": os.environ.get("HOME", "/"),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": self.owner,
            "GIT_AUTHOR_EMAIL": f"{self.owner}@users.noreply.invalid",
            "GIT_COMMITTER_NAME": "GitHub stand-in",
            "GIT_COMMITTER_EMAIL": "noreply@standin.invalid",
            **(env or {}),
        }
        result = subprocess.run(
            ["git", "--git-dir", str(self.bare_repo), *args],
            input=input,
            capture_output=True,
            env=clean,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip()
            raise _fail(500, f"git {args[0]} failed: {said[-300:]}")
        return result

    def _object_type(self, sha: Any) -> str | None:
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            return None
        result = self._git("cat-file", "-t", sha, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _ref(self, ref: str) -> str | None:
        """The commit a ref names by its full name (``refs/heads/x``), or None."""
        if not ref.startswith("refs/"):
            return None
        result = self._git("show-ref", "--verify", "--hash", ref, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _url(self, rest: str) -> str:
        return f"{self.api_url}/repos/{self.owner}/{self.repo}{rest}"

    def _html(self, rest: str) -> str:
        return f"{self.api_url}/{self.owner}/{self.repo}{rest}"

    # --- git data endpoints ---------------------------------------------------------------

    def _ref_json(self, ref: str, sha: str) -> dict[str, Any]:
        return {
            "ref": ref,
            "node_id": "REF_" + base64.b64encode(ref.encode()).decode(),
            "url": self._url(f"/git/{ref}"),
            "object": {"sha": sha, "type": "commit", "url": self._url(f"/git/commits/{sha}")},
        }

    def _commit_json(self, sha: str) -> dict[str, Any]:
        if self._object_type(sha) != "commit":
            raise _fail(404)
        raw = self._git("cat-file", "commit", sha).stdout.decode(errors="replace")
        header, _, message = raw.partition("\n\n")
        tree, parents, people = "", [], {}
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key in ("author", "committer"):
                found = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
                if found:
                    people[key] = {
                        "name": found.group(1),
                        "email": found.group(2),
                        "date": _iso(int(found.group(3))),
                    }
        return {
            "sha": sha,
            "node_id": "C_" + sha[:12],
            "url": self._url(f"/git/commits/{sha}"),
            "html_url": self._html(f"/commit/{sha}"),
            "author": people.get("author"),
            "committer": people.get("committer"),
            "message": message,
            "tree": {"sha": tree, "url": self._url(f"/git/trees/{tree}")},
            "parents": [
                {
                    "sha": p,
                    "url": self._url(f"/git/commits/{p}"),
                    "html_url": self._html(f"/commit/{p}"),
                }
                for p in parents
            ],
        }

    def _create_blob(self, data: Any) -> dict[str, Any]:
        content, encoding = data.get("content"), data.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise _validation("content is required")
        if encoding == "base64":
            try:
                raw = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _validation("content is not valid base64") from exc
        elif encoding in ("utf-8", "utf8"):
            raw = content.encode()
        else:
            raise _validation(f"encoding {encoding!r} is not supported")
        sha = self._git("hash-object", "-w", "--stdin", input=raw).stdout.decode().strip()
        return {"sha": sha, "url": self._url(f"/git/blobs/{sha}")}

    def _create_tree(self, data: Any) -> dict[str, Any]:
        entries, base_tree = data.get("tree"), data.get("base_tree")
        if not isinstance(entries, list):
            raise _validation("tree is required")
        if base_tree is not None and self._object_type(base_tree) != "tree":
            raise _validation("base_tree is not a valid tree")
        lines: list[str] = []
        zero = "0" * 40
        for entry in entries:
            if not isinstance(entry, dict):
                raise _validation("tree entries must be objects")
            path, mode, kind = entry.get("path"), entry.get("mode"), entry.get("type")
            if not isinstance(path, str) or not _usable_path(path):
                raise _validation(f"tree.path {path!r} contains a malformed path component")
            if kind != "blob" or mode not in _BLOB_MODES:
                # GitHub takes trees and submodules too; Rescue only ever writes files.
                raise _validation("this stand-in takes blob entries only")
            if "content" in entry and "sha" in entry:
                raise _validation("Must supply either tree.sha or tree.content, not both")
            if "content" in entry:
                content = entry["content"]
                if not isinstance(content, str):
                    raise _validation("tree.content must be a string")
                blob = self._git("hash-object", "-w", "--stdin", input=content.encode())
                lines.append(f"{mode} {blob.stdout.decode().strip()}\t{path}")
            elif "sha" in entry:
                sha = entry["sha"]
                if sha is None:
                    lines.append(f"0 {zero}\t{path}")  # mode 0: remove the path
                elif self._object_type(sha) == "blob":
                    lines.append(f"{mode} {sha}\t{path}")
                else:
                    raise _validation(f"tree.sha {sha!r} is not a valid blob")
            else:
                raise _validation("Must supply either tree.sha or tree.content")
        with tempfile.TemporaryDirectory(prefix="github-standin-") as tmp:
            work = Path(tmp) / "work"
            work.mkdir()
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(work)}
            if base_tree is None:
                self._git("read-tree", "--empty", env=env)
            else:
                self._git("read-tree", base_tree, env=env)
            if lines:
                feed = "".join(f"{line}\0" for line in lines).encode()
                self._git("update-index", "-z", "--index-info", input=feed, env=env)
            sha = self._git("write-tree", env=env).stdout.decode().strip()
        listing = self._git("ls-tree", "-z", sha).stdout.decode(errors="replace")
        top = []
        for item in filter(None, listing.split("\0")):
            meta, _, name = item.partition("\t")
            mode, kind, obj = meta.split()
            top.append({"path": name, "mode": mode, "type": kind, "sha": obj})
        return {"sha": sha, "url": self._url(f"/git/trees/{sha}"), "tree": top, "truncated": False}

    def _create_commit(self, data: Any) -> dict[str, Any]:
        message, tree, parents = data.get("message"), data.get("tree"), data.get("parents", [])
        if not isinstance(message, str):
            raise _validation("message is required")
        if self._object_type(tree) != "tree":
            raise _validation("tree is not a valid tree")
        if not isinstance(parents, list) or any(self._object_type(p) != "commit" for p in parents):
            raise _validation("parents must be commits")
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        sha = self._git(*args, "-F", "-", input=message.encode()).stdout.decode().strip()
        return self._commit_json(sha)

    def _create_ref(self, data: Any) -> dict[str, Any]:
        ref, sha = data.get("ref"), data.get("sha")
        if not isinstance(ref, str) or not _valid_ref(ref):
            raise _fail(422, "Reference name is invalid")
        if self._object_type(sha) != "commit":
            raise _fail(422, "Object does not exist")
        if self._ref(ref) is not None:
            raise _fail(422, "Reference already exists")
        # The empty old value makes update-ref refuse if the ref appeared meanwhile.
        self._git("update-ref", "-m", "created by the GitHub stand-in", ref, sha, "")
        return self._ref_json(ref, sha)

    def _update_ref(self, ref: str, data: Any) -> dict[str, Any]:
        sha, force = data.get("sha"), bool(data.get("force", False))
        old = self._ref(ref)
        if old is None:
            raise _fail(422, "Reference does not exist")
        if self._object_type(sha) != "commit":
            raise _fail(422, "Object does not exist")
        if not force:
            ancestor = self._git("merge-base", "--is-ancestor", old, sha, check=False)
            if ancestor.returncode != 0:
                raise _fail(422, "Update is not a fast forward")
        self._git("update-ref", "-m", "moved by the GitHub stand-in", ref, sha, old)
        return self._ref_json(ref, sha)

    # --- pull requests --------------------------------------------------------------------

    def _pull_json(self, pull: Mapping[str, Any]) -> dict[str, Any]:
        def side(branch: str) -> dict[str, Any]:
            return {
                "label": f"{self.owner}:{branch}",
                "ref": branch,
                "sha": self._ref(f"refs/heads/{branch}"),
                "repo": {"full_name": f"{self.owner}/{self.repo}"},
            }

        return {
            "url": self._url(f"/pulls/{pull['number']}"),
            "id": 1000 + pull["number"],
            "number": pull["number"],
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "html_url": pull["html_url"],
            "merged_at": pull.get("merged_at"),
            "head": side(pull["head"]),
            "base": side(pull["base"]),
        }

    def _list_pulls(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        head = query.get("head")
        found = []
        for pull in sorted(self.pulls, key=lambda p: -int(p["number"])):  # newest first
            if state != "all" and pull["state"] != state:
                continue
            if head is not None:
                user, sep, branch = head.partition(":")
                if sep and (user != self.owner or branch != pull["head"]):
                    continue
            if "base" in query and pull["base"] != query["base"]:
                continue
            found.append(self._pull_json(pull))
        return found

    def _create_pull(self, data: Any) -> dict[str, Any]:
        title, head, base = data.get("title"), data.get("head"), data.get("base")
        body = data.get("body")
        if not isinstance(title, str) or not title:
            raise _validation("title is required")
        if not isinstance(head, str) or not isinstance(base, str):
            raise _validation("head and base are required")
        head = head.removeprefix(f"{self.owner}:")
        head_sha = self._ref(f"refs/heads/{head}")
        base_sha = self._ref(f"refs/heads/{base}")
        if head_sha is None:
            raise _fail(422, "Validation Failed", errors=[_field("head", "invalid")])
        if base_sha is None:
            raise _fail(422, "Validation Failed", errors=[_field("base", "invalid")])
        for pull in self.pulls:
            if pull["state"] == "open" and pull["head"] == head and pull["base"] == base:
                raise _validation(f"A pull request already exists for {self.owner}:{head}.")
        ahead = self._git("merge-base", "--is-ancestor", head_sha, base_sha, check=False)
        if ahead.returncode == 0:
            raise _validation(f"No commits between {base} and {head}")
        number = self._next_number()
        pull = {
            "number": number,
            "head": head,
            "base": base,
            "title": title,
            "body": body if isinstance(body, str) else None,
            "state": "open",
            "html_url": self._html(f"/pull/{number}"),
        }
        self.pulls.append(pull)
        return self._pull_json(pull)

    # --- issues ---------------------------------------------------------------------------

    def _next_number(self) -> int:
        return 1 + max((int(item["number"]) for item in [*self.pulls, *self.issues]), default=0)

    def _issue_json(self, issue: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": self._url(f"/issues/{issue['number']}"),
            "id": 2000 + issue["number"],
            "number": issue["number"],
            "state": issue["state"],
            "title": issue["title"],
            "body": issue["body"],
            "labels": [{"name": name} for name in issue["labels"]],
            "html_url": self._html(f"/issues/{issue['number']}"),
            "created_at": issue["created_at"],
        }

    def _pull_as_issue(self, pull: Mapping[str, Any]) -> dict[str, Any]:
        number = pull["number"]
        return {
            "url": self._url(f"/issues/{number}"),
            "id": 1000 + number,
            "number": number,
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "labels": [],
            "html_url": pull["html_url"],
            "pull_request": {
                "url": self._url(f"/pulls/{number}"),
                "html_url": pull["html_url"],
                "diff_url": f"{pull['html_url']}.diff",
                "patch_url": f"{pull['html_url']}.patch",
                "merged_at": pull.get("merged_at"),
            },
        }

    def _list_issues(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        wanted = [name for name in query.get("labels", "").split(",") if name]
        try:
            per_page = min(max(int(query.get("per_page", "30")), 1), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError as exc:
            raise _validation("per_page and page must be numbers") from exc
        found = []
        every = [(p["number"], self._pull_as_issue(p), []) for p in self.pulls] + [
            (i["number"], self._issue_json(i), i["labels"]) for i in self.issues
        ]
        for _number, item, labels in sorted(every, key=lambda e: -int(e[0])):  # newest first
            if state != "all" and item["state"] != state:
                continue
            if any(name not in labels for name in wanted):
                continue
            found.append(item)
        return found[(page - 1) * per_page : page * per_page]

    def _create_issue(self, data: Any) -> dict[str, Any]:
        title, body, labels = data.get("title"), data.get("body"), data.get("labels", [])
        if not isinstance(title, str) or not title:
            raise _validation("title is required")
        if not isinstance(labels, list):
            raise _validation("labels must be an array")
        names = []
        for label in labels:
            name = label.get("name") if isinstance(label, dict) else label
            if not isinstance(name, str) or not name:
                raise _validation("labels must be names")
            names.append(name)
        issue = {
            "number": self._next_number(),
            "title": title,
            "body": body if isinstance(body, str) else None,
            "labels": names,
            "state": "open",
            "created_at": _iso(int(datetime.now(UTC).timestamp())),
        }
        self.issues.append(issue)
        return self._issue_json(issue)


def _field(name: str, code: str) -> dict[str, str]:
    return {"resource": "PullRequest", "field": name, "code": code}


def _usable_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and all(p not in ("", ".", "..", ".git") for p in parts) and "\0" not in path


def _valid_ref(ref: str) -> bool:
    if not ref.startswith("refs/") or ref.count("/") < 2:
        return False
    result = subprocess.run(
        ["git", "check-ref-format", ref], capture_output=True, check=False, timeout=10
    )
    return result.returncode == 0


def _iso(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        owner: GitHubStandIn,
    ) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away; the test sees its own error

    def abort_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "github-standin"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass  # headers, and so the token, are never written anywhere

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"message": "Payload too large"}, {})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        status, payload, headers = server.owner.handle(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        self._reply(status, payload, headers)

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
