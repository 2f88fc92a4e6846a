"""What every benchmark of this folder needs, so that each measures the same way.

The figures are only worth comparing when every part states the machine the same way, reads
percentiles the same way, stops every process it started when interrupted, and writes its
JSON the same way; this module is where those rules live. The parts themselves (intake, storm,
operator, alert to rollback) are in the modules beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from rescue import controlplane, stack

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"
#: The product's own code: a run records whether it had local changes.
PRODUCT_PATHS = ("core", "operator", "webhook")


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


# --- the machine -----------------------------------------------------------------------------


def run_text(argv: Sequence[str], *, timeout: float = 60.0) -> str:
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (result.stdout or result.stderr).strip()


def machine(plane: controlplane.ControlPlane | None) -> dict[str, Any]:
    meminfo = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = value.strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    apiserver = etcd = "unknown"
    if plane is not None:
        apiserver = run_text([str(plane.bin_dir / "kube-apiserver"), "--version"])
        etcd = run_text([str(plane.bin_dir / "etcd"), "--version"]).splitlines()[0]
    packages = {}
    for name in ("kopf", "kubernetes", "fastapi", "uvicorn", "pydantic", "httpx", "aiohttp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "nproc": run_text(["nproc"]),
        "cpu_model": cpu,
        "mem_total": meminfo.get("MemTotal", "unknown"),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "kube_apiserver": apiserver,
        "etcd": etcd,
        "packages": packages,
        "git": run_text(["git", "--version"]),
        "loadavg": load_average(),
    }


def load_average() -> str:
    """/proc/loadavg: other work on the machine skews every figure, so the record says."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def project_revision() -> dict[str, Any]:
    """The commit of this checkout the product ran from, and whether it had local changes."""
    head = run_text(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"])
    diff = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "diff", "HEAD", "--", *PRODUCT_PATHS],
        capture_output=True,
        check=False,
        timeout=60,
    ).stdout
    untracked = run_text(
        [
            "git",
            "-C",
            str(REPO_ROOT),
            "ls-files",
            "--others",
            "--exclude-standard",
            "--",
            *PRODUCT_PATHS,
        ]
    )
    return {
        "commit": head,
        "product_code_modified": bool(diff or untracked),
        "product_diff_sha256": hashlib.sha256(diff).hexdigest()[:16] if diff else None,
        "product_untracked": untracked.split(),
    }


# --- processes -------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (the operator may be a wrapper around the real one)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of ``pid`` and its descendants, in MiB; 0 when it has gone."""
    total_kib = 0
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its threads so far (not of its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # After the command: state is field 3, utime and stime are fields 14 and 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_children(markers: Sequence[str]) -> list[int]:
    """Pids of this process's children whose command line names one of ``markers`` (the
    rescue program, a baseline script); each leads its own session (``stack.start``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if parent == os.getpid() and any(m.encode() in argv[:3] for m in markers):
                found.append(int(entry.name))
    return found


def stop_processes(processes: Sequence[stack.Process], markers: Sequence[str] = ()) -> None:
    """Stop what a benchmark started, newest first; then any child a Ctrl-C interrupted while
    it was starting (never handed back, so only found by its command line)."""
    for process in reversed(processes):
        with contextlib.suppress(Exception):
            process.stop()
    for pid in own_children([stack.rescue_program(), *markers]):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)


# --- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def run_folder(folder: Path | None, prefix: str = "rescue-bench-") -> Iterator[Path]:
    """The run's folder: ``folder`` kept as given, or a temporary one removed afterwards."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: The signal that interrupted the run, once one did.
interrupted_by: list[int] = []


def _interrupt(signum: int, frame: FrameType | None) -> None:
    interrupted_by.append(signum)
    raise KeyboardInterrupt


def catch_signals() -> None:
    """Ctrl-C and SIGTERM both end the run through its clean-up, also when this process was
    started with SIGINT ignored (a background job of a non-interactive shell)."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A second Ctrl-C must not leave processes behind half-way through the clean-up."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def write_json(document: Mapping[str, Any], name: str, stamp: str) -> Path:
    """``bench/results/<name>-<stamp>.json``, written whole or not at all."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{name}-{stamp}.json"
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2, default=str) + "\n")
    partial.replace(target)
    return target
