"""Which rescue the running code is about, so every log line about it can say so.

A handler sets it once (``about("ns/name")``) and every line logged below it, in the same task
or in the worker threads it starts (``asyncio.to_thread`` copies the context), carries the
rescue's name without each call spelling it out. The log formatters read it.
"""

from __future__ import annotations

from contextvars import ContextVar

_RESCUE: ContextVar[str | None] = ContextVar("rescue", default=None)


def about(ref: str | None) -> None:
    """Mark the current task (and what it starts) as working on rescue ``ref``."""
    _RESCUE.set(ref)


def current() -> str | None:
    return _RESCUE.get()
