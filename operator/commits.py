"""The words of a mitigation commit: what it does and why, for the reviewer who reads it later.

Text that comes from alerts (names, summaries) reaches the message, so it is flattened to one
line, stripped of control characters and kept short; and because trailers are what make the
commit findable again, nothing from an alert may ever look like a trailer line of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from rescue.operator.lkg import (
    TRAILER_FINGERPRINT,
    TRAILER_RESCUE,
    TRAILER_ROLLBACK_TO,
    TRAILER_ROLLS_BACK,
)

_SPACE = re.compile(r"\s+")


def one_line(text: str, limit: int = 200) -> str:
    """A single printable line: newlines and control characters become spaces."""
    cleaned = "".join(
        " " if unicodedata.category(ch).startswith("C") or ch in "\u2028\u2029" else ch
        for ch in text
    )
    flat = _SPACE.sub(" ", cleaned).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _trailer_value(text: str) -> str:
    # Long enough for the longest namespace/name (63 + 1 + 253): the Rescue trailer must match.
    value = one_line(text, 400)
    return value or "-"


def message(*, subject: str, body: str, trailers: Mapping[str, str]) -> str:
    """A commit message: subject, an explanatory paragraph, then the trailer block."""
    lines = [one_line(subject, 72), "", body.strip(), ""]
    lines += [f"{key}: {_trailer_value(value)}" for key, value in trailers.items()]
    return "\n".join(lines) + "\n"


def rollback_message(
    *,
    rescue: str,
    target: str,
    path: str,
    suspect_sha: str,
    suspect_subject: str,
    lkg: str,
    alert: str,
    fingerprint: str,
    severity: str,
) -> str:
    body = "\n".join(
        [
            f"{severity} incident {rescue}: the alert {one_line(alert, 80)} started firing",
            f"after {suspect_sha[:12]} ({one_line(suspect_subject, 80)}) changed {path}.",
            f"This commit restores {path} to its content at {lkg[:12]}, the last known good",
            "state, on top of the current branch; nothing outside that folder changes.",
            "Revert this commit to roll forward again once the cause is fixed.",
        ]
    )
    return message(
        subject=f"rescue: roll back {target} to {lkg[:12]}",
        body=body,
        trailers={
            TRAILER_RESCUE: rescue,
            TRAILER_FINGERPRINT: fingerprint,
            TRAILER_ROLLBACK_TO: lkg,
            TRAILER_ROLLS_BACK: suspect_sha,
        },
    )
