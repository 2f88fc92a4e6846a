"""When the wheel turns back to design by itself: the same target rescued again and again.

PROCESS.md routes recurring incidents from the same subsystem to design. The operator counts
the rescues of a target created within the policy's window; when there are at least
``recurringCount`` of them (this one included), the rescue escalates, once, and says which
rescues made the pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from rescue.core.incident import parse_time


def recurring(
    seen: Iterable[str], *, me: str, now: datetime, window: timedelta, count: int
) -> list[str] | None:
    """The rescues (``"<created> <ns/name>"`` entries) that make a recurrence, or None."""
    recent = []
    for entry in seen:
        created, _, ref = entry.partition(" ")
        if ref and ref != me and now - parse_time(created) <= window:
            recent.append((created, ref))
    if count < 1 or len(recent) + 1 < count:
        return None
    return [ref for _, ref in sorted(recent)]
