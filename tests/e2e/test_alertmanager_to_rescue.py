"""End to end: Debian's Alertmanager posts to the webhook with a bearer token, the operator
opens the rescue, and `kubectl get rescues` shows it; resolving the alert reaches the rescue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually

from rescue import controlplane, stack
from rescue.core import kube

pytestmark = pytest.mark.usefixtures("operator")


@pytest.fixture
def alertmanager(webhook: stack.Process, run_dir: Path, token: str) -> Iterator[stack.Process]:
    token_file = run_dir / "alertmanager.token"
    token_file.write_text(token)
    process = stack.start_alertmanager(
        folder=run_dir, webhook_url=webhook.url, token_file=token_file, name="alertmanager-e2e"
    )
    yield process
    process.stop()


def test_alert_through_alertmanager_becomes_an_open_rescue_shown_by_kubectl(
    alertmanager: stack.Process,
    cluster: controlplane.Cluster,
    namespace: str,
    rescues: kube.Rescues,
) -> None:
    labels = [f"namespace={namespace}", "deployment=checkout", "severity=critical"]
    stack.amtool(
        alertmanager.url,
        "alert",
        "add",
        "CheckoutDown",
        *labels,
        "--annotation=summary=Checkout returns 503",
    )

    def opened() -> Any:
        items = rescues.list(namespace)
        if items and (items[0].get("status") or {}).get("step") == "Diagnose":
            return items[0]
        return None

    rescue = eventually(opened, timeout=60, what="the rescue opened from Alertmanager's alert")
    assert rescue["spec"]["severity"] == "SEV1"
    assert rescue["spec"]["title"] == "Checkout returns 503"
    assert rescue["spec"]["groupKey"].startswith("{}:")

    table = stack.kubectl(cluster, "get", "rescues", "-n", namespace).splitlines()
    assert table[0].split() == ["NAME", "SEVERITY", "PHASE", "STEP", "TARGET", "COMMIT", "AGE"]
    row = table[1].split()
    assert row[0] == rescue["metadata"]["name"]
    assert row[1:5] == ["SEV1", "Active", "Diagnose", f"{namespace}/checkout"]

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.amtool(alertmanager.url, "alert", "add", "CheckoutDown", *labels, f"--end={now}")

    def resolved() -> Any:
        status = rescues.get(namespace, rescue["metadata"]["name"]).get("status") or {}
        return status if status.get("alertsFiring") == 0 else None

    status = eventually(resolved, timeout=60, what="the resolved alert to reach the rescue")
    assert status["timeline"][-1]["event"] == "alerts_resolved"
    assert len(rescues.list(namespace)) == 1
