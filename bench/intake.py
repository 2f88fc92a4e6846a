"""Part 1, intake: how many notifications a second the webhook records, and how fast it answers.

Alertmanager waits for the webhook's answer before it counts a notification delivered, so the
answer's latency is what an alert storm queues behind, and notifications per second is how much
of a storm the webhook takes. Each payload size (1, 10 and 100 alerts: one pod, a deployment, a
whole service) is measured in two cases:

- a new incident: every notification has a group key of its own, so each creates a Rescue;
- a repeat: the same notifications again, which the webhook finds already recorded (the
  deduplicated delivery of every repeat interval, retry and HA peer).

Beside each, two baselines driven by the same client at the same concurrency with the same
bodies: a minimal FastAPI endpoint on uvicorn in its own process that only parses the JSON
(``bench/minimal_endpoint.py``; the ratio is the webhook's own cost), and the API server's
raw rate for the same work: creating the very Rescue objects the webhook builds for those
notifications (``intake.build_rescue``, so byte for byte the same objects), and, for the
repeat, creating them again, which the API server refuses with ``AlreadyExists``.

Each repetition starts from empty namespaces, so the webhook's lookup of an incident's open
rescue always searches the same number of rescues.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import payloads
from bench.cluster import Cluster
from bench.common import cpu_seconds, median, say
from bench.load import Run, Send, closed_loop, post
from bench.report import PartResult, Row
from rescue.core.model import LABEL_GROUP

NAMESPACE = "bench-intake"
RAW_NAMESPACE = "bench-raw"
PATH = "/api/v1/alerts"
PART = "intake"
TYPICAL = 10  # alerts in the payload the targets are about


@dataclass(frozen=True)
class Settings:
    requests: int  # notifications per measured run
    repeats: int  # runs of each measurement; figures are their medians
    concurrency: int  # requests in flight
    sizes: tuple[int, ...] = (1, 10, 100)


@dataclass
class Measured:
    """The runs of one case (a payload size and a way of sending it)."""

    runs: list[Run] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)  # per request, the serving process
    plane_cpu_ms: list[float] = field(default_factory=list)  # per request, apiserver + etcd

    def median(self, pick: Callable[[Run], float]) -> float:
        return median([pick(run) for run in self.runs])


@dataclass(frozen=True)
class Target:
    """Where one case sends its requests, and which process serves them."""

    client: Callable[[], httpx.AsyncClient]
    send: Send
    server: int | None  # the serving process, whose CPU time is counted; None: the API server


def drive(
    target: Target,
    items: Sequence[Any],
    *,
    warmup: Sequence[Any],
    concurrency: int,
    label: str,
    plane: Sequence[int],
    into: Measured,
) -> Run:
    """One measured run, with the CPU time the server and the control plane spent on it."""
    pids = ([target.server] if target.server else []) + list(plane)
    before = [cpu_seconds(pid) for pid in pids]
    run = closed_loop(
        target.client, items, target.send, concurrency=concurrency, label=label, warmup=warmup
    )
    spent = [cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True)]
    count = len(items) + len(warmup)
    into.runs.append(run)
    if target.server:
        into.server_cpu_ms.append(spent[0] * 1000 / count)
    into.plane_cpu_ms.append(sum(spent[1 if target.server else 0 :]) * 1000 / count)
    return run


def expect(run: Run, *, code: int, answer: str | None, count: int) -> list[str]:
    """What went wrong in a run, in words; nothing when every request got what it should."""
    problems = []
    if run.codes.get(code, 0) != count:
        problems.append(f"{run.label}: expected {count} x {code}, got {dict(run.codes)}")
    if answer is not None and run.answers.get(answer, 0) != count:
        problems.append(f"{run.label}: expected {count} x {answer!r}, got {dict(run.answers)}")
    return problems


def look_up_then_create(path: str) -> Send:
    """The webhook's two calls for a new incident, made raw: list the rescues of the group
    (by its label), then create. Each item is (label selector, body)."""

    async def send(client: httpx.AsyncClient, item: tuple[str, bytes]) -> httpx.Response:
        selector, body = item
        found = await client.get(path, params={"labelSelector": selector})
        found.raise_for_status()
        return await client.post(path, content=body)

    return send


def measure(cluster: Cluster, settings: Settings) -> PartResult:
    api = cluster.client
    cluster.namespace(NAMESPACE, policy=True)
    cluster.namespace(RAW_NAMESPACE, policy=True)
    say("Intake: starting the webhook and the minimal endpoint")
    webhook_process = cluster.start_webhook()
    minimal_process = cluster.start_minimal_endpoint()
    plane = cluster.control_plane_pids()
    headers = {
        "Authorization": f"Bearer {cluster.webhook_token}",
        "Content-Type": "application/json",
    }

    def client_of(url: str, connections: int) -> Callable[[], httpx.AsyncClient]:
        return lambda: httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def targets(connections: int) -> dict[str, Target]:
        raw = api.rescues_path(RAW_NAMESPACE)
        return {
            "webhook": Target(
                client_of(webhook_process.url, connections), post(PATH), webhook_process.popen.pid
            ),
            "minimal": Target(
                client_of(minimal_process.url, connections), post(PATH), minimal_process.popen.pid
            ),
            "raw": Target(lambda: api.async_client(connections=connections), post(raw), None),
            "raw2": Target(
                lambda: api.async_client(connections=connections), look_up_then_create(raw), None
            ),
        }

    concurrent, alone = targets(settings.concurrency), targets(1)
    nonce = secrets.token_hex(3)
    cases: dict[tuple[int, str], Measured] = {}
    problems: list[str] = []

    def run(size: int, case: str, target: Target, items: Sequence[Any], warm: Sequence[Any]) -> Run:
        return drive(
            target,
            items,
            warmup=warm,
            concurrency=1 if target in alone.values() else settings.concurrency,
            label=f"{size}/{case}",
            plane=plane,
            into=cases.setdefault((size, case), Measured()),
        )

    for size in settings.sizes:
        for rep in range(settings.repeats):
            api.delete_all(NAMESPACE)
            api.delete_all(RAW_NAMESPACE)
            batch = Batch.of(f"{nonce}-{size}-{rep}", size, settings.requests, settings.concurrency)
            n = settings.requests

            # Interleaved, so that whatever else the machine does weighs on every case alike.
            minimal = run(size, "minimal", concurrent["minimal"], batch.bodies, batch.warm)
            problems += expect(minimal, code=200, answer="parsed", count=n)
            new = run(size, "new", concurrent["webhook"], batch.bodies, batch.warm)
            problems += expect(new, code=200, answer="created", count=n)
            raw = run(size, "raw", concurrent["raw"], batch.raw, batch.raw_warm)
            problems += expect(raw, code=201, answer=None, count=n)
            repeat = run(size, "repeat", concurrent["webhook"], batch.bodies, batch.warm)
            problems += expect(repeat, code=200, answer="unchanged", count=n)
            again = run(size, "raw-again", concurrent["raw"], batch.raw, batch.raw_warm)
            problems += expect(again, code=409, answer=None, count=n)
            api.delete_all(RAW_NAMESPACE)
            raw2 = run(
                size, "raw-list-create", concurrent["raw2"], batch.raw_pairs, batch.raw_pairs_warm
            )
            problems += expect(raw2, code=201, answer=None, count=n)
            if size == TYPICAL:
                # One at a time: the answer's own latency, without queueing behind others.
                few = max(n // 4, 10)
                one = Batch.of(f"{nonce}-{size}-{rep}-one", size, few, 2)
                run(size, "minimal-alone", alone["minimal"], one.bodies, one.warm)
                run(size, "new-alone", alone["webhook"], one.bodies, one.warm)
            say(
                f"  {size:>3} alert(s), run {rep + 1}/{settings.repeats}: webhook "
                f"{new.rate:.0f}/s new, {repeat.rate:.0f}/s repeat; minimal endpoint "
                f"{minimal.rate:.0f}/s; raw create {raw.rate:.0f}/s, raw look-up + create "
                f"{raw2.rate:.0f}/s"
            )
    for problem in problems:
        say(f"warning: {problem}")
    cluster.stop_process(webhook_process)
    cluster.stop_process(minimal_process)
    api.delete_all(NAMESPACE)
    api.delete_all(RAW_NAMESPACE)
    return PartResult(
        name=PART,
        rows=rows(cases, settings),
        details={
            "settings": settings.__dict__,
            "problems": problems,
            "cases": {
                f"{size}/{kind}": {
                    "runs": [run.as_json() for run in measured.runs],
                    "server_cpu_ms_per_request": measured.server_cpu_ms,
                    "apiserver_etcd_cpu_ms_per_request": measured.plane_cpu_ms,
                }
                for (size, kind), measured in cases.items()
            },
        },
    )


@dataclass(frozen=True)
class Batch:
    """The notifications of one run and, for the raw baselines, the rescues they become."""

    bodies: list[bytes]
    warm: list[bytes]
    raw: list[bytes]
    raw_warm: list[bytes]
    raw_pairs: list[tuple[str, bytes]]  # (the group's label selector, body)
    raw_pairs_warm: list[tuple[str, bytes]]

    @classmethod
    def of(cls, prefix: str, size: int, count: int, warm: int) -> Batch:
        starts = datetime.now(UTC)
        documents = [
            payloads.incident(group=f"{prefix}-{i}", namespace=NAMESPACE, size=size, starts=starts)
            for i in range(warm + count)
        ]
        bodies = [payloads.encode(d) for d in documents]
        rescues = [payloads.rescue_of(d, RAW_NAMESPACE) for d in documents]
        raw = [payloads.encode(r) for r in rescues]
        selectors = [f"{LABEL_GROUP}={r['metadata']['labels'][LABEL_GROUP]}" for r in rescues]
        pairs = list(zip(selectors, raw, strict=True))
        return cls(bodies[warm:], bodies[:warm], raw[warm:], raw[:warm], pairs[warm:], pairs[:warm])


def rows(cases: dict[tuple[int, str], Measured], settings: Settings) -> list[Row]:
    found: list[Row] = []
    runs = settings.repeats

    def rate(run: Run) -> float:
        return run.rate

    def p50(run: Run) -> float:
        return run.p50 * 1000

    def p99(run: Run) -> float:
        return run.p99 * 1000

    for size in settings.sizes:
        minimal, new, raw = cases[size, "minimal"], cases[size, "new"], cases[size, "raw"]
        repeat, again = cases[size, "repeat"], cases[size, "raw-again"]
        both = cases[size, "raw-list-create"]
        what = f"{size} alert{'s' if size > 1 else ''}"
        typical = size == 10
        half = new.median(rate) >= 0.5 * minimal.median(rate)
        found += [
            Row(
                part=PART,
                figure=f"{what}, new incident: notifications/s",
                value=new.median(rate),
                unit="/s",
                baseline=minimal.median(rate),
                baseline_label="minimal endpoint",
                target=">= 0.5x minimal" if typical else "",
                met=half if typical else None,
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, new incident: rescues created/s",
                value=new.median(rate),
                unit="/s",
                baseline=raw.median(rate),
                baseline_label="raw API create",
                target=">= 0.8x raw create",
                met=new.median(rate) >= 0.8 * raw.median(rate),
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, new incident: rescues created/s",
                value=new.median(rate),
                unit="/s",
                baseline=both.median(rate),
                baseline_label="raw API look-up + create",
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, new incident: latency p50",
                value=new.median(p50),
                unit="ms",
                baseline=minimal.median(p50),
                baseline_label="minimal endpoint",
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, new incident: latency p99",
                value=new.median(p99),
                unit="ms",
                baseline=minimal.median(p99),
                baseline_label="minimal endpoint",
                target="< 50 ms" if typical else "",
                met=new.median(p99) < 50 if typical else None,
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, new incident: webhook CPU per notification",
                value=median(new.server_cpu_ms),
                unit="ms",
                baseline=median(minimal.server_cpu_ms),
                baseline_label="minimal endpoint",
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, repeat: notifications/s",
                value=repeat.median(rate),
                unit="/s",
                baseline=again.median(rate),
                baseline_label="raw API create, AlreadyExists",
                runs=runs,
            ),
            Row(
                part=PART,
                figure=f"{what}, repeat: latency p99",
                value=repeat.median(p99),
                unit="ms",
                baseline=minimal.median(p99),
                baseline_label="minimal endpoint",
                runs=runs,
            ),
        ]
        if (size, "new-alone") in cases:
            alone, minimal_alone = cases[size, "new-alone"], cases[size, "minimal-alone"]
            found += [
                Row(
                    part=PART,
                    figure=f"{what}, new incident, one at a time: latency p50",
                    value=alone.median(p50),
                    unit="ms",
                    baseline=minimal_alone.median(p50),
                    baseline_label="minimal endpoint, one at a time",
                    runs=runs,
                ),
                Row(
                    part=PART,
                    figure=f"{what}, new incident, one at a time: latency p99",
                    value=alone.median(p99),
                    unit="ms",
                    baseline=minimal_alone.median(p99),
                    baseline_label="minimal endpoint, one at a time",
                    runs=runs,
                ),
            ]
    return found
