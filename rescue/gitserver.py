"""A real git forge on this machine: bare repositories served over smart HTTP with a token.

Rescue mitigates by committing to a GitOps repository and pushing it, so the tests and the demo
need a remote reached exactly the way a user's forge is: git's own smart-HTTP protocol, with
credentials, over a socket. This module is that remote and nothing more; it is **not** a product
component. A small ``http.server`` checks the token (HTTP Basic with the token as password, or
``Authorization: Bearer``) and hands every request to ``git http-backend``, the CGI program that
ships with git, so what a client talks to is git's real server side, not an imitation of it.

``python -P -m rescue.gitserver --root DIR --token-file F --port P`` serves until SIGTERM or
SIGINT, for trying things by hand.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any
from urllib.parse import unquote

logger = logging.getLogger("rescue.gitserver")  # the same name under -m

REALM = "rescue-git"
CHUNK = 64 * 1024
MAX_CGI_HEADER_BYTES = 64 * 1024
_REPO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
# Headers that describe one hop of HTTP; we frame the response ourselves.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "status"}


class _BodyError(Exception):
    """The client's request body is malformed or ended early."""


def _git_env() -> dict[str, str]:
    """The environment git runs in here: PATH and HOME only, no user or system configuration.

    Nothing from the calling process (a test's ``GIT_DIR``, a developer's ``~/.gitconfig``)
    reaches the server's git, so it behaves the same on every machine.
    """
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }


def _http_backend() -> Path:
    found = subprocess.run(
        ["git", "--exec-path"],
        capture_output=True,
        text=True,
        check=True,
        env=_git_env(),
        timeout=30,
    )
    backend = Path(found.stdout.strip()) / "git-http-backend"
    if not backend.is_file():
        raise RuntimeError(f"git http-backend not found at {backend}; is git installed fully?")
    return backend


class GitServer:
    """Bare repositories under `root`, served over smart HTTP at http://127.0.0.1:PORT/<repo>.git"""

    def __init__(self, root: Path, *, token: str, username: str = "git", port: int = 0) -> None:
        if not token:
            raise ValueError("the token must not be empty")
        self.root = Path(root)
        self.username = username
        self.requests: list[tuple[str, str, int]] = []
        self._token = token.encode()
        self._port = port
        self._lock = threading.Lock()
        self._rejecting = False
        self._backend: Path | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the token
        state = self.url if self._httpd is not None else "stopped"
        return f"GitServer(root={str(self.root)!r}, {state})"

    # Life cycle

    def start(self) -> GitServer:
        """Listen on 127.0.0.1 and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("the git server is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        self._backend = _http_backend()
        httpd = _Server(("127.0.0.1", self._port), _Handler, owner=self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"git-server-{httpd.server_address[1]}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread = thread
        thread.start()
        logger.info("serving git repositories under %s at %s", self.root, self.url)
        return self

    def stop(self) -> None:
        """Stop listening, end open connections and running backends, and wait for them."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        if thread is not None:
            thread.join()
        httpd.abort_connections()
        httpd.server_close()  # joins the threads that served requests
        self._httpd = None
        self._thread = None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Addresses and repositories

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if self._httpd is None:
            raise RuntimeError("the git server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def create_repo(self, name: str) -> Path:
        """An empty bare repository ``<root>/<name>.git`` on branch main that accepts pushes."""
        if not _REPO_NAME.fullmatch(name) or ".." in name.split("/"):
            raise ValueError(f"not a usable repository name: {name!r}")
        path = self.root / f"{name}.git"
        if path.exists():
            raise FileExistsError(f"repository {name!r} already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        for argv in (
            ["git", "init", "--quiet", "--bare", "-b", "main", str(path)],
            ["git", f"--git-dir={path}", "config", "http.receivepack", "true"],
        ):
            subprocess.run(argv, check=True, capture_output=True, env=_git_env(), timeout=60)
        return path

    def reject_pushes(self, flag: bool) -> None:
        """While true, answer every receive-pack request (a push) with 503; fetches still work."""
        with self._lock:
            self._rejecting = flag

    # Used by the request handler

    @property
    def rejecting_pushes(self) -> bool:
        with self._lock:
            return self._rejecting

    @property
    def backend(self) -> Path:
        if self._backend is None:
            raise RuntimeError("the git server is not running")
        return self._backend

    def authenticate(self, header: str | None) -> str | None:
        """The user a request's ``Authorization`` header proves, or None."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if hmac.compare_digest(value.encode(), self._token):
                return self.username
            return None
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        if not sep or not hmac.compare_digest(password, self._token):
            return None
        try:
            name = user.decode()
        except UnicodeDecodeError:
            return self.username
        # REMOTE_USER goes into an environment variable: printable text only.
        return name if name and name.isprintable() else self.username

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))


class _Server(ThreadingHTTPServer):
    """Threads per connection; remembers open connections so that stop() can end them."""

    daemon_threads = True
    block_on_close = True  # server_close() joins the request threads

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        owner: GitServer,
    ) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._procs: set[subprocess.Popen[bytes]] = set()
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
        logger.debug("git server: request from %s failed", client_address, exc_info=True)

    def track(self, proc: subprocess.Popen[bytes], running: bool) -> None:
        with self._open_lock:
            if running:
                self._procs.add(proc)
            else:
                self._procs.discard(proc)

    def abort_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rescue-gitserver"
    timeout = 300  # seconds a connection may stay silent

    def _server(self) -> _Server:
        server = self.server
        assert isinstance(server, _Server)
        return server

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only; headers (and so credentials) are never logged.
        logger.debug("git server %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # One request

    def _serve(self) -> None:
        server = self._server()
        owner = server.owner
        path, _, query = self.path.partition("?")
        framing = self._body_framing()
        if framing is None:
            self._reply(501, "Transfer-Encoding not supported\n", drained=False)
            return
        user = owner.authenticate(self.headers.get("Authorization"))
        if user is None:
            self._reply(
                401,
                "Authentication required\n",
                drained=framing == (0, False),
                headers=[("WWW-Authenticate", f'Basic realm="{REALM}"')],
            )
            return
        if owner.rejecting_pushes and _is_receive_pack(path, query):
            self._reply(503, "Pushes are refused right now\n", drained=framing == (0, False))
            return
        path_info = unquote(path)
        if (
            not path_info.startswith("/")
            or ".." in path_info.split("/")
            or not path_info.isprintable()
        ):
            self._reply(404, "Not found\n", drained=framing == (0, False))
            return
        self._run_backend(server, user, path_info, query, framing)

    def _body_framing(self) -> tuple[int, bool] | None:
        """(Content-Length, chunked) of the request body; None for framing we do not speak."""
        encoding = self.headers.get("Transfer-Encoding")
        if encoding:
            if encoding.strip().lower() != "chunked":
                return None
            return (-1, True)
        length = self.headers.get("Content-Length")
        if length is None:
            return (0, False)
        try:
            size = int(length)
        except ValueError:
            return None
        return (size, False) if size >= 0 else None

    def _reply(
        self,
        status: int,
        text: str,
        *,
        drained: bool,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A short plain-text answer; closes the connection if the request body was not read."""
        body = text.encode()
        self._server().owner.record(self.command, self.path, status)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if not drained:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _run_backend(
        self,
        server: _Server,
        user: str,
        path_info: str,
        query: str,
        framing: tuple[int, bool],
    ) -> None:
        length, chunked = framing
        has_body = chunked or length > 0
        env = _git_env()
        env.update(
            {
                "GIT_PROJECT_ROOT": str(server.owner.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": self.request_version,
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path_info,
                "QUERY_STRING": query,
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
            }
        )
        if not chunked and (length > 0 or self.command == "POST"):
            env["CONTENT_LENGTH"] = str(length)
        # Without CONTENT_LENGTH (a chunked body) http-backend reads its input to the end.
        for header, variable in (
            ("Content-Type", "CONTENT_TYPE"),
            ("Git-Protocol", "GIT_PROTOCOL"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ):
            value = self.headers.get(header)
            if value and "\0" not in value:
                env[variable] = value

        with subprocess.Popen(
            [str(server.owner.backend)],
            stdin=subprocess.PIPE if has_body else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=server.owner.root,
        ) as proc:
            server.track(proc, running=True)
            feeder = _Feeder(self.rfile, proc.stdin, length, chunked) if has_body else None
            errors = _Drain(proc.stderr)
            try:
                self._relay(proc, drained=not has_body)
            except BaseException:
                proc.kill()
                self.close_connection = True
                raise
            finally:
                if feeder is not None:
                    feeder.join()
                    if feeder.error is not None:
                        self.close_connection = True
                        logger.debug("git server: request body: %s", feeder.error)
                errors.join()
                proc.wait()
                server.track(proc, running=False)
            if proc.returncode != 0 or errors.text:
                logger.debug(
                    "git http-backend %s %s exited %s: %s",
                    self.command,
                    path_info,
                    proc.returncode,
                    errors.text.strip(),
                )

    def _relay(self, proc: subprocess.Popen[bytes], *, drained: bool) -> None:
        """Parse the CGI response head, then stream its body to the client."""
        stdout = proc.stdout
        assert isinstance(stdout, io.BufferedReader)
        head, rest = _read_cgi_head(stdout)
        if head is None:
            self._reply(502, "git http-backend gave no response\n", drained=drained)
            return
        status, reason, headers = _parse_cgi_head(head)
        content_length = next(
            (value for name, value in headers if name.lower() == "content-length"), None
        )
        chunked = content_length is None and self.request_version == "HTTP/1.1"
        self._server().owner.record(self.command, self.path, status)
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif content_length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        write = self.wfile.write
        data = rest
        while True:
            if data:
                write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            data = stdout.read1(CHUNK)
            if not data:
                break
        if chunked:
            write(b"0\r\n\r\n")


class _Feeder:
    """Copies the request body (fixed length or chunked) into the backend's stdin, in a thread.

    Reading and writing at once keeps a backend that answers before it has read everything
    from deadlocking against a client that is still sending. After the backend stops reading,
    the rest of the body is still read (and dropped) so the connection stays in step.
    """

    def __init__(
        self, rfile: io.BufferedIOBase, stdin: IO[bytes] | None, length: int, chunked: bool
    ) -> None:
        self.error: Exception | None = None
        self._rfile = rfile
        self._stdin = stdin
        self._length = length
        self._chunked = chunked
        self._thread = threading.Thread(target=self._run, name="git-server-body", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        try:
            pieces = self._chunks() if self._chunked else self._fixed()
            for piece in pieces:
                self._write(piece)
        except (_BodyError, OSError, ValueError) as error:  # the handler reports it
            self.error = error
        finally:
            if self._stdin is not None:
                with contextlib.suppress(OSError):
                    self._stdin.close()

    def _write(self, data: bytes) -> None:
        if self._stdin is None:
            return
        try:
            self._stdin.write(data)
        except (BrokenPipeError, ConnectionResetError, ValueError):
            # The backend stopped reading (it answered already, or failed); keep draining.
            with contextlib.suppress(OSError):
                self._stdin.close()
            self._stdin = None

    def _fixed(self) -> Iterator[bytes]:
        remaining = self._length
        while remaining > 0:
            data = self._rfile.read(min(CHUNK, remaining))
            if not data:
                raise _BodyError(f"request body ended {remaining} bytes early")
            remaining -= len(data)
            yield data

    def _chunks(self) -> Iterator[bytes]:
        while True:
            line = self._rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise _BodyError("bad chunk size line")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BodyError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise _BodyError("negative chunk size")
            if size == 0:
                break
            remaining = size
            while remaining > 0:
                data = self._rfile.read(min(CHUNK, remaining))
                if not data:
                    raise _BodyError("request body ended inside a chunk")
                remaining -= len(data)
                yield data
            if self._rfile.readline(1024).strip():
                raise _BodyError("chunk not followed by CRLF")
        while True:  # trailers, up to the blank line
            line = self._rfile.readline(8192)
            if not line:
                raise _BodyError("request body ended inside the trailers")
            if not line.strip():
                return


class _Drain:
    """Reads a pipe to its end in a thread (the backend's stderr, so it never blocks on it)."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        self._pipe = pipe
        self._data = b""
        self._thread = threading.Thread(target=self._run, name="git-server-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError, ValueError):
                self._data = self._pipe.read()

    def join(self) -> None:
        self._thread.join()

    @property
    def text(self) -> str:
        return self._data.decode(errors="replace")


def _is_receive_pack(path: str, query: str) -> bool:
    return path.endswith("/git-receive-pack") or "service=git-receive-pack" in query.split("&")


def _read_cgi_head(stdout: io.BufferedReader) -> tuple[bytes | None, bytes]:
    """The CGI header block and whatever body bytes were read along with it."""
    buffer = b""
    while True:
        for separator in (b"\r\n\r\n", b"\n\n"):
            end = buffer.find(separator)
            if end >= 0:
                return buffer[:end], buffer[end + len(separator) :]
        if len(buffer) > MAX_CGI_HEADER_BYTES:
            return None, b""
        data = stdout.read1(CHUNK)
        if not data:
            return None, b""
        buffer += data


def _parse_cgi_head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for raw in head.decode("latin-1").splitlines():
        name, sep, value = raw.partition(":")
        if not sep:
            continue
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            with contextlib.suppress(ValueError):
                status, reason = int(code), text or reason
            continue
        headers.append((name, value))
    return status, reason, headers


def main(argv: Sequence[str] | None = None) -> int:
    """Serve bare repositories under --root until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -P -m rescue.gitserver",
        description="Serve bare git repositories over smart HTTP with a token (tests, the demo).",
    )
    parser.add_argument("--root", type=Path, required=True, help="folder of <name>.git repos")
    parser.add_argument("--token-file", type=Path, required=True, help="file holding the token")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--username", default="git", help="user name for bearer requests")
    parser.add_argument(
        "--create",
        action="append",
        default=[],
        metavar="NAME",
        help="create the bare repository NAME.git first unless it exists (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        token = args.token_file.read_text().strip()
    except OSError as error:
        print(f"error: cannot read the token file: {error}", file=sys.stderr)
        return 2
    if not token:
        print(f"error: the token file {args.token_file} is empty", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = GitServer(args.root, token=token, username=args.username, port=args.port)
        for name in args.create:
            if not (args.root / f"{name}.git").exists():
                server.create_repo(name)
        with server:
            print(server.url, flush=True)
            stopping.wait()
    except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
