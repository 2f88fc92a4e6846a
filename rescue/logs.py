"""How the processes log: a readable sentence per line by default, one JSON object per line on
request (``--log-format json``), and the rescue's name on every line about a rescue either way.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from rescue.core import logcontext


def _rescue_of(record: logging.LogRecord) -> str | None:
    ref = getattr(record, "rescue", None) or logcontext.current()
    if ref:
        return str(ref)
    # kopf's own per-object lines carry the object's reference.
    k8s: Any = getattr(record, "k8s_ref", None)
    if isinstance(k8s, dict) and k8s.get("name"):
        return f"{k8s.get('namespace') or ''}/{k8s['name']}".lstrip("/")
    return None


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, with ``[rescue ns/name]`` when the message lacks it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ref = _rescue_of(record)
        if ref and ref not in record.getMessage():
            first, newline, rest = line.partition("\n")
            line = f"{first} [rescue {ref}]{newline}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, rescue, and the error if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = _rescue_of(record)
        if ref:
            entry["rescue"] = ref
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(*, verbose: bool, json_format: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
