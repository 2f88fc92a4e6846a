"""The benchmarks' own client of the API server: plain HTTP with httpx, nothing of the product.

Two jobs need it. It is a baseline: creating the very Rescue objects the webhook would create,
straight through the API server, shows what the webhook's writes cost at the least. And it is
the benchmarks' eyes: a watch on a namespace's rescues says, to the millisecond and without
polling, when the operator has handled each one (``status.observedGeneration`` caught up with
``metadata.generation``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from rescue import controlplane
from rescue.core.model import GROUP, RESCUE_PLURAL, VERSION


class ApiError(RuntimeError):
    """The API server answered something the benchmark did not expect."""


class ApiServer:
    """A control plane's API server, reached with its admin token."""

    def __init__(self, plane: controlplane.ControlPlane) -> None:
        self.url = plane.server
        self.headers = {"Authorization": f"Bearer {plane.token}"}
        self.tls = ssl.create_default_context(cafile=str(plane.ca_file))
        self.http = httpx.Client(base_url=self.url, headers=self.headers, verify=self.tls)

    def close(self) -> None:
        self.http.close()

    def async_client(self, *, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers=self.headers,
            verify=self.tls,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=60,
        )

    @staticmethod
    def rescues_path(namespace: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{RESCUE_PLURAL}"

    def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json(self.http.post(self.rescues_path(namespace), json=dict(body)), 201)

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of a rescue; returns the rescue as stored."""
        response = self.http.patch(
            f"{self.rescues_path(namespace)}/{name}",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return self._json(response, 200)

    def delete(self, namespace: str, name: str) -> None:
        response = self.http.delete(f"{self.rescues_path(namespace)}/{name}")
        if response.status_code not in (200, 202, 404):
            raise ApiError(f"deleting {namespace}/{name}: {response.status_code} {response.text}")

    def list(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        """Every rescue of the namespace, and the list's resourceVersion (to watch from)."""
        path = self.rescues_path(namespace)
        response = self.http.get(path, timeout=120)
        # A resource installed moments ago answers 429 until its watch cache is filled.
        deadline = time.monotonic() + 60
        while response.status_code == 429 and time.monotonic() < deadline:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            response = self.http.get(path, timeout=120)
        document = self._json(response, 200)
        return list(document.get("items") or []), str(document["metadata"]["resourceVersion"])

    def delete_all(self, namespace: str, *, timeout: float = 120.0) -> None:
        """Delete every rescue of the namespace and wait until none is left."""
        response = self.http.delete(self.rescues_path(namespace), timeout=timeout)
        if response.status_code != 200:
            raise ApiError(f"deleting the rescues of {namespace}: {response.text[:300]}")
        deadline = time.monotonic() + timeout
        while self.list(namespace)[0]:
            if time.monotonic() > deadline:
                raise ApiError(f"rescues of {namespace} were still there after {timeout:.0f} s")
            time.sleep(0.2)

    @staticmethod
    def _json(response: httpx.Response, expected: int) -> dict[str, Any]:
        if response.status_code != expected:
            raise ApiError(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:300]}"
            )
        document: dict[str, Any] = response.json()
        return document


@dataclass
class Seen:
    """What a watch last showed of one rescue."""

    generation: int
    observed: int  # status.observedGeneration, 0 until the operator wrote one
    phase: str
    step: str
    created_at: float  # time.perf_counter() when the watch first saw it
    handled_at: float | None  # when observedGeneration first caught up with generation

    @property
    def handled(self) -> bool:
        return self.observed >= self.generation > 0


class Tracker:
    """Waits for a set of rescues to reach a state; knows when the last one did."""

    def __init__(self, names: Iterable[str], done: Callable[[str, Seen], bool]) -> None:
        self.left = set(names)
        self.done = done
        self.last: float | None = None  # time.perf_counter() when the last one got there
        self.finished = threading.Event()
        if not self.left:
            self.finished.set()

    def update(self, name: str, state: Seen) -> None:
        if name in self.left and self.done(name, state):
            self.left.discard(name)
            self.last = state.handled_at or time.perf_counter()
            if not self.left:
                self.finished.set()


class Watcher:
    """Follows the rescues of one namespace through a watch, in a thread of its own.

    ``seen`` holds each rescue's last state (read it under ``changed``); ``track`` hands out
    a Tracker that the watch moves on as events arrive.
    """

    def __init__(self, api: ApiServer, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.trackers: list[Tracker] = []
        self.seen: dict[str, Seen] = {}
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{namespace}", daemon=True)
        self._response: httpx.Response | None = None
        self.error: BaseException | None = None

    def start(self) -> Watcher:
        items, version = self.api.list(self.namespace)
        with self.changed:
            for item in items:
                self._apply("ADDED", item)
        self._version = version
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # The watch waits for the next event; shutting its socket down ends the wait at once.
        response = self._response
        if response is not None:
            stream = response.extensions.get("network_stream")
            connection = stream.get_extra_info("socket") if stream is not None else None
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)

    def track(self, names: Iterable[str], done: Callable[[str, Seen], bool]) -> Tracker:
        """A Tracker of ``names``, already moved on by what the watch has seen of them."""
        tracker = Tracker(names, done)
        with self.changed:
            for name in list(tracker.left):
                state = self.seen.get(name)
                if state is not None:
                    tracker.update(name, state)
            self.trackers.append(tracker)
        return tracker

    def wait(self, tracker: Tracker, *, timeout: float) -> bool:
        """True once every rescue of ``tracker`` got there; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        try:
            while not tracker.finished.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0))):
                if self.error is not None:
                    raise ApiError(f"the watch of {self.namespace} failed: {self.error}")
                if time.monotonic() >= deadline:
                    return False
            return True
        finally:
            with self.changed:
                self.trackers.remove(tracker)

    def wait_empty(self, *, timeout: float) -> bool:
        """True once the watch has seen every rescue of the namespace go."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.seen:
                if time.monotonic() >= deadline:
                    return False
                self.changed.wait(timeout=1.0)
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._follow()
        except BaseException as exc:  # the waiting thread reports it
            if self._stop.is_set():
                return
            with self.changed:
                self.error = exc
                self.changed.notify_all()

    def _follow(self) -> None:
        """One watch request, from the last resourceVersion seen, until the server ends it."""
        params = {
            "watch": "1",
            "resourceVersion": self._version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        }
        path = self.api.rescues_path(self.namespace)
        with (
            httpx.Client(
                base_url=self.api.url, headers=self.api.headers, verify=self.api.tls, timeout=90
            ) as client,
            client.stream("GET", path, params=params) as response,
        ):
            self._response = response
            if response.status_code != 200:
                raise ApiError(f"watch: {response.status_code} {response.read()[:300]!r}")
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                kind, item = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    # Usually 410 Gone: the version is too old. Start again from a fresh list.
                    items, self._version = self.api.list(self.namespace)
                    with self.changed:
                        self.seen.clear()
                        for fresh in items:
                            self._apply("ADDED", fresh)
                        self.changed.notify_all()
                    return
                with contextlib.suppress(KeyError):
                    self._version = item["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                with self.changed:
                    self._apply(str(kind), item)
                    self.changed.notify_all()

    def _apply(self, kind: str, item: Mapping[str, Any]) -> None:
        meta = item.get("metadata") or {}
        name = str(meta.get("name", ""))
        if kind == "DELETED":
            self.seen.pop(name, None)
            return
        status = item.get("status") or {}
        now = time.perf_counter()
        before = self.seen.get(name)
        state = Seen(
            generation=int(meta.get("generation", 0)),
            observed=int(status.get("observedGeneration", 0)),
            phase=str(status.get("phase", "")),
            step=str(status.get("step", "")),
            created_at=before.created_at if before else now,
            handled_at=None,
        )
        if state.handled:
            # The moment it caught up, kept until the spec moves on again.
            state.handled_at = before.handled_at if before and before.handled_at else now
        self.seen[name] = state
        for tracker in self.trackers:
            tracker.update(name, state)
