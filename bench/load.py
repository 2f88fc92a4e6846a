"""Sending requests the way the figures need: a fixed number in flight, or on a timetable.

Every HTTP figure of the benchmarks comes from here, so the product and its baselines are
always driven by the same client (httpx, keep-alive connections, bodies serialised before the
clock starts) and measured the same way: latency from just before a request is sent to its
whole answer read, throughput as answered requests over the wall time of the run.

Two shapes. ``closed_loop`` keeps ``concurrency`` requests in flight until every body is sent,
which measures capacity. ``on_schedule`` sends each request at its own moment whatever the
answers before it, as Alertmanager does (one goroutine per notification), which measures how
a burst is lived through; a request that answers 5xx or fails to connect is retried after a
second, as Alertmanager retries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import percentile

#: Alertmanager gives up on a notification after its retries; so does the timetable sender.
ATTEMPTS = 5
RETRY_DELAY = 1.0


@dataclass
class Run:
    """One run of requests: what was answered, how fast, and with what."""

    label: str
    seconds: float = 0.0  # wall time from the first request sent to the last answer read
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    codes: Counter[int] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # the JSON answers' "status"
    retries: int = 0
    failures: int = 0  # requests given up: a 4xx, or every attempt failed
    late: list[float] = field(default_factory=list)  # seconds behind the timetable at sending

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else float("nan")

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "requests": len(self.latencies),
            "seconds": self.seconds,
            "rate_per_s": self.rate,
            "p50_ms": self.p50 * 1000,
            "p90_ms": percentile(self.latencies, 90) * 1000,
            "p99_ms": self.p99 * 1000,
            "max_ms": max(self.latencies, default=float("nan")) * 1000,
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "answers": dict(self.answers),
            "retries": self.retries,
            "failures": self.failures,
            "sent_late_p99_ms": percentile(self.late, 99) * 1000 if self.late else None,
        }


def _note(run: Run, response: httpx.Response) -> None:
    run.codes[response.status_code] += 1
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            answer = response.json()
        except json.JSONDecodeError:
            return
        if isinstance(answer, dict) and isinstance(answer.get("status"), str):
            run.answers[answer["status"]] += 1


Send = Callable[[httpx.AsyncClient, Any], Awaitable[httpx.Response]]


def post(path: str) -> Send:
    """Each item is a body to POST to ``path``."""

    def send(client: httpx.AsyncClient, body: Any) -> Awaitable[httpx.Response]:
        return client.post(path, content=body)

    return send


async def _closed_loop(
    client: httpx.AsyncClient, items: Sequence[Any], send: Send, concurrency: int, run: Run
) -> None:
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            began = time.perf_counter()
            response = await send(client, item)
            run.latencies.append(time.perf_counter() - began)
            _note(run, response)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - began


def closed_loop(
    client_factory: Callable[[], httpx.AsyncClient],
    items: Sequence[Any],
    send: Send,
    *,
    concurrency: int,
    label: str,
    warmup: Sequence[Any] = (),
) -> Run:
    """Send every item with ``concurrency`` in flight; ``warmup`` items go first, uncounted
    (they open the connections)."""
    run = Run(label)

    async def main() -> None:
        async with client_factory() as client:
            if warmup:
                await _closed_loop(client, warmup, send, concurrency, Run("warm-up"))
            await _closed_loop(client, items, send, concurrency, run)

    asyncio.run(main())
    return run


@dataclass(frozen=True)
class Timed:
    """One request of a timetable: when to send it (seconds after the start) and its body."""

    at: float
    body: bytes
    key: str = ""  # what the caller wants to find the answer by (a group)


async def _send(
    client: httpx.AsyncClient, path: str, request: Timed, start: float, run: Run
) -> httpx.Response | None:
    await asyncio.sleep(max(0.0, start + request.at - time.perf_counter()))
    run.late.append(max(0.0, time.perf_counter() - start - request.at))
    for attempt in range(ATTEMPTS):
        began = time.perf_counter()
        try:
            response = await client.post(path, content=request.body)
        except httpx.TransportError:
            response = None
        if attempt == 0:
            run.latencies.append(time.perf_counter() - began)
        if response is not None:
            _note(run, response)
            if response.status_code < 500:
                if response.status_code >= 400:
                    run.failures += 1
                return response
        if attempt + 1 < ATTEMPTS:
            run.retries += 1
            await asyncio.sleep(RETRY_DELAY)
    run.failures += 1
    return None


def on_schedule(
    client_factory: Callable[[], httpx.AsyncClient],
    path: str,
    timetable: Sequence[Timed],
    *,
    label: str,
) -> tuple[Run, list[tuple[Timed, float, httpx.Response | None]]]:
    """Send each request at its moment; returns the run and, per request, when its final
    answer came (seconds after the start) and the answer."""
    run = Run(label)
    answered: list[tuple[Timed, float, httpx.Response | None]] = []

    async def one(client: httpx.AsyncClient, request: Timed, start: float) -> None:
        response = await _send(client, path, request, start, run)
        answered.append((request, time.perf_counter() - start, response))

    async def main() -> None:
        async with client_factory() as client:
            start = time.perf_counter()
            await asyncio.gather(*(one(client, request, start) for request in timetable))
            run.seconds = time.perf_counter() - start

    asyncio.run(main())
    return run, answered
