"""Benchmark: from an Alertmanager notification to the rollback commit on the GitOps remote.

Everything is real: a local etcd + kube-apiserver, the webhook and the operator as their own
processes, and a GitOps repository of ``--commits`` commits and ``--files`` manifests served over
smart HTTP (git's own http-backend) with a token. For each incident the benchmark pushes a "bad
deploy" of one app, POSTs a version 4 notification straight to the webhook, and times until a
commit carrying the trailer ``Rescue: <namespace>/<rescue>`` is on the remote's ``main``. Beside
it, the same change made by hand: ``git checkout <parent> -- <folder>``, then a timed ``git
commit`` and ``git push`` from an up-to-date clone to the same remote.

Run from the repository root::

    PYTHONSAFEPATH=1 .venv/bin/python bench/alert_to_rollback.py [--quick] [--incidents N]
        [--commits 10000] [--files 2000]

It prints a table (metric, p50, p95, n) and writes ``bench/results/alert_to_rollback-<UTC>.json``.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):
    # Run as a script: the package ``bench`` is found from the repository root, placed last on
    # the path so that the folder ``operator/`` never shadows the standard library's module.
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.common import (
    catch_signals,
    load_average,
    machine,
    percentile,
    project_revision,
    run_folder,
    say,
    stop_processes,
    uninterrupted,
    write_json,
)
from rescue import controlplane, stack
from rescue.core import git, kube
from rescue.core.model import Severity, Target
from rescue.core.policy import Policy
from rescue.gitserver import GitServer
from rescue.operator import mitigation
from rescue.operator.environment import ClusterEnvironment
from rescue.sample import WorkClone, deployment, policy_manifest

NAMESPACE = "bench"  # where the policy, the Secret and the rescues live
#: Namespaces of the GitOps repository's apps; only NAMESPACE's apps get incidents.
REPO_NAMESPACES = ("bench", "shop", "payments", "search", "identity", "data", "edge", "ops")
ALERTNAME = "BenchErrorRate"
PEOPLE = (
    "Ada Lovelace <ada@example.org>",
    "Grace Hopper <grace@example.org>",
    "Linus Pauling <linus@example.org>",
    "Flux Bot <flux@example.org>",
)
POLL_INTERVAL = 0.005  # seconds between two reads of the remote's branch head
INCIDENT_TIMEOUT = 180.0
VERIFY_TIMEOUT = 60.0
PROFILE_RUNS = 3


# --- small helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    metric: str
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def p50(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.values, 95)

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": "s",
            "p50": self.p50,
            "p95": self.p95,
            "n": self.n,
            "mean": statistics.fmean(self.values) if self.values else None,
            "min": min(self.values, default=None),
            "max": max(self.values, default=None),
            "values": list(self.values),
        }


def bare_git(bare: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", f"--git-dir={bare}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"},
    )
    return result.stdout


def branch_head(bare: Path, branch: str = "main") -> str:
    """The remote's branch head read from disk, without starting a process (cheap to poll)."""
    with contextlib.suppress(FileNotFoundError):
        return (bare / "refs" / "heads" / branch).read_text().strip()
    with contextlib.suppress(FileNotFoundError):
        for line in (bare / "packed-refs").read_text().splitlines():
            sha, _, ref = line.partition(" ")
            if ref == f"refs/heads/{branch}":
                return sha
    return ""


def rescue_commits(bare: Path, old: str, new: str) -> dict[str, str]:
    """Commits in old..new on the remote that carry a ``Rescue:`` trailer: {trailer: sha}."""
    out = bare_git(
        bare,
        "log",
        "--format=%H%x1f%(trailers:key=Rescue,valueonly,separator=%x2C)%x1e",
        f"{old}..{new}",
    )
    found: dict[str, str] = {}
    for record in out.split("\x1e"):
        sha, sep, value = record.strip().partition("\x1f")
        if sep and value.strip():
            found[value.strip()] = sha
    return found


# --- the GitOps repository -------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return f"apps/{self.namespace}/{self.name}"

    @property
    def manifest(self) -> str:
        return f"{self.path}/deployment.yaml"

    def image(self, version: str) -> str:
        return f"registry.example/{self.namespace}/{self.name}:{version}"


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def _person(who: str, stamp: int) -> bytes:
    return f"{who} {stamp} +0000".encode()


def history_stream(
    apps: Sequence[App], *, commits: int, rng: random.Random, now: datetime
) -> Iterator[bytes]:
    """A ``git fast-import`` stream: one import of every app, then commits touching random
    apps, committer times spread over the 30 days before ``now`` and ending over an hour ago."""
    start = (now - timedelta(days=30)).timestamp()
    end = (now - timedelta(hours=1, minutes=5)).timestamp()
    stamps = sorted(int(rng.uniform(start, end)) for _ in range(max(commits - 1, 0)))
    versions = dict.fromkeys(apps, 0)

    def file_command(app: App) -> bytes:
        text = deployment(
            name=app.name,
            namespace=app.namespace,
            image=app.image(f"1.{versions[app]}.0"),
            replicas=rng.choice((2, 3, 4)),
        )
        return f"M 100644 inline {app.manifest}\n".encode() + _data(text.encode())

    who = PEOPLE[0]
    yield b"commit refs/heads/main\n"
    yield b"author " + _person(who, int(start) - 3600) + b"\n"
    yield b"committer " + _person(who, int(start) - 3600) + b"\n"
    yield _data(f"Import {len(apps)} apps into GitOps".encode())
    for app in apps:
        yield file_command(app)
    yield b"\n"
    for stamp in stamps:
        touched = rng.sample(list(apps), k=min(rng.choice((1, 1, 1, 2, 3)), len(apps)))
        for app in touched:
            versions[app] += 1
        subject = ", ".join(f"{a.name} 1.{versions[a]}.0" for a in touched)
        who = rng.choice(PEOPLE)
        yield b"commit refs/heads/main\n"
        yield b"author " + _person(who, stamp) + b"\n"
        yield b"committer " + _person(who, stamp) + b"\n"
        yield _data(f"Deploy {subject}".encode())
        for app in touched:
            yield file_command(app)
        yield b"\n"
    yield b"done\n"


def build_history(work: WorkClone, apps: Sequence[App], *, commits: int, seed: int) -> None:
    """Fill the (empty) work clone with the history in one fast-import, and check it out."""
    rng = random.Random(seed)
    stream = b"".join(history_stream(apps, commits=commits, rng=rng, now=datetime.now(UTC)))
    subprocess.run(
        ["git", "-C", str(work.path), "fast-import", "--quiet", "--done"],
        input=stream,
        env=work.env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    work.git("reset", "--quiet", "--hard", "main")


# --- the stack -------------------------------------------------------------------------------


def bench_policy(url: str, token: str) -> str:
    """The Secret and the one RescuePolicy, with gates that never hold: no firing time, no
    cooldown, budgets far above what the benchmark uses."""
    return policy_manifest(
        namespace=NAMESPACE,
        name="bench",
        team="bench",
        url=url,
        token=token,
        gates="{minFiringSeconds: 0, cooldownSeconds: 0, maxPerDay: 1000, maxConcurrent: 1000}",
    )


def _zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notification(
    app: App, *, group_key: str, fingerprint: str, starts: datetime, resolved: bool = False
) -> dict[str, Any]:
    """A version 4 notification as Alertmanager sends it for one alert of one group."""
    labels = {
        "alertname": ALERTNAME,
        "namespace": app.namespace,
        "deployment": app.name,
        "severity": "critical",
        "team": "bench",
    }
    annotations = {"summary": f"{app.name} is failing 12% of requests"}
    status = "resolved" if resolved else "firing"
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _zulu(starts),
        "endsAt": _zulu(datetime.now(UTC)) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rescue",
        "groupLabels": {k: labels[k] for k in ("alertname", "namespace", "deployment")},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.bench.invalid:9093",
        "alerts": [alert],
    }


@dataclass
class Incident:
    app: str
    rescue: str = ""
    commit: str = ""
    posted_at: float = 0.0  # wall clock (time.time) when the POST was sent
    alert_to_commit: float = 0.0  # seconds, POST sent -> commit seen on the remote
    webhook_response: float = 0.0  # seconds, POST sent -> HTTP answer
    verified_after: float | None = None  # seconds after the commit: resolved alert -> Verified
    log: dict[str, float] = field(default_factory=dict)  # log-derived splits (seconds)


@dataclass
class Plain:
    app: str
    commit_push: float  # seconds, git commit + git push
    commit: float
    push: float
    checkout: float  # untimed in the figure: git checkout <parent> -- <folder>


class Bench:
    """The running stack and the GitOps repository; every step the benchmark takes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.nonce = secrets.token_hex(4)
        self.processes: list[stack.Process] = []
        self.server: GitServer | None = None
        self.plane: controlplane.ControlPlane | None = None
        self.http: httpx.Client | None = None
        self.api: Any = None
        self.git_token = secrets.token_hex(16)
        self.webhook_token = secrets.token_hex(16)
        self.bare = Path()
        self.url = ""
        self.work: WorkClone | None = None
        self.webhook: stack.Process | None = None
        self.operator: stack.Process | None = None
        self.setup: dict[str, float] = {}

    # Life cycle

    def start(self, *, commits: int, files: int, seed: int) -> list[App]:
        started = time.perf_counter()
        say("Starting a local control plane (etcd + kube-apiserver)")
        self.plane = controlplane.up(self.folder / "control-plane", build=True)
        cluster = self.plane.cluster
        stack.install_crds(cluster)
        for namespace in (NAMESPACE, "rescue-system"):
            stack.ensure_namespace(cluster, namespace)
        self.api = kube.load_client(str(cluster.kubeconfig))
        self.setup["control_plane_s"] = time.perf_counter() - started

        say(f"Building the GitOps repository: {commits} commits, {files} files (git fast-import)")
        self.server = GitServer(self.folder / "remotes", token=self.git_token).start()
        self.bare = self.server.create_repo("gitops")
        self.url = self.server.repo_url("gitops")
        self.work = WorkClone(self.url, token=self.git_token, path=self.folder / "work")
        apps = [App(REPO_NAMESPACES[i % len(REPO_NAMESPACES)], f"app-{i}") for i in range(files)]
        moment = time.perf_counter()
        build_history(self.work, apps, commits=commits, seed=seed)
        self.setup["history_build_s"] = time.perf_counter() - moment
        moment = time.perf_counter()
        self.work.push()
        self.work.git("fetch", "--quiet", "origin", "main")  # origin/main for later pulls
        self.setup["initial_push_s"] = time.perf_counter() - moment
        count = int(bare_git(self.bare, "rev-list", "--count", "main"))
        tracked = len(bare_git(self.bare, "ls-tree", "-r", "--name-only", "main").splitlines())
        self.setup["remote_commits"] = count
        self.setup["remote_files"] = tracked
        say(
            f"Remote holds {count} commits and {tracked} files "
            f"(built in {self.setup['history_build_s']:.1f} s, "
            f"pushed in {self.setup['initial_push_s']:.1f} s)"
        )

        stack.kubectl_apply(cluster, bench_policy(self.url, self.git_token))
        say("Starting the webhook and the operator")
        self.webhook = stack.start_webhook(cluster, folder=self.folder, token=self.webhook_token)
        self.processes.append(self.webhook)
        self.operator = stack.start_operator(
            cluster,
            folder=self.folder,
            extra_args=("--git-cache", str(self.folder / "git-cache")),
        )
        self.processes.append(self.operator)
        self.http = httpx.Client(
            base_url=self.webhook.url,
            timeout=30,
            headers={"Authorization": f"Bearer {self.webhook_token}"},
        )
        self.http.get("/healthz").raise_for_status()  # the connection is open, as Alertmanager's
        self.setup["total_s"] = time.perf_counter() - started
        return apps

    def stop(self) -> None:
        if self.http is not None:
            with contextlib.suppress(Exception):
                self.http.close()
        stop_processes(self.processes)
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
        with contextlib.suppress(Exception):
            controlplane.down(self.folder / "control-plane")

    # One bad deploy

    def bad_deploy(self, app: App) -> str:
        """Push a commit, timed ten minutes ago, that changes the app's image; returns it."""
        work = self._work()
        work.pull()
        text = deployment(name=app.name, namespace=app.namespace, image=app.image("2.0.0-rc1"))
        work.write(app.manifest, text)
        sha = work.commit(
            f"Deploy {app.name} 2.0.0-rc1 (new request pipeline)",
            when=datetime.now(UTC) - timedelta(minutes=10),
        )
        work.push()
        return sha

    # The product

    def incident(self, app: App, index: int) -> Incident:
        http = self._http()
        self.bad_deploy(app)
        before = branch_head(self.bare)
        group_key = f'{{}}/{{team="bench"}}:{{alertname="{ALERTNAME}", deployment="{app.name}"}}'
        group_key += f" bench={self.nonce}-{index}"
        fingerprint = secrets.token_hex(8)
        starts = datetime.now(UTC)
        payload = notification(app, group_key=group_key, fingerprint=fingerprint, starts=starts)
        result = Incident(app=app.path)

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            result.posted_at = time.time()
            sent = time.perf_counter()
            answer = pool.submit(self._post, http, payload)
            seen = self._wait_commit(before, answer, sent, result)
            response, answered = answer.result()
        result.alert_to_commit = seen - sent
        result.webhook_response = answered - sent
        if response.status_code != 200:
            raise stack.StackError(f"the webhook answered {response.status_code}: {response.text}")

        # Let the incident end the way it would: the alert resolves, the rescue is verified.
        resolved = notification(
            app, group_key=group_key, fingerprint=fingerprint, starts=starts, resolved=True
        )
        http.post("/api/v1/alerts", json=resolved).raise_for_status()
        result.verified_after = self._wait_verified(result.rescue, seen)
        return result

    @staticmethod
    def _post(http: httpx.Client, payload: Mapping[str, Any]) -> tuple[httpx.Response, float]:
        response = http.post("/api/v1/alerts", json=payload)
        return response, time.perf_counter()

    def _wait_commit(
        self,
        before: str,
        answer: concurrent.futures.Future[tuple[httpx.Response, float]],
        sent: float,
        result: Incident,
    ) -> float:
        """Poll the remote's main until the rescue's commit is on it; returns when it was seen."""
        old = before
        deadline = sent + INCIDENT_TIMEOUT
        while True:
            head = branch_head(self.bare)
            now = time.perf_counter()
            if head and head != old:
                response, _ = answer.result(timeout=60)
                if response.status_code != 200:
                    return now
                rescue = str(response.json().get("rescue", ""))
                found = rescue_commits(self.bare, old, head)
                if rescue in found:
                    result.rescue, result.commit = rescue, found[rescue]
                    return now
                old = head  # someone else's commit; keep waiting for ours
            if answer.done():
                response, _ = answer.result()
                if response.status_code != 200:
                    return now
            if now > deadline:
                raise stack.StackError(
                    f"no rescue commit on the remote within {INCIDENT_TIMEOUT:.0f} s; "
                    f"operator log:\n{self._operator().tail(30)}"
                )
            time.sleep(POLL_INTERVAL)

    def _wait_verified(self, ref: str, seen: float) -> float | None:
        namespace, _, name = ref.partition("/")
        rescues = kube.Rescues(self.api)
        deadline = time.monotonic() + VERIFY_TIMEOUT
        while time.monotonic() < deadline:
            status = rescues.get(namespace, name).get("status") or {}
            if (status.get("mitigation") or {}).get("state") == mitigation.VERIFIED:
                return time.perf_counter() - seen
            time.sleep(0.1)
        say(f"warning: {ref} was not verified within {VERIFY_TIMEOUT:.0f} s of its alert resolving")
        return None

    # The baseline

    def plain(self, app: App) -> Plain:
        """The same rollback by hand: restore the folder from the bad deploy's parent, commit,
        push; only the commit and the push are timed, from an up-to-date clone."""
        work = self._work()
        bad = self.bad_deploy(app)
        moment = time.perf_counter()
        work.git("checkout", f"{bad}^", "--", app.path)
        checkout = time.perf_counter() - moment
        message = f"Roll back {app.namespace}/{app.name} to {bad[:12]}^\n\nIt broke checkout."
        moment = time.perf_counter()
        work.git("commit", "--quiet", "-m", message)
        committed = time.perf_counter()
        work.push()
        pushed = time.perf_counter()
        if branch_head(self.bare) != work.git("rev-parse", "HEAD").strip():
            raise stack.StackError("the plain push did not reach the remote")
        return Plain(
            app=app.path,
            commit_push=pushed - moment,
            commit=committed - moment,
            push=pushed - committed,
            checkout=checkout,
        )

    # Where the product's time goes

    def profile(self, apps: Sequence[App]) -> dict[str, Any]:
        """Run the Mitigate step's own code (``mitigation.advance``) in this process, once per
        app on a fresh bad deploy, with every git process it starts timed. The operator runs
        the same function in a worker thread for each new rescue; this shows where it spends."""
        assert self.plane is not None
        api = kube.load_client(str(self.plane.kubeconfig))
        env = TimedEnvironment(api_client=api, cache_root=self.folder / "profile-cache")
        policy = Policy.parse(NAMESPACE, "bench", _policy_spec(self.url))
        env.repository(policy).fetch()  # a warm cache, as the operator's is after its first
        runs: list[ProfileRun] = []
        for number, app in enumerate(apps):
            self.bad_deploy(app)
            env.calls.clear()
            env.secret_reads.clear()
            view = mitigation.RescueView(
                namespace=NAMESPACE,
                name=f"profile-{self.nonce}-{number}",
                severity=Severity.SEV1,
                target=Target(kind="Deployment", namespace=app.namespace, name=app.name),
                incident_start=datetime.now(UTC),
                alertname=ALERTNAME,
                fingerprint=secrets.token_hex(8),
                firing=1,
                mitigation={},
            )
            facts = mitigation.Facts(now=datetime.now(UTC))
            began = time.perf_counter()
            outcome = mitigation.advance(view, policy, facts, env)
            runs.append(
                ProfileRun(
                    app=app.path,
                    state=str(outcome.mitigation.get("state")),
                    advance_s=time.perf_counter() - began,
                    push_done_s=next(
                        (c.end - began for c in env.calls if c.label == "push"), float("nan")
                    ),
                    secret_read_s=sum(env.secret_reads),
                    calls=[
                        {"git": c.label, "start_s": c.start - began, "seconds": c.seconds}
                        for c in env.calls
                    ],
                )
            )
        return {"median": profile_medians(runs), "runs": [asdict(run) for run in runs]}

    # Helpers

    def _work(self) -> WorkClone:
        assert self.work is not None
        return self.work

    def _http(self) -> httpx.Client:
        assert self.http is not None
        return self.http

    def _operator(self) -> stack.Process:
        assert self.operator is not None
        return self.operator


def _policy_spec(url: str) -> dict[str, Any]:
    """The policy's spec as the operator reads it (the same as policy_manifest's)."""
    return {
        "selector": {"matchLabels": {"team": "bench"}},
        "target": {"kind": "Deployment", "namespaceLabel": "namespace", "nameLabel": "deployment"},
        "repository": {
            "url": url,
            "branch": "main",
            "path": "apps/{namespace}/{name}",
            "secretRef": {"name": "gitops-credentials"},
        },
        "mitigation": {
            "strategy": "rollback",
            "modes": {"SEV1": "commit", "SEV2": "commit", "SEV3": "propose", "SEV4": "none"},
        },
        "gates": {
            "minFiringSeconds": 0,
            "cooldownSeconds": 0,
            "maxPerDay": 1000,
            "maxConcurrent": 1000,
        },
    }


@dataclass(frozen=True)
class GitCall:
    label: str
    start: float  # time.perf_counter()
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def call_label(args: Sequence[str]) -> str:
    """A git call's subcommand; for ``log`` also its limit and whether it follows a path."""
    if args[0] != "log":
        return args[0]
    limit = next((a.partition("=")[2] for a in args if a.startswith("--max-count=")), "?")
    return f"log -n {limit}" + (" -- <path>" if "--" in args else "")


@dataclass
class ProfileRun:
    """One in-process run of the Mitigate step: totals, and each git call in order."""

    app: str
    state: str
    advance_s: float
    push_done_s: float  # when the push to the remote returned, after advance began
    secret_read_s: float
    calls: list[dict[str, Any]]  # {"git": label, "start_s": ..., "seconds": ...}

    def by_label(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = defaultdict(list)
        for call in self.calls:
            found[str(call["git"])].append(float(call["seconds"]))
        return found


def profile_medians(runs: Sequence[ProfileRun]) -> dict[str, Any]:
    """Medians over the runs: totals, and the time of each kind of git call."""
    per_run = [run.by_label() for run in runs]
    labels = sorted({label for found in per_run for label in found})
    seconds = {
        label: statistics.median(sum(found.get(label, [])) for found in per_run) for label in labels
    }
    by_call = [
        {
            "git": label,
            "calls": max(len(found.get(label, [])) for found in per_run),
            "seconds": seconds[label],
        }
        for label in sorted(labels, key=lambda label: -seconds[label])
    ]
    return {
        "advance_s": statistics.median(r.advance_s for r in runs),
        "push_done_s": statistics.median(r.push_done_s for r in runs),
        "secret_read_s": statistics.median(r.secret_read_s for r in runs),
        "git_processes": statistics.median(len(r.calls) for r in runs),
        "git_s": statistics.median(sum(float(c["seconds"]) for c in r.calls) for r in runs),
        "by_call": by_call,
    }


class TimedRepository(git.Repository):
    """The product's Repository, recording each git process it starts."""

    calls: list[GitCall]

    def _git(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        remote: bool = False,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        moment = time.perf_counter()
        try:
            return super()._git(*args, input=input, env=env, remote=remote, check=check)
        finally:
            self.calls.append(GitCall(call_label(args), moment, time.perf_counter()))


@dataclass
class TimedEnvironment(ClusterEnvironment):
    """The operator's own environment (the Secret is read from the API server for real), but
    handing out a TimedRepository; everything else is inherited unchanged."""

    calls: list[GitCall] = field(default_factory=list)
    secret_reads: list[float] = field(default_factory=list)

    def repository(self, policy: Policy) -> git.Repository:
        moment = time.perf_counter()
        plain = super().repository(policy)
        self.secret_reads.append(time.perf_counter() - moment)
        repo = TimedRepository(
            plain.url,
            plain.branch,
            cache_root=self.cache_root,
            credentials=plain.credentials,
            identity=plain.identity,
        )
        repo.calls = self.calls
        return repo


# --- logs ------------------------------------------------------------------------------------

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


def log_times(log: Path) -> list[tuple[float, str]]:
    """(epoch seconds, message) of each line of a rescue process's log (local-time stamps)."""
    found = []
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            match = _LOG_LINE.match(line)
            if match:
                stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append((stamp, match.group(2)))
    return found


def attach_log_splits(incidents: Sequence[Incident], webhook_log: Path, operator_log: Path) -> None:
    """From the processes' own log lines: when the webhook recorded the rescue, and when the
    operator finished the reconcile that pushed (it logs its events after the push)."""
    webhook = log_times(webhook_log)
    operator = log_times(operator_log)
    for incident in incidents:
        recorded = next(
            (t for t, m in webhook if m.startswith(f"Rescue {incident.rescue} recorded")), None
        )
        pushed = next(
            (
                t
                for t, m in operator
                if m.startswith(f"Rescue {incident.rescue}:") and "was pushed as" in m
            ),
            None,
        )
        if recorded is not None:
            incident.log["post_to_recorded"] = recorded - incident.posted_at
        if recorded is not None and pushed is not None:
            incident.log["recorded_to_operator_pushed"] = pushed - recorded
        if pushed is not None:
            incident.log["post_to_operator_pushed"] = pushed - incident.posted_at


# --- output ----------------------------------------------------------------------------------


def table(rows: Sequence[Summary]) -> str:
    width = max(len(r.metric) for r in rows)
    lines = [f"{'metric':<{width}}  {'p50':>9}  {'p95':>9}  {'n':>3}"]
    lines.append("-" * len(lines[0]))
    for row in rows:
        lines.append(f"{row.metric:<{width}}  {row.p50:>8.3f}s  {row.p95:>8.3f}s  {row.n:>3}")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/alert_to_rollback.py",
        description="Time alert -> rollback commit on the remote, against a plain git push.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 incidents instead of 20 (a smoke run)"
    )
    parser.add_argument("--incidents", type=int, help="timed incidents (default 20; --quick 5)")
    parser.add_argument("--commits", type=int, default=10000, help="commits in the repository")
    parser.add_argument("--files", type=int, default=2000, help="manifests in the repository")
    parser.add_argument("--seed", type=int, default=1, help="seed of the repository's history")
    parser.add_argument("--dir", type=Path, help="keep the run's files (logs) in DIR")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the in-process Mitigate step profile"
    )
    args = parser.parse_args(argv)
    if args.incidents is None:
        args.incidents = 5 if args.quick else 20
    if args.incidents < 1 or args.commits < 1 or args.files < 1:
        parser.error("--incidents, --commits and --files must be at least 1")
    # product + plain per incident and for the warm-up, then the profile's runs
    needed = 2 * (args.incidents + 1) + PROFILE_RUNS
    available = len(range(0, args.files, len(REPO_NAMESPACES)))
    if available < needed:
        parser.error(
            f"--files {args.files} gives {available} apps in namespace {NAMESPACE}, fewer than "
            f"the {needed} distinct targets {args.incidents} incidents need"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    catch_signals()
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    with run_folder(args.dir) as folder:
        bench = Bench(folder)
        try:
            return run(bench, args, started_at, stamp)
        except KeyboardInterrupt:
            say("Interrupted; stopping everything the benchmark started")
            return 130
        except (
            stack.StackError,
            controlplane.ControlPlaneError,
            kube.KubeError,
            httpx.HTTPError,
            subprocess.CalledProcessError,
            RuntimeError,
        ) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            with uninterrupted():
                bench.stop()


def run(bench: Bench, args: argparse.Namespace, started_at: datetime, stamp: str) -> int:
    load_before = load_average()
    apps = bench.start(commits=args.commits, files=args.files, seed=args.seed)
    rng = random.Random(args.seed + 2)
    candidates = [app for app in apps if app.namespace == NAMESPACE]
    chosen = rng.sample(candidates, 2 * (args.incidents + 1) + PROFILE_RUNS)
    targets = iter(chosen)

    say("Warm-up (not counted): one incident and one plain rollback; the operator clones")
    warm = bench.incident(next(targets), 0)
    warm_plain = bench.plain(next(targets))
    say(
        f"  first incident {warm.alert_to_commit:.3f} s (cold git cache), "
        f"plain {warm_plain.commit_push:.3f} s"
    )

    incidents: list[Incident] = []
    plains: list[Plain] = []
    for index in range(1, args.incidents + 1):
        incident = bench.incident(next(targets), index)
        plain = bench.plain(next(targets))
        incidents.append(incident)
        plains.append(plain)
        say(
            f"[{index:>2}/{args.incidents}] {incident.app}: alert -> commit "
            f"{incident.alert_to_commit:.3f} s (webhook answered in "
            f"{incident.webhook_response * 1000:.0f} ms); plain commit + push "
            f"{plain.commit_push:.3f} s"
        )

    profile: dict[str, Any] | None = None
    if not args.no_profile:
        say(f"Profiling the Mitigate step in this process ({PROFILE_RUNS} runs, git timed)")
        profile = bench.profile([next(targets) for _ in range(PROFILE_RUNS)])

    assert bench.webhook is not None and bench.operator is not None
    attach_log_splits([warm, *incidents], bench.webhook.log, bench.operator.log)

    product = Summary(
        "alert -> rollback commit on remote (product)",
        tuple(i.alert_to_commit for i in incidents),
    )
    baseline = Summary("plain git commit + push (baseline)", tuple(p.commit_push for p in plains))
    rows = [
        product,
        baseline,
        Summary("  webhook HTTP answer", tuple(i.webhook_response for i in incidents)),
    ]
    for key, label in (
        ("post_to_recorded", "  POST -> rescue recorded (webhook log)"),
        ("recorded_to_operator_pushed", "  recorded -> operator logs the push"),
    ):
        values = tuple(i.log[key] for i in incidents if key in i.log)
        if values:
            rows.append(Summary(label, values))
    rows += [
        Summary("  plain: git commit", tuple(p.commit for p in plains)),
        Summary("  plain: git push", tuple(p.push for p in plains)),
    ]
    ratio = product.p50 / baseline.p50 if baseline.p50 else float("nan")

    print()
    print(table(rows))
    print(f"\nratio product_p50 / plain_p50 = {ratio:.1f}")
    print(f"first incident (cold operator git cache, not counted): {warm.alert_to_commit:.3f} s")
    if profile is not None:
        med = profile["median"]
        print(
            f"\nMitigate step in-process (median of {PROFILE_RUNS}): {med['advance_s']:.3f} s, "
            f"push done at {med['push_done_s']:.3f} s; {med['git_processes']:.0f} git processes "
            f"({med['git_s']:.3f} s), Secret read {med['secret_read_s']:.3f} s"
        )
        for row in med["by_call"][:8]:
            print(f"  git {row['git']:<24} {row['calls']:>4} calls  {row['seconds']:>7.3f} s")

    finished_at = datetime.now(UTC)
    document = {
        "benchmark": "alert_to_rollback",
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "config": {
            "incidents": args.incidents,
            "quick": args.quick,
            "commits": args.commits,
            "files": args.files,
            "seed": args.seed,
            "repo_namespaces": list(REPO_NAMESPACES),
            "incident_namespace": NAMESPACE,
            "statistic": "p50 is the median; p95 interpolates linearly between ranks",
        },
        "machine": {
            **machine(bench.plane),
            "loadavg_before": load_before,
            "commits": args.commits,
            "files": args.files,
        },
        "project": project_revision(),
        "setup": bench.setup,
        "metrics": {
            "product": product.as_json(),
            "plain": baseline.as_json(),
            "ratio_p50": ratio,
            "breakdown": [row.as_json() for row in rows[2:]],
        },
        "warmup": {"incident": asdict(warm), "plain": asdict(warm_plain)},
        "incidents": [asdict(i) for i in incidents],
        "plain": [asdict(p) for p in plains],
        "profile": profile,
    }
    path = write_json(document, "alert_to_rollback", stamp)
    print(f"\nResults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
