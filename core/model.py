"""The vocabulary of a rescue: severities, phases, steps and lifecycle events.

These names are the contract with people and scripts (`kubectl get rescues`, Events, metrics),
so they live once, here, and the CRD schema in ``crds/`` lists exactly the same values (a unit
test holds the two together).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

GROUP = "alc.hecate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
RESCUE_KIND = "Rescue"
RESCUE_PLURAL = "rescues"
POLICY_KIND = "RescuePolicy"
POLICY_PLURAL = "rescuepolicies"

#: Labels the webhook puts on every Rescue so that an incident's rescue can be found again.
LABEL_GROUP = f"{GROUP}/group"
LABEL_SEVERITY = f"{GROUP}/severity"

#: Bounds that keep one Rescue well below etcd's object size limit.
MAX_ALERTS = 50
MAX_TIMELINE = 100
MAX_TEXT = 4096


class Severity(enum.StrEnum):
    """PROCESS.md's four severities; SEV1 is the worst."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @property
    def opens_at_once(self) -> bool:
        """SEV1 and SEV2 always open a rescue; SEV3 and SEV4 only when a policy says so."""
        return self in (Severity.SEV1, Severity.SEV2)


class Phase(enum.StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    PAUSED = "Paused"
    COMPLETED = "Completed"


class Step(enum.StrEnum):
    """The incident response flow, walked in this order and never skipped."""

    DETECT = "Detect"
    TRIAGE = "Triage"
    MITIGATE = "Mitigate"
    DIAGNOSE = "Diagnose"
    RESOLVE = "Resolve"
    REVIEW = "Review"


class LifecycleEvent(enum.StrEnum):
    """Event names of the lifecycle contract; each is also a Kubernetes Event's reason."""

    OPENED = "rescue_opened_v1"
    SHELVED = "rescue_shelved_v1"
    RESUMED = "rescue_resumed_v1"
    CONCLUDED = "rescue_concluded_v1"


#: The only phase transitions that exist: (from, event) -> to.
TRANSITIONS: Mapping[tuple[Phase, LifecycleEvent], Phase] = {
    (Phase.PENDING, LifecycleEvent.OPENED): Phase.ACTIVE,
    (Phase.ACTIVE, LifecycleEvent.SHELVED): Phase.PAUSED,
    (Phase.PAUSED, LifecycleEvent.RESUMED): Phase.ACTIVE,
    (Phase.ACTIVE, LifecycleEvent.CONCLUDED): Phase.COMPLETED,
}

#: The default mapping from an alert's ``severity`` label to a Rescue severity. Explicit
#: ``sev1``..``sev4`` values map to themselves; configurable with ``--severity-map``.
DEFAULT_SEVERITY_MAP: Mapping[str, Severity] = {
    "critical": Severity.SEV1,
    "page": Severity.SEV1,
    "high": Severity.SEV2,
    "error": Severity.SEV2,
    "major": Severity.SEV2,
    "warning": Severity.SEV3,
    "minor": Severity.SEV3,
    "info": Severity.SEV4,
    "low": Severity.SEV4,
    "none": Severity.SEV4,
}

#: Severity of an alert whose label is missing or unknown: recorded, not opened by itself.
DEFAULT_SEVERITY = Severity.SEV3


def map_severity(
    value: str | None,
    mapping: Mapping[str, Severity] = DEFAULT_SEVERITY_MAP,
    default: Severity = DEFAULT_SEVERITY,
) -> Severity:
    """Map an alert's severity label to a Rescue severity, case-insensitively."""
    if not value:
        return default
    key = value.strip().lower()
    if key in {"sev1", "sev2", "sev3", "sev4"}:
        return Severity(key.upper())
    return mapping.get(key, default)


def worst(severities: list[Severity]) -> Severity:
    """The most severe of several (SEV1 beats SEV2 ...)."""
    return min(severities, key=lambda s: s.value)


class Target(BaseModel):
    """The workload an incident is about, as named by the alert's labels."""

    model_config = ConfigDict(frozen=True)

    kind: str = "Deployment"
    namespace: str = ""
    name: str = ""

    @property
    def ref(self) -> str:
        """``namespace/name`` or ``-`` when the alert names no workload."""
        if not self.name:
            return "-"
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class TargetLabels(BaseModel):
    """Which alert labels name the target workload (configurable per deployment)."""

    model_config = ConfigDict(frozen=True)

    kind: str = "Deployment"
    namespace_labels: tuple[str, ...] = Field(default=("namespace", "exported_namespace"))
    name_labels: tuple[str, ...] = Field(
        default=("deployment", "statefulset", "daemonset", "app", "service", "job")
    )

    def target_of(self, labels: Mapping[str, str]) -> Target:
        """The target named by the first label present; its kind follows a workload label."""
        namespace = next((labels[k] for k in self.namespace_labels if labels.get(k)), "")
        label = next((k for k in self.name_labels if labels.get(k)), None)
        if label is None:
            return Target(kind=self.kind, namespace=namespace)
        kind = _KIND_OF_LABEL.get(label, self.kind)
        return Target(kind=kind, namespace=namespace, name=labels[label])


_KIND_OF_LABEL = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
}
