"""Part 4, storm: thousands of alerts in a minute, sent the way Alertmanager sends them.

When a node or a shared dependency fails, hundreds of alert groups start firing at once. The
storm is ``groups`` groups of ``alerts`` alerts each (500 x 10 by default) whose alerts start
firing at random moments over the first three quarters of ``window`` seconds. Each group is
notified as Alertmanager would: ``group_wait`` after its first alert, then every
``group_interval`` while alerts keep joining, every notification carrying all the group's alerts
so far, each sent at its moment whatever the answers before it (one goroutine per notification
in Alertmanager), and retried after a second on a 5xx.

What must hold: every group gets exactly one rescue, soon, and no alert of any notification is
lost (each is in its rescue's ``spec.alerts``). The figures: how long until every rescue exists,
beside the moment the last group's first notification was sent (nothing can be faster); the
webhook's answer latency through the storm, beside a minimal endpoint fed the same timetable.
The operator is not running: the storm measures what the webhook and the API server live
through (the operator only writes status, which never conflicts with the webhook's writes).
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import payloads
from bench.cluster import Cluster
from bench.common import median, say
from bench.load import Run, Timed, on_schedule
from bench.report import PartResult, Row

NAMESPACE = "bench-storm"
PATH = "/api/v1/alerts"
PART = "storm"
CONNECTIONS = 100  # Go's HTTP client opens as many as it needs; this is plenty


@dataclass(frozen=True)
class Settings:
    groups: int = 500
    alerts: int = 10  # per group
    window: float = 60.0  # seconds
    group_wait: float = 5.0
    group_interval: float = 10.0
    repeats: int = 3
    seed: int = 1


@dataclass
class Storm:
    """One storm's timetable, and what every group must end up holding."""

    timetable: list[Timed]
    expected: dict[str, set[str]]  # group -> fingerprints of its alerts
    first_sent: dict[str, float]  # group -> when its first notification is due


def plan(settings: Settings, *, nonce: str, rep: int) -> Storm:
    rng = random.Random(settings.seed * 1000 + rep)
    began = datetime.now(UTC)
    # The last alert appears early enough for its notification to fall inside the window.
    last = max(settings.window - settings.group_wait - settings.group_interval, 0.0)
    timetable: list[Timed] = []
    expected: dict[str, set[str]] = {}
    first_sent: dict[str, float] = {}
    for index in range(settings.groups):
        group = f"{nonce}-{rep}-{index}"
        deployment = f"svc-{group}"
        alertname = payloads.ALERTNAMES[index % len(payloads.ALERTNAMES)]
        appear = sorted(rng.uniform(0, last) for _ in range(settings.alerts))
        alerts = [
            payloads.alert(
                alertname=alertname,
                namespace=NAMESPACE,
                deployment=deployment,
                index=i,
                starts=began + timedelta(seconds=moment),
            )
            for i, moment in enumerate(appear)
        ]
        expected[group] = {a["fingerprint"] for a in alerts}
        due = appear[0] + settings.group_wait
        first_sent[group] = due
        while True:
            included = [a for a, moment in zip(alerts, appear, strict=True) if moment <= due]
            document = payloads.notification(
                group=group,
                alertname=alertname,
                namespace=NAMESPACE,
                deployment=deployment,
                alerts=included,
            )
            timetable.append(Timed(at=due, body=payloads.encode(document), key=group))
            if due >= appear[-1]:
                break
            due += settings.group_interval
    timetable.sort(key=lambda request: request.at)
    return Storm(timetable, expected, first_sent)


@dataclass
class Outcome:
    """What one storm through the webhook came to."""

    run: Run
    notifications: int
    all_exist_s: float  # when the last group's rescue was created, after the start
    schedule_s: float  # when the last group's first notification was due
    last_answer_s: float
    rescues: int
    groups_without_rescue: int
    groups_with_several: int
    alerts_lost: int
    not_delivered: int  # notifications never answered 200
    details: dict[str, Any] = field(default_factory=dict)


def check(cluster: Cluster, storm: Storm, answered: list[Any], run: Run) -> Outcome:
    created_at: dict[str, float] = {}
    not_delivered = 0
    last_answer = 0.0
    for request, moment, response in answered:
        last_answer = max(last_answer, moment)
        if response is None or response.status_code != 200:
            not_delivered += 1
            continue
        if response.json().get("status") == "created":
            created_at[request.key] = min(created_at.get(request.key, moment), moment)

    items, _ = cluster.client.list(NAMESPACE)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        key = str((item.get("spec") or {}).get("groupKey", ""))
        group = key.rsplit('bench="', 1)[-1].rstrip('"')
        by_group[group].append(item)
    lost = 0
    for group, fingerprints in storm.expected.items():
        held = {a.get("fingerprint") for r in by_group.get(group, []) for a in r["spec"]["alerts"]}
        lost += len(fingerprints - held)
    return Outcome(
        run=run,
        notifications=len(storm.timetable),
        all_exist_s=max(created_at.values(), default=float("nan"))
        if len(created_at) == len(storm.expected)
        else float("nan"),
        schedule_s=max(storm.first_sent.values()),
        last_answer_s=last_answer,
        rescues=len(items),
        groups_without_rescue=sum(1 for g in storm.expected if not by_group.get(g)),
        groups_with_several=sum(1 for g in storm.expected if len(by_group.get(g, [])) > 1),
        alerts_lost=lost,
        not_delivered=not_delivered,
    )


def measure(cluster: Cluster, settings: Settings) -> PartResult:
    api = cluster.client
    cluster.namespace(NAMESPACE, policy=True)
    say(
        f"Storm: {settings.groups * settings.alerts} alerts in {settings.groups} groups over "
        f"{settings.window:.0f} s; starting the webhook and the minimal endpoint"
    )
    webhook = cluster.start_webhook()
    minimal = cluster.start_minimal_endpoint()
    headers = {
        "Authorization": f"Bearer {cluster.webhook_token}",
        "Content-Type": "application/json",
    }

    def client_of(url: str) -> Callable[[], httpx.AsyncClient]:
        return lambda: httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=20),
        )

    nonce = secrets.token_hex(3)
    outcomes: list[Outcome] = []
    baselines: list[Run] = []
    for rep in range(settings.repeats):
        api.delete_all(NAMESPACE)
        storm = plan(settings, nonce=nonce, rep=rep)
        baseline, _ = on_schedule(
            client_of(minimal.url), PATH, storm.timetable, label="minimal endpoint"
        )
        baselines.append(baseline)
        storm = plan(settings, nonce=nonce, rep=rep)  # fresh start times for the real one
        run, answered = on_schedule(client_of(webhook.url), PATH, storm.timetable, label="webhook")
        outcome = check(cluster, storm, answered, run)
        outcomes.append(outcome)
        say(
            f"  run {rep + 1}/{settings.repeats}: {outcome.notifications} notifications, "
            f"{outcome.rescues} rescues, all there {outcome.all_exist_s:.1f} s after the start "
            f"(last first notification due at {outcome.schedule_s:.1f} s); "
            f"{outcome.alerts_lost} alert(s) lost, {outcome.not_delivered} notification(s) "
            f"not delivered; p99 {run.p99 * 1000:.0f} ms (minimal endpoint "
            f"{baseline.p99 * 1000:.0f} ms)"
        )
    cluster.stop_process(webhook)
    cluster.stop_process(minimal)
    api.delete_all(NAMESPACE)
    return PartResult(
        name=PART,
        rows=rows(outcomes, baselines, settings),
        details={
            "settings": settings.__dict__,
            "runs": [
                {
                    **{k: v for k, v in o.__dict__.items() if k not in ("run", "details")},
                    "webhook": o.run.as_json(),
                    "minimal_endpoint": b.as_json(),
                }
                for o, b in zip(outcomes, baselines, strict=True)
            ],
        },
    )


def rows(outcomes: list[Outcome], baselines: list[Run], settings: Settings) -> list[Row]:
    runs = len(outcomes)
    worst_rescues = max(outcomes, key=lambda o: abs(o.rescues - settings.groups)).rescues
    lost = max(o.alerts_lost for o in outcomes)
    undelivered = max(o.not_delivered for o in outcomes)
    alerts = settings.groups * settings.alerts
    return [
        Row(
            part=PART,
            figure=f"{alerts} alerts in {settings.groups} groups: every rescue exists after",
            value=median([o.all_exist_s for o in outcomes]),
            unit="s",
            baseline=median([o.schedule_s for o in outcomes]),
            baseline_label="last group's first notification due",
            runs=runs,
        ),
        Row(
            part=PART,
            figure="rescues (worst run)",
            value=worst_rescues,
            unit="",
            target=f"exactly {settings.groups}",
            met=all(o.rescues == settings.groups and not o.groups_with_several for o in outcomes),
        ),
        Row(
            part=PART,
            figure="alerts missing from their rescue (worst run)",
            value=lost,
            unit="",
            target="0",
            met=lost == 0,
        ),
        Row(
            part=PART,
            figure="notifications not answered 200 (worst run)",
            value=undelivered,
            unit="",
            target="0",
            met=undelivered == 0,
        ),
        Row(
            part=PART,
            figure=f"webhook latency p50 ({median([o.notifications for o in outcomes]):.0f} "
            "notifications)",
            value=median([o.run.p50 * 1000 for o in outcomes]),
            unit="ms",
            baseline=median([b.p50 * 1000 for b in baselines]),
            baseline_label="minimal endpoint, same timetable",
            runs=runs,
        ),
        Row(
            part=PART,
            figure="webhook latency p99",
            value=median([o.run.p99 * 1000 for o in outcomes]),
            unit="ms",
            baseline=median([b.p99 * 1000 for b in baselines]),
            baseline_label="minimal endpoint, same timetable",
            runs=runs,
        ),
    ]
