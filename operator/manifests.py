"""Small, comment-preserving edits to YAML manifests for the scale and feature strategies, and
for holding image automation. Edits are textual on purpose: a GitOps repository is read by
people, and a round trip through a YAML library would drop their comments and reorder keys.
"""

from __future__ import annotations

import math
import re

_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)
_REPLICAS = re.compile(r"^(?P<indent>[ \t]*)replicas:[ \t]*(?P<n>\d+)[ \t]*(?P<rest>#.*)?$", re.M)
IMAGE_POLICY_MARKER = '"$imagepolicy"'


class ManifestError(Exception):
    """The manifest does not hold what the strategy needs to change."""


def _kind_and_name(doc: str) -> tuple[str, str]:
    kind = re.search(r"^kind:[ \t]*(\S+)", doc, re.M)
    name = re.search(
        r"^metadata:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+name:[ \t]*['\"]?([^'\"\s]+)", doc, re.M
    )
    return (kind.group(1) if kind else "", name.group(1) if name else "")


def scale_up(
    text: str, *, kind: str, name: str, factor: float, max_replicas: int
) -> tuple[str, int, int]:
    """Raise ``spec.replicas`` of the named workload; returns (text, before, after)."""
    docs = _DOC_SPLIT.split(text)
    for index, doc in enumerate(docs):
        doc_kind, doc_name = _kind_and_name(doc)
        if doc_kind != kind or doc_name != name:
            continue
        match = _REPLICAS.search(doc)
        if match is None:
            raise ManifestError(f"{kind} {name} sets no spec.replicas to raise")
        before = int(match.group("n"))
        after = min(max(before + 1, math.ceil(before * factor)), max_replicas)
        if after <= before:
            raise ManifestError(
                f"{kind} {name} already runs {before} replicas, "
                f"at or above the bound {max_replicas}"
            )
        rest = f" {match.group('rest')}" if match.group("rest") else ""
        docs[index] = (
            doc[: match.start()]
            + f"{match.group('indent')}replicas: {after}{rest}"
            + doc[match.end() :]
        )
        return "---".join(docs), before, after
    raise ManifestError(f"no {kind} named {name} in the manifest")


def set_flag(text: str, *, config_map: str, key: str, value: str) -> tuple[str, str | None]:
    """Set ``data.<key>`` of the named ConfigMap; returns (text, previous value)."""
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
        raise ManifestError(f"{key!r} is not a valid ConfigMap key")
    docs = _DOC_SPLIT.split(text)
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    for index, doc in enumerate(docs):
        if _kind_and_name(doc) != ("ConfigMap", config_map):
            continue
        line = re.compile(rf"^(?P<indent>[ \t]+){re.escape(key)}:[ \t]*(?P<v>.*)$", re.M)
        data = re.search(r"^data:[ \t]*$", doc, re.M)
        if data is None:
            raise ManifestError(f"ConfigMap {config_map} has no data section")
        match = line.search(doc, data.end())
        if match is None:
            insert = f"\n  {key}: {quoted}"
            docs[index] = doc[: data.end()] + insert + doc[data.end() :]
            return "---".join(docs), None
        previous = match.group("v").strip().strip("'\"")
        docs[index] = (
            doc[: match.start()] + f"{match.group('indent')}{key}: {quoted}" + doc[match.end() :]
        )
        return "---".join(docs), previous
    raise ManifestError(f"no ConfigMap named {config_map} in the manifest")


def automation_paths(text: str) -> list[tuple[str, str]]:
    """(name, spec.update.path) of each ImageUpdateAutomation in a manifest."""
    found = []
    for doc in _DOC_SPLIT.split(text):
        kind, name = _kind_and_name(doc)
        if kind != "ImageUpdateAutomation":
            continue
        path = re.search(
            r"^[ \t]+update:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+path:[ \t]*['\"]?([^'\"\s#]+)", doc, re.M
        )
        found.append((name, path.group(1) if path else "./"))
    return found


def set_suspend(text: str, *, name: str, suspend: bool) -> str:
    """Set ``spec.suspend`` of the named ImageUpdateAutomation."""
    docs = _DOC_SPLIT.split(text)
    for index, doc in enumerate(docs):
        if _kind_and_name(doc) != ("ImageUpdateAutomation", name):
            continue
        value = "true" if suspend else "false"
        existing = re.search(r"^(?P<indent>[ \t]+)suspend:[ \t]*\S+", doc, re.M)
        if existing:
            docs[index] = (
                doc[: existing.start()]
                + f"{existing.group('indent')}suspend: {value}"
                + doc[existing.end() :]
            )
        else:
            spec = re.search(r"^spec:[ \t]*$", doc, re.M)
            if spec is None:
                raise ManifestError(f"ImageUpdateAutomation {name} has no spec")
            docs[index] = doc[: spec.end()] + f"\n  suspend: {value}" + doc[spec.end() :]
        return "---".join(docs)
    raise ManifestError(f"no ImageUpdateAutomation named {name}")


def covers(automation_path: str, target_path: str) -> bool:
    """Whether an automation's update path (relative to the repo root) includes the target's."""
    base = automation_path.strip().lstrip("./").strip("/")
    return not base or target_path == base or target_path.startswith(base + "/")
