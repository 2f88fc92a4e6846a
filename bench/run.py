"""Every benchmark of Rescue in one run, each figure beside its baseline: ``make bench``.

What a user feels, measured on real components (etcd and kube-apiserver, the webhook and the
operator as their own processes):

- ``intake``: notifications per second and answer latency of the webhook, beside a minimal
  endpoint and the API server's raw create rate (bench/intake.py);
- ``storm``: 5,000 alerts in 500 groups within a minute, as Alertmanager sends them
  (bench/storm.py);
- ``operator``: a burst of 1,000 rescues, the operator's memory over churn, and its resume
  after a restart, beside a minimal kopf operator (bench/operator_load.py);
- ``rollback``: from an alert to the rollback commit on the GitOps remote, beside a plain
  ``git commit`` + ``git push`` (bench/alert_to_rollback.py, run as its own process).

Run from the repository root::

    PYTHONSAFEPATH=1 .venv/bin/python bench/run.py [--quick] [--only intake,storm,...]
    PYTHONSAFEPATH=1 .venv/bin/python bench/run.py --show bench/results/bench-<UTC>.json

It prints one table and writes ``bench/results/bench-<UTC>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: the package ``bench`` is found from the repository root, placed last on
    # the path so that the folder ``operator/`` never shadows the standard library's module.
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench import intake, operator_load, storm
from bench.cluster import Cluster
from bench.common import (
    REPO_ROOT,
    RESULTS,
    catch_signals,
    interrupted_by,
    load_average,
    machine,
    project_revision,
    run_folder,
    say,
    uninterrupted,
    write_json,
)
from bench.report import PartResult, Row, markdown, table
from rescue import controlplane, stack

PARTS = ("intake", "storm", "operator", "rollback")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Run Rescue's benchmarks; every figure beside its baseline.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced version of every part (under 3 minutes)"
    )
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts ({', '.join(PARTS)})"
    )
    parser.add_argument("--repeats", type=int, help="runs of each throughput figure (3)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--requests", type=int, help="notifications per intake run (1000; 30)")
    parser.add_argument("--rescues", type=int, help="rescues of the operator's bursts (1000; 100)")
    parser.add_argument(
        "--churn-seconds", type=float, help="seconds of churn for the operator (1800; 15)"
    )
    parser.add_argument(
        "--baseline-connections",
        type=int,
        default=0,
        help="bound the minimal kopf operator's connections to the API server (default: none)",
    )
    parser.add_argument("--dir", type=Path, help="keep the run's files (logs) in DIR")
    parser.add_argument("--show", type=Path, help="print the table of a results file and stop")
    parser.add_argument("--markdown", action="store_true", help="with --show: as Markdown")
    args = parser.parse_args(argv)
    args.parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose among {', '.join(PARTS)}")
    if args.repeats is None:
        args.repeats = 3
    if args.requests is None:
        args.requests = 30 if args.quick else 1000
    if args.repeats < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("--repeats, --requests and --concurrency must be at least 1")
    return args


def show(path: Path, *, as_markdown: bool) -> int:
    document = json.loads(path.read_text())
    rows = [Row.from_json(row) for row in document["rows"]]
    rollback = document.get("parts", {}).get("rollback", {}).get("metrics")
    if rollback:
        # Derived again from the part's figures, so that a file written before the targets
        # were stated shows them too.
        kept = [row for row in rows if row.part != "rollback"]
        rows = rollback_rows(rollback) + kept
    print(markdown(rows) if as_markdown else table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.show is not None:
        return show(args.show, as_markdown=args.markdown)
    catch_signals()
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    results: list[PartResult] = []
    with run_folder(args.dir) as folder:
        cluster = Cluster(folder)
        try:
            return run(cluster, args, started_at, stamp, results)
        except KeyboardInterrupt:
            say("Interrupted; stopping everything the benchmark started")
            return 130
        except (
            stack.StackError,
            controlplane.ControlPlaneError,
            subprocess.CalledProcessError,
            RuntimeError,
            OSError,
        ) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            with uninterrupted():
                cluster.stop()


def run(
    cluster: Cluster,
    args: argparse.Namespace,
    started_at: datetime,
    stamp: str,
    results: list[PartResult],
) -> int:
    load: dict[str, Any] = {"before": load_average()}
    timings: dict[str, float] = {}
    status = 0

    # The rollback benchmark brings its own control plane and GitOps server: it runs first, in
    # a process of its own, before this run's control plane takes the machine's memory.
    if "rollback" in args.parts:
        began = time.perf_counter()
        rollback, status = alert_to_rollback(args, started_at)
        results.append(rollback)
        timings["rollback"] = time.perf_counter() - began
        load["after_rollback"] = load_average()

    if any(part in args.parts for part in ("intake", "storm", "operator")):
        began = time.perf_counter()
        cluster.start()
        timings["control_plane"] = time.perf_counter() - began
    if "intake" in args.parts:
        began = time.perf_counter()
        settings = intake.Settings(
            requests=args.requests, repeats=args.repeats, concurrency=args.concurrency
        )
        results.append(intake.measure(cluster, settings))
        timings["intake"] = time.perf_counter() - began
        load["after_intake"] = load_average()

    if "storm" in args.parts:
        began = time.perf_counter()
        results.append(storm.measure(cluster, storm_settings(args)))
        timings["storm"] = time.perf_counter() - began
        load["after_storm"] = load_average()

    if "operator" in args.parts:
        began = time.perf_counter()
        results.append(operator_load.measure(cluster, operator_settings(args)))
        timings["operator"] = time.perf_counter() - began
        load["after_operator"] = load_average()

    rows = [row for result in results for row in result.rows]
    print()
    print(table(rows))
    finished_at = datetime.now(UTC)
    document = {
        "benchmark": "bench",
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "config": {
            "quick": args.quick,
            "parts": args.parts,
            "repeats": args.repeats,
            "concurrency": args.concurrency,
            "requests": args.requests,
            "baseline_connections": args.baseline_connections,
            "statistic": (
                "each figure is the median over its runs; within a run, p50/p99 interpolate "
                "linearly between ranks"
            ),
        },
        "machine": {**machine(cluster.plane), "loadavg_during": load},
        "project": project_revision(),
        "seconds": timings,
        "rows": [row.as_json() for row in rows],
        "parts": {result.name: result.details for result in results},
    }
    path = write_json(document, "bench", stamp)
    print(f"\nResults: {path}")
    return status


def storm_settings(args: argparse.Namespace) -> storm.Settings:
    if args.quick:
        return storm.Settings(
            groups=40, window=5.0, group_wait=1.0, group_interval=1.5, repeats=args.repeats
        )
    return storm.Settings(repeats=args.repeats)


def operator_settings(args: argparse.Namespace) -> operator_load.Settings:
    rescues = args.rescues or (100 if args.quick else 1000)
    churn = args.churn_seconds
    if churn is None:
        churn = 15.0 if args.quick else 1800.0
    return operator_load.Settings(
        rescues=rescues,
        repeats=args.repeats,
        churn_seconds=churn,
        sample_every=2.0 if args.quick else 10.0,
        concurrency=args.concurrency,
        baseline_connections=args.baseline_connections,
    )


def alert_to_rollback(args: argparse.Namespace, started_at: datetime) -> tuple[PartResult, int]:
    """bench/alert_to_rollback.py as its own process (``--quick`` with ``--quick``); its rows
    come from the JSON it writes."""
    say("Rollback: bench/alert_to_rollback.py" + (" --quick" if args.quick else ""))
    argv = [sys.executable, str(REPO_ROOT / "bench" / "alert_to_rollback.py")]
    if args.quick:
        argv.append("--quick")
    if args.dir is not None:
        argv += ["--dir", str(args.dir / "rollback")]
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    child = subprocess.Popen(argv, env=env)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        with uninterrupted():
            stop_child(child)
        raise
    written = sorted(
        (
            p
            for p in RESULTS.glob("alert_to_rollback-*.json")
            if p.stat().st_mtime >= started_at.timestamp()
        ),
        key=lambda p: p.stat().st_mtime,
    )
    if code != 0 or not written:
        say(f"warning: the rollback benchmark failed (exit {code}); its figures are missing")
        return PartResult("rollback", [], {"exit_code": code}), code or 1
    document = json.loads(written[-1].read_text())
    metrics = document["metrics"]
    return PartResult(
        "rollback", rollback_rows(metrics), {"results": str(written[-1]), "metrics": metrics}
    ), 0


#: The targets: a rollback pushed within a second (p50) and three (p95) of the alert reaching the
#: webhook, and at most three times a plain commit and push of the same change.
ROLLBACK_P50_S, ROLLBACK_P95_S, ROLLBACK_RATIO = 1.0, 3.0, 3.0


def rollback_rows(metrics: dict[str, Any]) -> list[Row]:
    product, plain = metrics["product"], metrics["plain"]
    p50, p95 = product["p50"], product["p95"]
    ratio = p50 / plain["p50"] if plain["p50"] else float("inf")
    return [
        Row(
            part="rollback",
            figure="alert -> rollback commit on the remote, p50",
            value=p50,
            unit="s",
            baseline=plain["p50"],
            baseline_label="plain git commit + push",
            target=f"< {ROLLBACK_P50_S:g} s and <= {ROLLBACK_RATIO:g}x plain",
            met=p50 < ROLLBACK_P50_S and ratio <= ROLLBACK_RATIO,
            runs=product["n"],
        ),
        Row(
            part="rollback",
            figure=f"alert -> rollback commit on the remote, p95 of {product['n']}",
            value=p95,
            unit="s",
            baseline=plain["p95"],
            baseline_label="plain git commit + push",
            target=f"< {ROLLBACK_P95_S:g} s",
            met=p95 < ROLLBACK_P95_S,
        ),
    ]


def stop_child(child: subprocess.Popen[bytes]) -> None:
    """Let an interrupted benchmark process stop what it started, as it does on SIGINT or
    SIGTERM. Ctrl-C reached it already (the terminal signals the whole foreground group); a
    SIGTERM sent to this process alone is passed on. Only a child that never ends is killed."""
    if interrupted_by and interrupted_by[-1] != signal.SIGINT:
        child.send_signal(interrupted_by[-1])
    try:
        child.wait(timeout=30)
        return
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=90)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


if __name__ == "__main__":
    sys.exit(main())
