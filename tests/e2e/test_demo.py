"""The README's first command works: `rescue demo` runs the whole loop and stops what it started."""

from __future__ import annotations

import re
import subprocess

from rescue import stack


def test_demo_opens_a_rescue_from_a_real_alert_and_shows_its_resolution() -> None:
    result = subprocess.run(
        [stack.rescue_program(), "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "Firing CheckoutErrorRate" in out
    assert re.search(r"SEV1\s+Active\s+Triage\s+shop/checkout", out)
    assert "alerts_resolved" in out
    leftover = subprocess.run(
        ["pgrep", "-f", "rescue-demo-"], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", "the demo left processes running"
