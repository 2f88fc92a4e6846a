"""The README's first command works: `rescue demo` runs the whole loop and stops what it started."""

from __future__ import annotations

import re
import signal
import subprocess

from rescue import stack


def test_demo_rolls_back_by_commit_and_verifies_when_the_alert_resolves() -> None:
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
    assert re.search(r"SEV1\s+Active\s+Mitigate\s+shop/checkout\s+[0-9a-f]{7}\s", out)
    assert re.search(r"^Rescue: shop/checkouterrorrate-[0-9a-f]{10}$", out, re.M)
    assert re.search(r"^Rollback-To: [0-9a-f]{40}$", out, re.M)
    assert "mitigation_verified" in out
    mttr = re.search(r"^\s+MTTR\s+(\d+\.\d) s\s+\(rescue_time_to_resolve_seconds\)$", out, re.M)
    assert mttr is not None, out[-1500:]
    assert 0 < float(mttr.group(1)) < 120
    leftover = subprocess.run(
        ["pgrep", "-f", "rescue-demo-"], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", "the demo left processes running"


def test_sigterm_stops_a_kept_demo_and_everything_it_started() -> None:
    demo = subprocess.Popen(
        [stack.rescue_program(), "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "Still running" in line:
                break
        else:
            raise AssertionError("the demo ended before it said it keeps running")
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
    leftover = subprocess.run(
        ["pgrep", "-f", "rescue-demo-"], capture_output=True, text=True, check=False
    )
    assert leftover.stdout.strip() == "", "SIGTERM left the demo's processes running"
