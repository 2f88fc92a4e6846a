"""The operator's metrics: MTTR and the other step durations, what the response did, what is open.

Two rules make these numbers trustworthy across restarts and replicas:

- Durations and counts are taken from what the rescue's status records (``core.measures``), and
  each is observed exactly once per rescue. Before observing, the operator claims the facts by
  adding their keys to ``status.counted`` with a JSON patch whose ``test`` op makes it a
  compare-and-swap: of two replicas only one claim succeeds, and after a restart the claimed
  keys are not observed again. A status written just before a crash is claimed on the next
  start, when kopf lists every rescue again. The one gap is a crash between a successful claim
  and the observation, microseconds wide: that observation is lost rather than doubled.
- Gauges are computed at scrape time from a (briefly cached) list of the rescues themselves,
  so a restart or a standby replica never reports a stale or zero count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rescue.core import kube, measures
from rescue.core.model import GROUP, POLICY_PLURAL, VERSION, Severity
from rescue.core.policy import Escalation, Policy, PolicyError, select
from rescue.operator import policies

logger = logging.getLogger(__name__)

#: The status field that lists the facts already observed.
COUNTED = "counted"
#: How long one list of the rescues serves the gauges.
GAUGE_CACHE_SECONDS = 10.0

_COUNTERS = {
    "opened": "rescue_opened_total",
    "concluded": "rescue_concluded_total",
    "mitigation": "rescue_mitigations_total",
    "gate": "rescue_gate_holds_total",
    "escalation": "rescue_escalations_total",
}


def pending(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """What the record says that is not yet counted: ``{key: value}``.

    Durations are keyed ``time:<step>`` with seconds as the value; counts are keyed as in
    ``measures.outcomes`` with their label values.
    """
    done = set(status.get(COUNTED) or [])
    found: dict[str, Any] = {f"time:{k}": v for k, v in measures.durations(spec, status).items()}
    found.update(measures.outcomes(status))
    return {key: value for key, value in found.items() if key not in done}


def claim_ops(body: Mapping[str, Any], keys: Iterable[str]) -> list[dict[str, Any]]:
    """The compare-and-swap that adds ``keys`` to ``status.counted``.

    The ``test`` of the resourceVersion makes it succeed only on the object as it was read: of
    two replicas claiming the same facts, the second finds the version moved and gets 422.
    """
    status = body.get("status") or {}
    after = sorted(set(status.get(COUNTED) or []) | set(keys))
    version = (body.get("metadata") or {}).get("resourceVersion")
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "add", "path": f"/status/{COUNTED}", "value": after},
    ]


class OperatorMetrics:
    """The metric families of one operator process, in their own registry."""

    def __init__(self, registry: CollectorRegistry, *, namespace_label: bool = False) -> None:
        self.registry = registry
        self.namespace_label = namespace_label
        labels = ["severity", "namespace"] if namespace_label else ["severity"]
        self.durations = {
            step: Histogram(
                f"rescue_time_to_{step}_seconds",
                _DURATION_HELP[step],
                labels,
                buckets=measures.BUCKETS,
                registry=registry,
            )
            for step in measures.STEPS
        }
        self.opened = Counter(
            "rescue_opened", "Rescues opened, by severity.", ["severity"], registry=registry
        )
        self.concluded = Counter(
            "rescue_concluded", "Rescues concluded, by severity.", ["severity"], registry=registry
        )
        self.mitigations = Counter(
            "rescue_mitigations",
            "Mitigations by strategy and outcome (applied, ineffective, failed, "
            "not_a_regression, proposed_only).",
            ["strategy", "outcome"],
            registry=registry,
        )
        self.gate_holds = Counter(
            "rescue_gate_holds",
            "Automation a gate held back, by the gate's reason.",
            ["reason"],
            registry=registry,
        )
        self.escalations = Counter(
            "rescue_escalations",
            "Rescues the operator escalated by itself, by destination.",
            ["destination"],
            registry=registry,
        )
        self._zero_every_known_series()
        self.claim_failures = Counter(
            "rescue_metrics_claim_failures",
            "Facts that could not be claimed for counting (the API server refused or was away); "
            "they are claimed at the rescue's next change or the operator's next start.",
            registry=registry,
        )

    def _zero_every_known_series(self) -> None:
        severities = [severity.value for severity in Severity]
        for severity in severities:
            self.opened.labels(severity=severity)
            self.concluded.labels(severity=severity)
            if not self.namespace_label:  # namespaces are not known in advance
                for histogram in self.durations.values():
                    histogram.labels(severity=severity)
        for strategy in measures.STRATEGIES:
            for outcome in measures.OUTCOMES:
                self.mitigations.labels(strategy=strategy, outcome=outcome)
        for gate in measures.GATES:
            self.gate_holds.labels(reason=gate)
        for destination in measures.DESTINATIONS:
            self.escalations.labels(destination=destination)

    def observe(self, key: str, value: Any, *, severity: str, namespace: str) -> None:
        """Observe one claimed fact."""
        kind, _, rest = key.partition(":")
        if kind == "time":
            labels = {"severity": severity}
            if self.namespace_label:
                labels["namespace"] = namespace
            self.durations[rest].labels(**labels).observe(float(value))
        elif kind == "opened":
            self.opened.labels(severity=value[0]).inc()
        elif kind == "concluded":
            self.concluded.labels(severity=value[0]).inc()
        elif kind == "mitigation":
            self.mitigations.labels(strategy=value[0], outcome=value[1]).inc()
        elif kind == "gate":
            self.gate_holds.labels(reason=value[0]).inc()
        elif kind == "escalation":
            self.escalations.labels(destination=value[0]).inc()
        else:  # a key this version does not know: claimed by a newer one, not ours to count
            logger.debug("Not counting the unknown fact %s.", key)


_DURATION_HELP = {
    "detect": "Seconds from the incident's start to the rescue opened.",
    "triage": "Seconds from the incident's start to triage handing over to mitigation.",
    "mitigate": "Seconds from the incident's start to the mitigation applied by GitOps.",
    "resolve": "Seconds from the incident's start to verified recovery (the MTTR).",
    "conclude": "Seconds from the incident's start to the rescue concluded.",
}


def count(
    metrics: OperatorMetrics,
    rescues: kube.Rescues,
    body: Mapping[str, Any],
) -> list[str]:
    """Claim and observe what the rescue's record holds that is not yet counted.

    Returns the keys observed. Losing the claim to another replica is not an error; the API
    server failing is logged, and the facts wait for the rescue's next change.
    """
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    if not status.get("phase"):
        return []
    found = pending(spec, status)
    if not found:
        return []
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    try:
        rescues.json_patch_status(namespace, name, claim_ops(body, found))
    except kube.NotFound:
        return []
    except kube.KubeRejected as exc:
        if exc.status == 422:  # the test failed: the rescue changed since this event
            logger.debug("Rescue %s/%s: facts already claimed elsewhere.", namespace, name)
            return []
        metrics.claim_failures.inc(len(found))
        logger.warning(
            "Rescue %s/%s: could not record which metrics are counted (%s); they will be "
            "counted at its next change.",
            namespace,
            name,
            exc,
        )
        return []
    except kube.KubeError as exc:
        metrics.claim_failures.inc(len(found))
        logger.warning(
            "Rescue %s/%s: could not record which metrics are counted (%s); they will be "
            "counted at its next change.",
            namespace,
            name,
            exc,
        )
        return []
    severity = measures.severity_of(spec, status)
    target_namespace = str((spec.get("target") or {}).get("namespace") or namespace)
    for key, value in found.items():
        metrics.observe(key, value, severity=severity, namespace=target_namespace)
    return sorted(found)


@dataclass(frozen=True)
class _Open:
    phase: str
    severity: str
    open_for: float
    limit: int | None


def open_rescues(
    rescues: Iterable[Mapping[str, Any]], policies_found: Iterable[Policy], now: datetime
) -> list[_Open]:
    """The open rescues with how long each has been open and its policy's limit."""
    by_namespace: dict[str, list[Policy]] = {}
    for policy in policies_found:
        by_namespace.setdefault(policy.namespace, []).append(policy)
    found = []
    for body in rescues:
        status = body.get("status") or {}
        seconds = measures.open_for(status, now)
        if seconds is None:
            continue
        spec = body.get("spec") or {}
        severity = measures.severity_of(spec, status)
        namespace = str((body.get("metadata") or {}).get("namespace", ""))
        chosen = select(by_namespace.get(namespace, []), policies.incident_labels(spec))
        limit = None
        if severity in Severity.__members__:
            rule = chosen.spec.escalation if chosen is not None else Escalation()
            limit = rule.max_open(Severity(severity))
        found.append(_Open(str(status["phase"]), severity, seconds, limit))
    return found


class OpenRescues(Collector):
    """``rescue_open``, ``rescue_open_overdue`` and ``rescue_open_oldest_seconds``, computed at
    scrape time from the rescues and policies as the API server holds them."""

    def __init__(
        self,
        source: Callable[[], tuple[list[Mapping[str, Any]], list[Policy]]],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_seconds: float = GAUGE_CACHE_SECONDS,
    ) -> None:
        self._source = source
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Mapping[str, Any]], list[Policy]] | None = None
        self._warned = 0.0

    def _read(self) -> tuple[list[Mapping[str, Any]], list[Policy]] | None:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self._cache_seconds:
                return self._cached[1], self._cached[2]
            try:
                rescues, found = self._source()
            except kube.KubeError as exc:
                if time.monotonic() - self._warned > 60:
                    self._warned = time.monotonic()
                    logger.warning(
                        "The open-rescue gauges are not reported: listing rescues failed (%s).",
                        exc,
                    )
                return None
            self._cached = (time.monotonic(), rescues, found)
            return rescues, found

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        read = self._read()
        if read is None:
            return []
        return self._families(read)

    def _families(
        self, read: tuple[list[Mapping[str, Any]], list[Policy]] | Mapping[str, Any]
    ) -> list[Metric]:
        opened = GaugeMetricFamily(
            "rescue_open", "Open rescues by phase and severity.", labels=["phase", "severity"]
        )
        overdue = GaugeMetricFamily(
            "rescue_open_overdue",
            "Open rescues older than their policy's escalation.maxOpenSeconds, by severity.",
            labels=["severity"],
        )
        oldest = GaugeMetricFamily(
            "rescue_open_oldest_seconds",
            "How long the oldest open rescue of each severity has been open.",
            labels=["severity"],
        )
        if isinstance(read, tuple):
            items = open_rescues(read[0], read[1], self._clock())
            for phase in ("Active", "Paused"):
                for severity in Severity:
                    opened.add_metric(
                        [phase, severity.value],
                        sum(1 for i in items if i.phase == phase and i.severity == severity.value),
                    )
            for severity in Severity:
                mine = [i for i in items if i.severity == severity.value]
                overdue.add_metric(
                    [severity.value],
                    sum(1 for i in mine if i.limit is not None and i.open_for > i.limit),
                )
                oldest.add_metric([severity.value], max((i.open_for for i in mine), default=0.0))
        return [opened, overdue, oldest]


def cluster_source(
    rescues: kube.Rescues, api_client: Any
) -> Callable[[], tuple[list[Mapping[str, Any]], list[Policy]]]:
    """Read every rescue and policy from the API server, for the gauges."""

    def read() -> tuple[list[Mapping[str, Any]], list[Policy]]:
        found: list[Policy] = []
        for item in kube.list_objects(
            api_client, group=GROUP, version=VERSION, plural=POLICY_PLURAL
        ):
            meta = item.get("metadata") or {}
            try:
                found.append(
                    Policy.parse(
                        str(meta.get("namespace", "")),
                        str(meta.get("name", "")),
                        item.get("spec") or {},
                    )
                )
            except PolicyError:
                continue  # the reconcile handler already says what is wrong with it
        return list(rescues.list()), found

    return read
