"""RescuePolicy: what Rescue may do for the alerts a policy selects, as a typed model.

The CRD in ``crds/`` holds the same shape for the API server's validation; this model gives the
operator defaults and types. Field names are the wire names (camelCase), so people and scripts
can rely on them; fields may be added, these keep their names and meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rescue.core.model import Severity, Target

Mode = Literal["commit", "pull-request", "propose", "none"]
Strategy = Literal["rollback", "scale", "feature-disable"]

_PLACEHOLDER = re.compile(r"\{(namespace|name|kind)\}")
#: RFC 1123 label (namespaces), subdomain (object names), and a kind's CamelCase word.
_KUBE_NAME = {
    "namespace": re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"),
    "name": re.compile(
        r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    ),
    "kind": re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}"),
}


class PolicyError(Exception):
    """A policy that cannot be applied as written; the message says which field and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Selector(_Model):
    matchLabels: dict[str, str] = Field(default_factory=dict)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matchLabels.items())


class TargetSpec(_Model):
    kind: str = "Deployment"
    namespaceLabel: str = "namespace"
    nameLabel: str = "deployment"


class SecretRef(_Model):
    name: str


class Forge(_Model):
    """Where pull requests are opened; the API address is guessed from the URL when absent."""

    type: Literal["github"] = "github"
    apiURL: str | None = None


class Repository(_Model):
    url: str
    branch: str = "main"
    path: str = "apps/{namespace}/{name}"
    secretRef: SecretRef | None = None
    forge: Forge = Field(default_factory=Forge)

    def path_for(self, target: Target) -> str:
        """The target's folder in the repository; refuses names that would leave it."""
        values = {"namespace": target.namespace, "name": target.name, "kind": target.kind}
        for placeholder in set(_PLACEHOLDER.findall(self.path)):
            value = values[placeholder]
            if not value:
                raise PolicyError(f"the target has no {placeholder} for repository.path")
            if value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
                raise PolicyError(f"target name {value!r} cannot be used in a repository path")
            # Only what can name a Kubernetes object may name its folder; anything else is
            # not a workload (and "-rf" is not a folder name a tool should meet).
            if not _KUBE_NAME[placeholder].fullmatch(value):
                raise PolicyError(
                    f"target {placeholder} {value[:80]!r} is not a valid Kubernetes "
                    f"{placeholder}, so it names no workload folder"
                )
        path = _PLACEHOLDER.sub(
            lambda m: {"namespace": target.namespace, "name": target.name, "kind": target.kind}[
                m.group(1)
            ],
            self.path,
        ).strip("/")
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts) or path.startswith("-"):
            raise PolicyError(f"repository.path {self.path!r} gives the unusable path {path!r}")
        return path


class Scale(_Model):
    factor: float = Field(default=2.0, gt=1.0, le=10.0)
    maxReplicas: int = Field(default=20, ge=1, le=1000)


class Feature(_Model):
    configMap: str = "feature-flags"
    key: str = ""
    value: str = "false"


class Identity(_Model):
    name: str = "Rescue"
    email: str = "rescue@localhost"


DEFAULT_MODES: dict[Severity, Mode] = {
    Severity.SEV1: "commit",
    Severity.SEV2: "commit",
    Severity.SEV3: "propose",
    Severity.SEV4: "none",
}


class Mitigation(_Model):
    strategy: Strategy = "rollback"
    modes: dict[Severity, Mode] = Field(default_factory=lambda: dict(DEFAULT_MODES))
    lookbackSeconds: int = Field(default=7 * 86400, ge=60)
    scale: Scale = Field(default_factory=Scale)
    feature: Feature = Field(default_factory=Feature)
    author: Identity = Field(default_factory=Identity)

    @field_validator("modes", mode="after")
    @classmethod
    def _over_defaults(cls, modes: dict[Severity, Mode]) -> dict[Severity, Mode]:
        """Severities a policy leaves out keep their default mode."""
        return {**DEFAULT_MODES, **modes}

    def mode_for(self, severity: Severity) -> Mode:
        return self.modes.get(severity, "none")


class Gates(_Model):
    minFiringSeconds: int = Field(default=60, ge=0)
    cooldownSeconds: int = Field(default=1800, ge=0)
    maxPerDay: int = Field(default=3, ge=0)
    verifyWithinSeconds: int = Field(default=600, ge=10)
    maxConcurrent: int = Field(default=5, ge=0)
    stableSeconds: int = Field(default=300, ge=0)


DEFAULT_MAX_OPEN: dict[Severity, int] = {Severity.SEV1: 4 * 3600, Severity.SEV2: 24 * 3600}


class Escalation(_Model):
    recurringCount: int = Field(default=3, ge=0)  # 0 turns the rule off
    recurringWindowSeconds: int = Field(default=7 * 86400, ge=60)
    #: How long a rescue of each severity may stay open before it is overdue (the
    #: ``rescue_open_overdue`` gauge, which the shipped alert watches); 0 or absent: no limit.
    maxOpenSeconds: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_MAX_OPEN))

    @field_validator("maxOpenSeconds", mode="after")
    @classmethod
    def _limits_over_defaults(cls, limits: dict[Severity, int]) -> dict[Severity, int]:
        return {**DEFAULT_MAX_OPEN, **limits}

    def max_open(self, severity: Severity) -> int | None:
        return self.maxOpenSeconds.get(severity) or None


class Triage(_Model):
    open: list[Severity] = Field(default_factory=list)
    #: The alert label that carries the severity; absent, the webhook's ``--severity-label``.
    severityLabel: str | None = Field(default=None, min_length=1, max_length=253)
    #: Label values (case-insensitive) and the severity each means, over the webhook's
    #: ``--severity-map``; ``sev1``..``sev4`` always mean themselves.
    severityMap: dict[str, Severity] = Field(default_factory=dict)

    @field_validator("severityMap", mode="after")
    @classmethod
    def _lower_keys(cls, mapping: dict[str, Severity]) -> dict[str, Severity]:
        return {key.strip().lower(): value for key, value in mapping.items()}

    @property
    def maps_severity(self) -> bool:
        """Whether this policy says anything about how an alert's severity is read."""
        return self.severityLabel is not None or bool(self.severityMap)


class Review(_Model):
    """Where the post-incident review goes: committed to the branch, or a pull request."""

    mode: Literal["commit", "pull-request"] = "commit"
    directory: str = Field(default="postmortems", min_length=1, max_length=512)

    @field_validator("directory", mode="after")
    @classmethod
    def _inside_the_repository(cls, directory: str) -> str:
        folder = directory.strip("/")
        parts = folder.split("/")
        if (
            not folder
            or any(part in ("", ".", "..") or part.lower() == ".git" for part in parts)
            or folder.startswith("-")
            or "\\" in folder
            or "\0" in folder
        ):
            raise ValueError(f"{directory!r} is not a folder inside the repository")
        return folder


class Tracker(_Model):
    """Whether routed findings also become an issue in the repository's forge."""

    issues: bool = False
    #: The first label is also how Rescue finds its own issue again; a comma would split it.
    labels: list[Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^,]+$")]] = Field(
        default_factory=list, max_length=20
    )


class PolicySpec(_Model):
    selector: Selector = Field(default_factory=Selector)
    target: TargetSpec = Field(default_factory=TargetSpec)
    repository: Repository | None = None
    mitigation: Mitigation = Field(default_factory=Mitigation)
    gates: Gates = Field(default_factory=Gates)
    triage: Triage = Field(default_factory=Triage)
    escalation: Escalation = Field(default_factory=Escalation)
    review: Review = Field(default_factory=Review)
    tracker: Tracker = Field(default_factory=Tracker)


class Policy(_Model):
    """A policy with where it lives; ``spec`` is parsed, with defaults filled in."""

    namespace: str
    name: str
    spec: PolicySpec

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, namespace: str, name: str, spec: Mapping[str, Any]) -> Policy:
        try:
            return cls(namespace=namespace, name=name, spec=PolicySpec.model_validate(dict(spec)))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise PolicyError(f"policy {namespace}/{name} is not usable: {problems}") from exc

    def target_of(self, labels: Mapping[str, str]) -> Target:
        t = self.spec.target
        return Target(
            kind=t.kind,
            namespace=labels.get(t.namespaceLabel, ""),
            name=labels.get(t.nameLabel, ""),
        )


def select(policies: Iterable[Policy], labels: Mapping[str, str]) -> Policy | None:
    """The policy for an incident: the most specific selector that matches, then by name."""
    matching = [p for p in policies if p.spec.selector.selects(labels)]
    if not matching:
        return None
    return sorted(matching, key=lambda p: (-len(p.spec.selector.matchLabels), p.ref))[0]
