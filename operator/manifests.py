"""Small, comment-preserving edits to YAML manifests for the scale and feature strategies, and
for holding image automation. Edits are textual on purpose: a GitOps repository is read by
people, and a round trip through a YAML library would drop their comments and reorder keys.

The edits understand just enough of YAML to be safe: a document's top-level blocks
(``metadata:``, ``spec:``, ``data:``) and their direct children, found by indentation. A line
nested deeper (a label called ``name``, a ``replicas:`` inside an embedded file) is never taken
for the field it resembles.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)
_KEY_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<key>[^\s:#][^:#]*?):(?:[ \t]+(?P<value>[^#]*?))?"
    r"(?P<gap>[ \t]*)(?P<comment>#.*)?$"
)
IMAGE_POLICY_MARKER = '"$imagepolicy"'


class ManifestError(Exception):
    """The manifest does not hold what the strategy needs to change."""


@dataclass(frozen=True)
class _Line:
    index: int
    indent: str
    key: str
    value: str
    gap: str
    comment: str


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _children(lines: list[str], parent: str) -> tuple[int, list[_Line]]:
    """The direct children of the top-level key ``parent``: (line of the parent, children)."""
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if re.match(rf"^{re.escape(parent)}:[ \t]*(#.*)?$", line)
        ),
        None,
    )
    if start is None:
        return -1, []
    found: list[_Line] = []
    child_indent: int | None = None
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = _indent_of(line)
        if depth == 0:
            break
        if child_indent is None:
            child_indent = depth
        if depth != child_indent:
            continue
        match = _KEY_LINE.match(line)
        if match:
            found.append(
                _Line(
                    index,
                    match.group("indent"),
                    match.group("key").strip(),
                    (match.group("value") or "").strip(),
                    match.group("gap") or "",
                    match.group("comment") or "",
                )
            )
    return start, found


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _kind_and_name(doc: str) -> tuple[str, str]:
    kind = re.search(r"^kind:[ \t]*(\S+)", doc, re.M)
    _, meta = _children(doc.splitlines(), "metadata")
    name = next((_scalar(line.value) for line in meta if line.key == "name"), "")
    return (kind.group(1) if kind else "", name)


def _set(lines: list[str], line: _Line, value: str) -> None:
    comment = f"{line.gap or ' '}{line.comment}" if line.comment else ""
    lines[line.index] = f"{line.indent}{line.key}: {value}{comment}"


def _edit_documents(text: str, kind: str, name: str) -> tuple[list[str], int]:
    docs = _DOC_SPLIT.split(text)
    for index, doc in enumerate(docs):
        if _kind_and_name(doc) == (kind, name):
            return docs, index
    raise ManifestError(f"no {kind} named {name} in the manifest")


def _join(doc: str, lines: list[str]) -> str:
    return "\n".join(lines) + ("\n" if doc.endswith("\n") else "")


def scale_up(
    text: str, *, kind: str, name: str, factor: float, max_replicas: int
) -> tuple[str, int, int]:
    """Raise ``spec.replicas`` of the named workload; returns (text, before, after)."""
    docs, index = _edit_documents(text, kind, name)
    lines = docs[index].splitlines()
    _, spec = _children(lines, "spec")
    replicas = next((line for line in spec if line.key == "replicas"), None)
    if replicas is None or not _scalar(replicas.value).isdigit():
        raise ManifestError(f"{kind} {name} sets no spec.replicas to raise")
    before = int(_scalar(replicas.value))
    # Rounded first, so that 50 x 1.1 is 55 and not 56 by floating-point error.
    after = min(max(before + 1, math.ceil(round(before * factor, 6))), max_replicas)
    if after <= before:
        raise ManifestError(
            f"{kind} {name} already runs {before} replicas, at or above the bound {max_replicas}"
        )
    _set(lines, replicas, str(after))
    docs[index] = _join(docs[index], lines)
    return "---".join(docs), before, after


def set_flag(text: str, *, config_map: str, key: str, value: str) -> tuple[str, str | None]:
    """Set ``data.<key>`` of the named ConfigMap; returns (text, previous value)."""
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
        raise ManifestError(f"{key!r} is not a valid ConfigMap key")
    docs, index = _edit_documents(text, "ConfigMap", config_map)
    lines = docs[index].splitlines()
    start, data = _children(lines, "data")
    if start < 0:
        raise ManifestError(f"ConfigMap {config_map} has no data section")
    quoted = json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar
    line = next((entry for entry in data if entry.key == key), None)
    if line is None:
        indent = data[0].indent if data else "  "
        lines.insert(start + 1, f"{indent}{key}: {quoted}")
        previous = None
    else:
        previous = _scalar(line.value)
        _set(lines, line, quoted)
    docs[index] = _join(docs[index], lines)
    return "---".join(docs), previous


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
    docs, index = _edit_documents(text, "ImageUpdateAutomation", name)
    lines = docs[index].splitlines()
    start, spec = _children(lines, "spec")
    if start < 0:
        raise ManifestError(f"ImageUpdateAutomation {name} has no spec")
    value = "true" if suspend else "false"
    line = next((entry for entry in spec if entry.key == "suspend"), None)
    if line is None:
        indent = spec[0].indent if spec else "  "
        lines.insert(start + 1, f"{indent}suspend: {value}")
    else:
        _set(lines, line, value)
    docs[index] = _join(docs[index], lines)
    return "---".join(docs)


def covers(automation_path: str, target_path: str) -> bool:
    """Whether an automation's update path (relative to the repo root) includes the target's."""
    base = automation_path.strip()
    while base.startswith("./"):
        base = base[2:]
    base = base.strip("/")
    return base in ("", ".") or target_path == base or target_path.startswith(base + "/")
