"""Builders and waits that tests share (imported as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rescue import controlplane, stack


def notification(
    *,
    namespace: str,
    alertname: str = "CheckoutErrorRate",
    severity: str = "critical",
    status: str = "firing",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts_at: str = "2026-12-03T10:00:00Z",
    extra_alerts: list[dict[str, Any]] | None = None,
    deployment: str = "checkout",
) -> dict[str, Any]:
    """A notification exactly as Alertmanager 0.25 sends it (zero-time endsAt, empty URL)."""
    labels = {
        "alertname": alertname,
        "namespace": namespace,
        "deployment": deployment,
        "severity": severity,
    }
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "Checkout is failing requests"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-03T10:30:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    group_labels = {"alertname": alertname, "namespace": namespace}
    return {
        "receiver": "rescue",
        "status": status,
        "alerts": [alert, *(extra_alerts or [])],
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Checkout is failing requests"},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}", namespace="{namespace}"}}',
        "truncatedAlerts": 0,
    }


def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll until ``check`` returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or check}; last: {last!r}")


class OperatorHandle:
    """The suite's one operator, which a test may kill and start again."""

    def __init__(self, cluster: controlplane.Cluster, folder: Path) -> None:
        self.cluster, self.folder, self.starts = cluster, folder, 0
        self.process = self._start()

    def _start(self) -> stack.Process:
        self.starts += 1
        return stack.start_operator(
            self.cluster, folder=self.folder, name=f"operator-{self.starts}", verbose=True
        )

    def restart(self, *, kill: bool) -> stack.Process:
        self.process.stop(kill=kill)
        self.process = self._start()
        return self.process

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop the suite's operator while a test runs operators of its own."""
        self.process.stop()
        try:
            yield
        finally:
            self.process = self._start()
