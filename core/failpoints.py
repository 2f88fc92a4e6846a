"""Failpoints: named places where a test makes the process die exactly as ``kill -9`` would.

Crash safety is a claim about specific instants (after the commit is pushed, before the status
says so), and a signal sent from outside cannot hit an instant. So the code names those instants
and, only when ``RESCUE_FAILPOINTS`` asks for one, kills itself there with SIGKILL: no cleanup,
no ``finally``, no flush, the same as a node dying.

``RESCUE_FAILPOINTS=after-push@/tmp/fired`` fires at ``after-push`` once: the marker file is
created just before dying, so the restarted process (with the same environment) goes on. Several
points are separated by commas. Unset, as in production, a failpoint is a dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

ENV = "RESCUE_FAILPOINTS"

logger = logging.getLogger(__name__)


def reached(name: str) -> None:
    """Die here if asked to (and not yet done, per the marker file)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    for item in wanted.split(","):
        point, _, marker = item.strip().partition("@")
        if point != name:
            continue
        if marker:
            path = Path(marker)
            if path.exists():
                return
            path.write_text(f"{os.getpid()}\n")
        logger.warning("Failpoint %s reached: the process kills itself now, as asked.", name)
        os.kill(os.getpid(), signal.SIGKILL)
