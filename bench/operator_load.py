"""Part 3, the operator: how fast it takes a burst, what it holds in memory, how fast it resumes.

Three questions a person running Rescue asks, each answered beside a minimal kopf operator
(``bench/minimal_operator.py``: same framework, same bookkeeping, no lifecycle), so that what
Rescue's own code costs stands apart from what kopf costs:

1. **Burst.** ``rescues`` SEV1 rescues are created straight through the API server (8 in
   flight; the webhook is not involved), in a namespace whose RescuePolicy allows no git work
   (every mode ``none``). The clock runs from the first create sent until the watch shows every
   one handled: ``status.observedGeneration`` equal to its generation and phase Active.
2. **Memory.** The operator's resident memory (VmRSS of its process and any children) is read
   every few seconds from /proc: with no rescue, with ``rescues`` open ones, and through
   ``churn_seconds`` of churn at ``churn_rate`` spec changes a second. Churn is what open
   incidents live through: an alert joins, a person shelves and resumes, and incidents end (the
   record completed, the alerts resolved, then the conclusion asked); a concluded rescue is
   deleted and a new one created, so that ``rescues`` stay open and the cluster holds about as
   many objects at the end as at the start: memory that grows then is memory kept for nothing.
   The time from each change to the operator's answer is recorded too.
3. **Restart.** The operator is killed (SIGKILL, as a crash or an evicted pod), and while it is
   down every open rescue's spec changes: Active ones are shelved, Paused ones resumed. It is
   then started again and the clock runs from its start until the watch shows every rescue in
   the phase asked for with ``observedGeneration`` caught up: each one was handled again, and
   by reading its spec, not only its annotations.
"""

from __future__ import annotations

import concurrent.futures
import random
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import payloads
from bench.apiserver import ApiServer, Seen, Watcher
from bench.cluster import Cluster
from bench.common import median, percentile, rss_mib, say
from bench.load import closed_loop, post
from bench.report import PartResult, Row
from rescue import stack

NAMESPACE = "bench-operator"
BASELINE_NAMESPACE = "bench-kopf"
PART = "operator"
HANDLED_TIMEOUT = 600.0  # seconds a burst or a resume may take before the run gives up
ANSWER_TIMEOUT = 60.0  # seconds a churn change may wait for the operator's answer
MAX_ALERTS = 8  # alerts joining a churned rescue before it is walked to its end


@dataclass(frozen=True)
class Settings:
    rescues: int = 1000
    repeats: int = 3
    churn_seconds: float = 1800.0
    churn_rate: float = 10.0  # spec changes a second
    sample_every: float = 10.0  # seconds between two memory readings
    concurrency: int = 8
    baseline_connections: int = 0  # > 0: the minimal operator's bound on its connections


class Sampler:
    """Reads a process's memory every ``every`` seconds, in a thread of its own."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.samples: list[tuple[float, float, str]] = []  # (seconds, MiB, what was going on)
        self.pid = 0
        self.phase = "idle"
        self.began = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def follow(self, pid: int, phase: str) -> None:
        self.pid, self.phase = pid, phase

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def now(self) -> float:
        """Read at once (and keep the reading)."""
        value = rss_mib(self.pid) if self.pid else 0.0
        self.samples.append((time.perf_counter() - self.began, value, self.phase))
        return value

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if self.pid:
                self.now()

    def during(self, phase: str) -> list[float]:
        return [mib for _, mib, what in self.samples if what == phase]


def rescue_body(namespace: str, group: str) -> dict[str, Any]:
    """A SEV1 rescue of one firing alert, as the webhook would have created it."""
    document = payloads.incident(group=group, namespace=namespace, size=1, starts=datetime.now(UTC))
    return payloads.rescue_of(document, namespace)


def is_active(name: str, state: Seen) -> bool:
    return state.handled and state.phase == "Active"


@dataclass
class Burst:
    rescues: int
    create_s: float  # the creates alone
    handled_s: float  # first create sent -> last rescue handled

    @property
    def rate(self) -> float:
        return self.rescues / self.handled_s if self.handled_s else float("nan")


def burst(
    api: ApiServer, watcher: Watcher, namespace: str, settings: Settings, *, prefix: str
) -> tuple[Burst, list[dict[str, Any]]]:
    bodies = [rescue_body(namespace, f"{prefix}-{i}") for i in range(settings.rescues)]
    names = [str(body["metadata"]["name"]) for body in bodies]
    tracker = watcher.track(names, is_active)
    began = time.perf_counter()
    run = closed_loop(
        lambda: api.async_client(connections=settings.concurrency),
        [payloads.encode(body) for body in bodies],
        post(api.rescues_path(namespace)),
        concurrency=settings.concurrency,
        label="burst",
    )
    if run.codes.get(201) != len(bodies):
        raise RuntimeError(f"creating the burst's rescues answered {dict(run.codes)}")
    if not watcher.wait(tracker, timeout=HANDLED_TIMEOUT):
        raise RuntimeError(
            f"{len(tracker.left)} of {len(names)} rescues in {namespace} were not handled "
            f"within {HANDLED_TIMEOUT:.0f} s"
        )
    assert tracker.last is not None
    return Burst(len(names), run.seconds, tracker.last - began), bodies


@dataclass
class Local:
    """What the churn remembers of one rescue it drives."""

    alerts: list[dict[str, Any]]
    deployment: str
    recorded: bool = False  # its record is complete: it can be concluded once in Review


@dataclass
class Change:
    kind: str
    sent: float
    generation: int


@dataclass
class Churn:
    """Spec changes at a steady rate to the open rescues, as people and Alertmanager make them."""

    api: ApiServer
    watcher: Watcher
    namespace: str
    prefix: str
    rng: random.Random
    local: dict[str, Local] = field(default_factory=dict)
    pending: dict[str, Change] = field(default_factory=dict)
    answered: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    unanswered: int = 0
    created: int = 0

    def adopt(self, bodies: list[dict[str, Any]]) -> None:
        """Drive these rescues (as created)."""
        for body in bodies:
            spec = body["spec"]
            self.local[body["metadata"]["name"]] = Local(
                alerts=list(spec["alerts"]), deployment=spec["target"]["name"]
            )

    def run(self, seconds: float, rate: float) -> int:
        """Make changes for ``seconds``, ``rate`` a second; returns how many were made."""
        began = time.perf_counter()
        made = 0
        while time.perf_counter() < began + seconds:
            self.collect()
            ahead = began + made / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
            elif self.step():
                made += 1
            else:
                time.sleep(0.01)  # the rescue drawn had nothing to do yet; draw again
        return made

    def settle(self, timeout: float = ANSWER_TIMEOUT) -> None:
        deadline = time.perf_counter() + timeout
        while self.pending and time.perf_counter() < deadline:
            self.collect()
            time.sleep(0.05)
        self.collect(give_up=True)

    def collect(self, *, give_up: bool = False) -> None:
        """Move answered changes (observedGeneration caught up) into the latencies."""
        now = time.perf_counter()
        with self.watcher.changed:
            for name, change in list(self.pending.items()):
                state = self.watcher.seen.get(name)
                if state and state.observed >= change.generation and state.handled_at:
                    self.answered[change.kind].append(state.handled_at - change.sent)
                    del self.pending[name]
                elif give_up or now - change.sent > ANSWER_TIMEOUT:
                    self.unanswered += 1
                    del self.pending[name]

    def step(self) -> bool:
        """One change to one rescue that has no change waiting; False when none could be made."""
        with self.watcher.changed:
            states = dict(self.watcher.seen)
        idle = [name for name in self.local if name not in self.pending and name in states]
        if not idle:
            return False
        name = self.rng.choice(idle)
        state, mine = states[name], self.local[name]
        if state.phase == "Completed":
            return self.replace(name)
        if not state.handled:
            return False
        if state.phase == "Paused":
            return self.change(name, "resume", {"spec": {"paused": False, "pausedBy": "bench"}})
        if state.phase != "Active":
            return False
        if mine.recorded:
            if state.step != "Review":
                return False
            return self.change(name, "conclude", {"spec": {"conclusion": self.conclusion()}})
        draw = self.rng.random()
        if draw < 0.5 and len(mine.alerts) < MAX_ALERTS:
            return self.join(name, mine)
        if draw < 0.75:
            return self.change(
                name, "shelve", {"spec": {"paused": True, "pauseReason": "bench", "pausedBy": "b"}}
            )
        return self.complete(name, mine)

    def change(self, name: str, kind: str, patch: dict[str, Any]) -> bool:
        sent = time.perf_counter()
        stored = self.api.patch(self.namespace, name, patch)
        self.pending[name] = Change(kind, sent, int(stored["metadata"]["generation"]))
        return True

    def join(self, name: str, mine: Local) -> bool:
        """An alert joins the incident: one more pod of the same deployment firing."""
        first = mine.alerts[0]
        record = {
            "fingerprint": secrets.token_hex(8),
            "alertname": first["alertname"],
            "status": "firing",
            "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "labels": {**first["labels"], "pod": f"{mine.deployment}-{len(mine.alerts)}"},
            "annotations": dict(first.get("annotations") or {}),
        }
        mine.alerts.append(record)
        return self.change(name, "alert joins", {"spec": {"alerts": mine.alerts}})

    def complete(self, name: str, mine: Local) -> bool:
        """Everything the exit checklist asks for, and the alerts resolved, in one change."""
        ended = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for alert in mine.alerts:
            alert.update(status="resolved", endsAt=ended)
        mine.recorded = True
        stamp = {"by": "bench", "at": ended}
        patch = {
            "spec": {
                "alerts": mine.alerts,
                "diagnosis": {"rootCause": "a bad deploy", "category": "deployment", **stamp},
                "resolution": {"fix": "the deploy was reverted", **stamp},
                "review": {"lessons": "canary first", "actionItems": ["add a canary"]},
            }
        }
        return self.change(name, "record completed", patch)

    @staticmethod
    def conclusion() -> dict[str, Any]:
        return {
            "requestedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requestedBy": "bench",
            "summary": "reverted",
            "route": "none",
            "actionItems": ["add a canary"],
        }

    def replace(self, name: str) -> bool:
        """A concluded rescue leaves; a new incident arrives."""
        self.api.delete(self.namespace, name)
        del self.local[name]
        self.created += 1
        body = rescue_body(self.namespace, f"{self.prefix}-new-{self.created}")
        sent = time.perf_counter()
        stored = self.api.create(self.namespace, body)
        fresh = str(stored["metadata"]["name"])
        spec = stored["spec"]
        self.local[fresh] = Local(alerts=list(spec["alerts"]), deployment=spec["target"]["name"])
        self.pending[fresh] = Change("new rescue", sent, int(stored["metadata"]["generation"]))
        return True


@dataclass
class Resume:
    rescues: int
    changed_s: float  # the spec changes made while the operator was down
    started_s: float  # start -> its liveness endpoint answered
    resumed_s: float  # start -> every rescue handled again


def restart(
    cluster: Cluster,
    process: stack.Process,
    start: Callable[[], stack.Process],
    watcher: Watcher,
    namespace: str,
    settings: Settings,
) -> tuple[Resume, stack.Process]:
    cluster.stop_process(process, kill=True)
    with watcher.changed:
        phases = {name: state.phase for name, state in watcher.seen.items()}
    wanted = {
        name: "Paused" if phase == "Active" else "Active"
        for name, phase in phases.items()
        if phase in ("Active", "Paused")
    }
    api = cluster.client
    began = time.perf_counter()
    generations: dict[str, int] = {}

    def ask(name: str) -> None:
        paused = wanted[name] == "Paused"
        stored = api.patch(namespace, name, {"spec": {"paused": paused, "pausedBy": "bench"}})
        generations[name] = int(stored["metadata"]["generation"])

    with concurrent.futures.ThreadPoolExecutor(settings.concurrency) as pool:
        list(pool.map(ask, wanted))
    changed = time.perf_counter() - began

    def again(name: str, state: Seen) -> bool:
        return state.observed >= generations[name] and state.phase == wanted[name]

    tracker = watcher.track(wanted, again)
    began = time.perf_counter()
    process = start()
    started = time.perf_counter() - began
    if not watcher.wait(tracker, timeout=HANDLED_TIMEOUT):
        raise RuntimeError(
            f"{len(tracker.left)} of {len(wanted)} rescues in {namespace} were not handled "
            f"again within {HANDLED_TIMEOUT:.0f} s of the restart"
        )
    assert tracker.last is not None
    return Resume(len(wanted), changed, started, tracker.last - began), process


@dataclass
class Subject:
    """One operator through the whole part: Rescue's, or the minimal baseline."""

    label: str
    bursts: list[Burst] = field(default_factory=list)
    rss_idle: float = float("nan")
    rss_open: float = float("nan")
    rss_after_restart: float = float("nan")
    resume: Resume | None = None
    churn: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[float, float, str]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)  # seconds each step of the part took

    def step(self, name: str, began: float) -> float:
        now = time.perf_counter()
        self.steps[name] = self.steps.get(name, 0.0) + now - began
        return now

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "bursts": [{**b.__dict__, "rate_per_s": b.rate} for b in self.bursts],
            "rss_idle_mib": self.rss_idle,
            "rss_open_mib": self.rss_open,
            "rss_after_restart_mib": self.rss_after_restart,
            "resume": self.resume.__dict__ if self.resume else None,
            "churn": self.churn,
            "rss_samples": [{"s": t, "mib": m, "during": p} for t, m, p in self.samples],
            "step_seconds": self.steps,
        }


def follow(
    cluster: Cluster,
    settings: Settings,
    *,
    label: str,
    namespace: str,
    start: Callable[[], stack.Process],
    churn: bool,
    prefix: str,
) -> Subject:
    """One operator through the bursts, the memory readings, the churn and the restart."""
    api = cluster.client
    subject = Subject(label)
    watcher = Watcher(api, namespace).start()
    sampler = Sampler(settings.sample_every).start()
    moment = time.perf_counter()
    try:
        process = start()
        sampler.follow(process.popen.pid, "idle")
        time.sleep(1.0)
        subject.rss_idle = sampler.now()
        moment = subject.step("start", moment)

        bodies: list[dict[str, Any]] = []
        for rep in range(settings.repeats):
            if rep:
                api.delete_all(namespace)
                watcher.wait_empty(timeout=60)
                time.sleep(1.0)  # the operator hears of the deletions too
            sampler.phase = "burst"
            result, bodies = burst(api, watcher, namespace, settings, prefix=f"{prefix}-{rep}")
            subject.bursts.append(result)
            say(
                f"  {label}: {result.rescues} rescues handled in {result.handled_s:.1f} s "
                f"({result.rate:.0f}/s; the creates took {result.create_s:.1f} s), "
                f"run {rep + 1}/{settings.repeats}"
            )
        time.sleep(2.0)  # Events still being posted belong to the burst
        sampler.phase = "open"
        subject.rss_open = sampler.now()
        say(f"  {label}: {subject.rss_open:.1f} MiB resident with {settings.rescues} open rescues")
        moment = subject.step("bursts", moment)

        if churn:
            sampler.phase = "churn"
            subject.churn = churn_for(api, watcher, sampler, namespace, settings, bodies, prefix)
            churned = sampler.during("churn")
            say(
                f"  {label}: {subject.churn['changes']} changes, "
                f"{subject.churn['rescues_concluded_and_replaced']} rescues concluded and "
                f"replaced; memory {churned[0]:.1f} -> {churned[-1]:.1f} MiB"
            )
            moment = subject.step("churn", moment)

        sampler.follow(0, "restart")
        subject.resume, process = restart(cluster, process, start, watcher, namespace, settings)
        sampler.follow(process.popen.pid, "after restart")
        time.sleep(1.0)
        subject.rss_after_restart = sampler.now()
        say(
            f"  {label}: restarted; {subject.resume.rescues} rescues handled again "
            f"{subject.resume.resumed_s:.1f} s after the start (alive after "
            f"{subject.resume.started_s:.1f} s)"
        )
        moment = subject.step("restart", moment)
        cluster.stop_process(process, kill=True)
    finally:
        sampler.stop()
        watcher.stop()
    subject.samples = sampler.samples
    api.delete_all(namespace)
    subject.step("stop", moment)
    return subject


def churn_for(
    api: ApiServer,
    watcher: Watcher,
    sampler: Sampler,
    namespace: str,
    settings: Settings,
    bodies: list[dict[str, Any]],
    prefix: str,
) -> dict[str, Any]:
    """Churn the rescues of the last burst; what it did, and how fast the operator answered."""
    driver = Churn(api, watcher, namespace, f"{prefix}-churn", random.Random(7))
    driver.adopt(bodies)
    sampler.now()
    say(f"  churn for {settings.churn_seconds:.0f} s at {settings.churn_rate:g} changes/s")
    made = driver.run(settings.churn_seconds, settings.churn_rate)
    driver.settle()
    sampler.now()
    latencies = [x for values in driver.answered.values() for x in values]
    return {
        "seconds": settings.churn_seconds,
        "changes": made,
        "unanswered": driver.unanswered,
        "rescues_concluded_and_replaced": driver.created,
        "answer_p50_s": percentile(latencies, 50),
        "answer_p99_s": percentile(latencies, 99),
        "by_kind": {
            kind: {
                "n": len(values),
                "p50_s": percentile(values, 50),
                "p99_s": percentile(values, 99),
            }
            for kind, values in sorted(driver.answered.items())
        },
    }


def measure(cluster: Cluster, settings: Settings) -> PartResult:
    nonce = secrets.token_hex(3)
    cluster.namespace(NAMESPACE, policy=True)
    cluster.namespace(BASELINE_NAMESPACE, policy=True)
    say(f"Operator: bursts of {settings.rescues} rescues, memory, churn, restart")
    product = follow(
        cluster,
        settings,
        label="operator",
        namespace=NAMESPACE,
        start=lambda: cluster.start_operator((NAMESPACE,)),
        churn=True,
        prefix=f"{nonce}-o",
    )
    baseline = follow(
        cluster,
        settings,
        label="minimal kopf operator",
        namespace=BASELINE_NAMESPACE,
        start=lambda: cluster.start_minimal_operator(
            (BASELINE_NAMESPACE,), connections=settings.baseline_connections
        ),
        churn=False,
        prefix=f"{nonce}-k",
    )
    return PartResult(
        name=PART,
        rows=rows(product, baseline, settings),
        details={
            "settings": settings.__dict__,
            "operator": product.as_json(),
            "minimal_operator": baseline.as_json(),
        },
    )


def growth(samples: list[float]) -> float:
    """How much memory grew over churn, in percent: the mean of the last quarter of the
    readings against the mean of the first (single readings are noisy)."""
    if len(samples) < 2:
        return float("nan")
    quarter = max(len(samples) // 4, 1)
    first = sum(samples[:quarter]) / quarter
    last = sum(samples[-quarter:]) / quarter
    return (last - first) / first * 100


def rows(product: Subject, baseline: Subject, settings: Settings) -> list[Row]:
    n = settings.rescues
    full = n >= 1000
    at_size = "" if full else " (held at 1000 rescues)"
    minimal = "minimal kopf operator"
    if settings.baseline_connections:
        minimal += f", {settings.baseline_connections} connections"
    churned = [m for _, m, what in product.samples if what == "churn"]
    found = [
        Row(
            part=PART,
            figure=f"burst of {n}: rescues handled/s",
            value=median([b.rate for b in product.bursts]),
            unit="/s",
            baseline=median([b.rate for b in baseline.bursts]),
            baseline_label=minimal,
            runs=len(product.bursts),
        ),
        Row(
            part=PART,
            figure=f"burst of {n}: all handled after",
            value=median([b.handled_s for b in product.bursts]),
            unit="s",
            baseline=median([b.handled_s for b in baseline.bursts]),
            baseline_label=minimal,
            runs=len(product.bursts),
        ),
        Row(
            part=PART,
            figure="memory (RSS), no rescue",
            value=product.rss_idle,
            unit="MiB",
            baseline=baseline.rss_idle,
            baseline_label=minimal,
        ),
        Row(
            part=PART,
            figure=f"memory (RSS), {n} open rescues",
            value=product.rss_open,
            unit="MiB",
            baseline=baseline.rss_open,
            baseline_label=minimal,
            target="< 200 MiB" + at_size,
            met=product.rss_open < 200 if full else None,
        ),
    ]
    if churned:
        found += [
            Row(
                part=PART,
                figure=f"memory over {settings.churn_seconds:.0f} s of churn: first -> last",
                value=churned[-1],
                unit="MiB",
                baseline=churned[0],
                baseline_label="at the start of churn",
            ),
            Row(
                part=PART,
                figure="memory growth over churn (last quarter vs first)",
                value=growth(churned),
                unit="%",
                target="flat: < 10%",
                met=growth(churned) < 10,
            ),
            Row(
                part=PART,
                figure=f"churn: {product.churn['changes']} changes, operator's answer p50",
                value=product.churn["answer_p50_s"] * 1000,
                unit="ms",
            ),
            Row(
                part=PART,
                figure="churn: operator's answer p99",
                value=product.churn["answer_p99_s"] * 1000,
                unit="ms",
            ),
        ]
    assert product.resume is not None and baseline.resume is not None
    found += [
        Row(
            part=PART,
            figure=f"restart: every rescue ({product.resume.rescues}) handled again after",
            value=product.resume.resumed_s,
            unit="s",
            baseline=baseline.resume.resumed_s,
            baseline_label=minimal,
            target="< 30 s",
            met=product.resume.resumed_s < 30,
        ),
        Row(
            part=PART,
            figure=f"memory (RSS) after the restart, {n} open rescues",
            value=product.rss_after_restart,
            unit="MiB",
            baseline=baseline.rss_after_restart,
            baseline_label=minimal,
        ),
    ]
    return found
