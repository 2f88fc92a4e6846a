"""The ``rescue`` command: every process and every verb of the product behind one program.

Installed as ``kubectl-rescue`` the same program is a kubectl plugin (``kubectl rescue shelve
NAME --reason ...``), so it takes ``-n/--namespace``, ``--kubeconfig`` and ``--context`` the way
kubectl does. Errors end in one line on stderr saying what is wrong, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from rescue import __version__, controlplane, logs
from rescue.core import kube, measures, report, report_page
from rescue.core.incident import format_time, parse_time
from rescue.core.model import DEFAULT_SEVERITY_MAP, GROUP, VERSION, Severity, TargetLabels
from rescue.core.review import render as render_review

logger = logging.getLogger("rescue")


class UsageError(Exception):
    """A command-line value that cannot work; the message says which and why."""


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    logs.setup(verbose=verbose, json_format=log_format == "json")
    # The kubernetes client logs every request at debug; keep it quiet unless asked.
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # One line per HTTP request (the forge, Prometheus in the demo) is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _kube_flags(parser: argparse.ArgumentParser, *, namespaced: bool = True) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context to use")
    if namespaced:
        parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")


def parse_severity_map(text: str) -> dict[str, Severity]:
    """``critical=SEV1,warning=SEV3`` on top of the default mapping."""
    mapping = dict(DEFAULT_SEVERITY_MAP)
    for item in filter(None, (part.strip() for part in text.split(","))):
        value, sep, severity = item.partition("=")
        if not sep or severity.strip().upper() not in Severity.__members__:
            raise UsageError(f"--severity-map: {item!r} is not label-value=SEV1..SEV4")
        mapping[value.strip().lower()] = Severity(severity.strip().upper())
    return mapping


def _verb(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    _kube_flags(parser)
    parser.add_argument("name")
    parser.add_argument(
        "--wait", type=float, default=15.0, help="seconds to wait for the operator's answer"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rescue", description="Incident response for Kubernetes, the GitOps way."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=os.environ.get("RESCUE_LOG_FORMAT", "text"),
        help="a sentence per line, or one JSON object per line (default: $RESCUE_LOG_FORMAT "
        "or text); either way every line about a rescue names it",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("version", help="print the version and the API version it speaks")

    doctor = sub.add_parser(
        "doctor",
        help="check the cluster connection, the CRDs and every policy's repository access",
    )
    _kube_flags(doctor)
    doctor.add_argument("-A", "--all-namespaces", action="store_true")

    cluster = sub.add_parser("cluster", help="a local control plane (etcd + kube-apiserver)")
    cluster_sub = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = cluster_sub.add_parser("up", help="start it and write DIR/kubeconfig")
    up.add_argument("--dir", required=True, type=Path)
    up.add_argument("--no-build", action="store_true", help="fail instead of building binaries")
    down = cluster_sub.add_parser("down", help="stop it and remove its data")
    down.add_argument("--dir", required=True, type=Path)

    webhook = sub.add_parser("webhook", help="serve the Alertmanager webhook")
    webhook.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server listens
    webhook.add_argument("--port", type=int, default=8080)
    webhook.add_argument("--token-file", help="file holding the bearer token callers present")
    webhook.add_argument("--basic-auth-file", help="file holding one line user:password")
    webhook.add_argument("--insecure", action="store_true", help="accept unauthenticated calls")
    webhook.add_argument(
        "--auth",
        choices=["static", "kubernetes"],
        default="static",
        help="static: only the token or basic-auth files; kubernetes: also bearer tokens the "
        "API server vouches for (TokenReview) whose user may create /api/v1/alerts",
    )
    webhook.add_argument(
        "--token-audience", help="with --auth kubernetes, accept only tokens issued for it"
    )
    webhook.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    webhook.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    webhook.add_argument(
        "--client-ca", help="require client certificates signed by a CA in this PEM file (mTLS)"
    )
    webhook.add_argument("--kubeconfig")
    webhook.add_argument(
        "--default-namespace",
        default="rescue-system",
        help="namespace for rescues whose alert names no (existing) namespace",
    )
    webhook.add_argument("--severity-label", default="severity")
    webhook.add_argument(
        "--severity-map", default="", help="extra label-value=SEVn pairs, comma separated"
    )
    webhook.add_argument(
        "--target-name-labels",
        default=",".join(TargetLabels().name_labels),
        help="alert labels that name the target workload, first present wins",
    )
    webhook.add_argument(
        "--target-namespace-labels", default=",".join(TargetLabels().namespace_labels)
    )
    webhook.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    webhook.add_argument(
        "--blast-radius",
        type=int,
        default=3,
        help="distinct workloads firing in one incident that raise its severity a level (0: off)",
    )
    webhook.add_argument(
        "--print-openapi",
        action="store_true",
        help="print the webhook's OpenAPI schema as JSON and exit (docs/openapi.json)",
    )

    operator = sub.add_parser("operator", help="run the operator")
    operator.add_argument("--kubeconfig")
    operator.add_argument(
        "--namespace", action="append", default=[], help="watch only these (repeatable)"
    )
    operator.add_argument("--liveness-port", type=int, default=8081)
    operator.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="serve Prometheus metrics on this port at /metrics (0: off)",
    )
    operator.add_argument(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104 - a server listens
        help="address the metrics endpoint listens on",
    )
    operator.add_argument(
        "--metrics-namespace-label",
        action="store_true",
        help=(
            "label the duration histograms with the target's namespace too (more series; a "
            "namespace's series starts with its first observation, which increase() misses)"
        ),
    )
    operator.add_argument(
        "--peering",
        help="name of the ClusterKopfPeering (KopfPeering with --namespace) through which "
        "replicas agree that one acts and the others stand by",
    )
    operator.add_argument(
        "--priority",
        type=int,
        help="this replica's peering priority; the highest live one acts (default: random)",
    )
    operator.add_argument(
        "--peering-lifetime",
        type=int,
        default=15,
        help="seconds after which a silent replica is presumed dead and another takes over",
    )
    operator.add_argument(
        "--git-cache",
        type=Path,
        help="folder for cached clones of GitOps repositories (default ~/.cache/rescue/git)",
    )

    demo = sub.add_parser("demo", help="the whole loop on a local control plane")
    demo.add_argument("--dir", type=Path, help="keep the run's files here")
    demo.add_argument("--keep", action="store_true", help="keep running until Ctrl-C")

    listing = sub.add_parser("list", help="list rescues")
    _kube_flags(listing)
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")

    show = sub.add_parser("show", help="one rescue with its timeline")
    _kube_flags(show)
    show.add_argument("name")
    show.add_argument("-o", "--output", choices=["text", "json"], default="text")

    review = sub.add_parser("review", help="print the post-incident review made from the record")
    _kube_flags(review)
    review.add_argument("name")
    review.add_argument("--lessons", help="record the lessons learned")
    review.add_argument("--action-item", action="append", default=[], dest="action_items")

    timeline = sub.add_parser("timeline", help="one rescue's timeline")
    _kube_flags(timeline)
    timeline.add_argument("name")
    timeline.add_argument("-o", "--output", choices=["text", "json"], default="text")

    reporter = sub.add_parser(
        "report",
        help="how fast incidents were handled: MTTR and the other step durations",
        description="Durations run from the incident's start to the end of each step "
        "(detect, triage, mitigate, resolve = MTTR, conclude), for the rescues whose "
        "incident started in the window. JSON keys: namespace, since, until, severities[] "
        "(severity, incidents, opened, still_open, concluded, recovered, mttr_mean_seconds, "
        "mttr_median_seconds, mttr_p90_seconds, time_to_mitigate_mean_seconds, "
        "time_to_detect_mean_seconds), rescues[] (namespace, name, severity, phase, target, "
        "started, seconds.{detect,triage,mitigate,resolve,conclude}), undated; a duration "
        "no rescue reached is null.",
    )
    _kube_flags(reporter)
    reporter.add_argument("-A", "--all-namespaces", action="store_true")
    reporter.add_argument(
        "--since",
        default="30d",
        help="the window: incidents that started this long ago or later (30d, 12h, 90m, 3600s)",
    )
    reporter.add_argument("-o", "--format", choices=["table", "json"], default="table")
    reporter.add_argument(
        "--severity",
        action="append",
        default=[],
        dest="severities",
        choices=[s.value for s in Severity],
        help="only this severity (repeatable)",
    )
    reporter.add_argument(
        "--html", type=Path, metavar="FILE", help="also write the report as an HTML page"
    )

    shelve = _verb(sub, "shelve", "shelve an Active rescue (waiting on someone else)")
    shelve.add_argument("--reason", required=True)
    _verb(sub, "resume", "resume a shelved rescue")
    conclude = _verb(sub, "conclude", "conclude an Active rescue")
    _verb(sub, "approve", "commit the mitigation a rescue proposes")
    triage = _verb(sub, "triage", "set the severity by hand, with the reason")
    triage.add_argument("--severity", required=True, choices=[s.value for s in Severity])
    triage.add_argument("--reason", required=True)
    diagnose = _verb(sub, "diagnose", "record the root cause")
    diagnose.add_argument("--root-cause", required=True)
    diagnose.add_argument(
        "--category",
        required=True,
        choices=["deployment", "capacity", "dependency", "data", "code"],
    )
    resolve = _verb(sub, "resolve", "record the permanent fix")
    resolve.add_argument("--fix", required=True)
    resolve.add_argument("--commit", help="the commit that carries the fix")
    reject = _verb(sub, "reject", "drop the mitigation a rescue proposes")
    reject.add_argument("--reason", required=True)
    conclude.add_argument("--summary", default="")
    conclude.add_argument("--route", choices=["design", "planning", "refactoring", "none"])
    conclude.add_argument("--action-item", action="append", default=[], dest="action_items")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.log_format)
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except (
        UsageError,
        kube.KubeError,
        controlplane.ControlPlaneError,
    ) as exc:
        print(f"rescue: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- process commands -------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    print(f"rescue {__version__} ({GROUP}/{VERSION}, Python {platform.python_version()})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from rescue import doctor

    _, namespace, api_client = _client(args)
    findings = doctor.run(api_client, namespace=None if args.all_namespaces else namespace)
    for finding in findings:
        print(finding.line())
    failed = sum(1 for f in findings if not f.ok)
    if failed:
        print(f"rescue doctor: {failed} problem(s) found", file=sys.stderr)
    return 1 if failed else 0


def cmd_cluster(args: argparse.Namespace) -> int:
    if args.action == "up":
        plane = controlplane.up(args.dir, build=not args.no_build)
        print(f"control plane up at {plane.server}; export KUBECONFIG={plane.kubeconfig}")
    else:
        controlplane.down(args.dir)
        print(f"control plane in {args.dir} stopped")
    return 0


def webhook_openapi() -> dict[str, Any]:
    """The webhook's OpenAPI schema, as FastAPI derives it from the routes.

    The schema does not depend on credentials or on the cluster, so the application is built
    with stand-ins for both and never serves.
    """
    from rescue.webhook.app import create_app
    from rescue.webhook.auth import Credentials

    # No API client is configured: the kubernetes client makes an idle default one, never used.
    rescues = kube.Rescues(cast(Any, None))
    app = create_app(rescues=rescues, ping=lambda: None, credentials=Credentials(insecure=True))
    return app.openapi()


def cmd_webhook(args: argparse.Namespace) -> int:
    from rescue.webhook import server
    from rescue.webhook.intake import IntakeConfig

    if args.print_openapi:
        print(json.dumps(webhook_openapi(), indent=2))
        return 0

    kubernetes_auth = args.auth == "kubernetes"
    if args.token_audience and not kubernetes_auth:
        raise UsageError("--token-audience only applies with --auth kubernetes")
    try:
        credentials = server.credentials_from(
            token_file=args.token_file,
            basic_auth_file=args.basic_auth_file,
            insecure=args.insecure,
            kubernetes=kubernetes_auth,
            client_certificates=bool(args.client_ca),
        )
        tls = server.tls_from(
            cert_file=args.tls_cert, key_file=args.tls_key, client_ca_file=args.client_ca
        )
    except server.WebhookConfigError as exc:
        raise UsageError(str(exc)) from exc
    names = tuple(filter(None, args.target_name_labels.split(",")))
    namespaces = tuple(filter(None, args.target_namespace_labels.split(",")))
    config = IntakeConfig(
        default_namespace=args.default_namespace,
        severity_label=args.severity_label,
        severity_map=parse_severity_map(args.severity_map),
        target_labels=TargetLabels(name_labels=names, namespace_labels=namespaces),
        blast_radius=args.blast_radius,
    )
    server.serve(
        host=args.host,
        port=args.port,
        credentials=credentials,
        kubeconfig=args.kubeconfig,
        config=config,
        max_body_bytes=args.max_body_bytes,
        kubernetes_auth=kubernetes_auth,
        token_audience=args.token_audience,
        tls=tls,
    )
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from rescue.operator import runner

    if not args.verbose:
        # kopf narrates every handler run at info; our own log lines say what matters.
        logging.getLogger("kopf").setLevel(logging.WARNING)
        # ... except which replica acts and which waits: a person needs that at once.
        logging.getLogger("kopf._core.engines.peering").setLevel(logging.INFO)
        # One line per liveness probe is noise.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    runner.run(
        kubeconfig=args.kubeconfig,
        namespaces=args.namespace,
        liveness_port=args.liveness_port or None,
        peering=args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        git_cache=args.git_cache,
        metrics_port=args.metrics_port or None,
        metrics_address=args.metrics_address,
        metrics_namespace_label=args.metrics_namespace_label,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rescue import demo

    return demo.run(folder=args.dir, keep=args.keep)


# --- verbs on rescues -------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> tuple[kube.Rescues, str, Any]:
    api_client = kube.load_client(args.kubeconfig, args.context)
    namespace = getattr(args, "namespace", None) or kube.current_namespace(
        args.kubeconfig, args.context
    )
    return kube.Rescues(api_client), namespace, api_client


def _age(stamp: str | None) -> str:
    if not stamp:
        return "-"
    seconds = int((datetime.now(UTC) - parse_time(stamp)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _row(item: dict[str, Any], *, with_namespace: bool) -> list[str]:
    spec, status = item.get("spec") or {}, item.get("status") or {}
    row = [
        item["metadata"]["name"],
        spec.get("severity", "-"),
        status.get("phase", "-"),
        status.get("step", "-"),
        status.get("target", "-"),
        (status.get("mitigation") or {}).get("shortCommit", "-"),
        _age(item["metadata"].get("creationTimestamp")),
    ]
    return [item["metadata"]["namespace"], *row] if with_namespace else row


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rescues, namespace, _ = _client(args)
    items = rescues.list(None if args.all_namespaces else namespace)
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No rescues in {where}.")
        return 0
    header = ["NAME", "SEVERITY", "PHASE", "STEP", "TARGET", "COMMIT", "AGE"]
    if args.all_namespaces:
        header.insert(0, "NAMESPACE")
    items.sort(key=lambda i: i["metadata"].get("creationTimestamp", ""))
    print(_table(header, [_row(i, with_namespace=args.all_namespaces) for i in items]))
    return 0


def render(item: dict[str, Any]) -> str:
    """A rescue for a person: what, how bad, where it stands, and what happened when."""
    meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    alerts = spec.get("alerts") or []
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    lines = [
        f"Rescue:     {meta['namespace']}/{meta['name']}",
        f"Title:      {spec.get('title', '-')}",
        f"Severity:   {spec.get('severity', '-')}",
        f"Phase:      {status.get('phase', '-')}   Step: {status.get('step', '-')}",
        f"Target:     {status.get('target', '-')}",
        f"Started:    {spec.get('incidentStart', '-')}",
        f"Alerts:     {len(alerts)} ({firing} firing)",
    ]
    commit = (status.get("mitigation") or {}).get("commit")
    if commit:
        lines.append(f"Commit:     {commit}")
    took = measures.durations(spec, status)
    if took:
        names = {"resolve": "recovered (MTTR)"}
        lines.append(
            "Times:      "
            + ", ".join(f"{names.get(step, step)} {report.human(took[step])}" for step in took)
            + " after the start"
        )
    if spec.get("paused"):
        lines.append(f"Shelved:    {spec.get('pauseReason', '')}")
    conditions = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    if conditions:
        lines.append("Conditions:")
        lines += [f"  {c['type']} ({c['reason']}): {c['message']}" for c in conditions]
    lines.append("Timeline:")
    lines += timeline_lines(status)
    return "\n".join(lines)


def timeline_lines(status: dict[str, Any]) -> list[str]:
    lines = []
    for entry in status.get("timeline") or []:
        who = f" [{entry['by']}]" if entry.get("by") else ""
        lines.append(f"  {entry['at']}  {entry['event']:<22} {entry.get('message', '')}{who}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    rescues, namespace, _ = _client(args)
    item = rescues.get(namespace, args.name)
    print(json.dumps(item, indent=2) if args.output == "json" else render(item))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    try:
        window = report.parse_window(args.since)
    except report.WindowError as exc:
        raise UsageError(f"--since: {exc}") from exc
    rescues, namespace, _ = _client(args)
    scope = None if args.all_namespaces else namespace
    found = report.build(
        rescues.list(scope), now=datetime.now(UTC), since=window, severities=args.severities
    )
    if args.html:
        try:
            args.html.write_text(report_page.render(found, namespace=scope), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--html: cannot write {args.html} ({exc.strerror})") from exc
        print(f"rescue report: wrote {args.html}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report.as_json(found, namespace=scope), indent=2))
    else:
        print(report.text(found, namespace=scope))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    rescues, namespace, api_client = _client(args)
    if args.lessons or args.action_items:
        current = rescues.get(namespace, args.name)
        review = dict((current.get("spec") or {}).get("review") or {})
        if args.lessons:
            review["lessons"] = args.lessons
        if args.action_items:
            review["actionItems"] = list(review.get("actionItems") or []) + args.action_items
        try:
            who = kube.whoami(api_client)
        except kube.KubeError:
            who = "unknown"
        review.update(by=who, at=format_time(datetime.now(UTC)))
        rescues.patch(namespace, args.name, {"spec": {"review": review}})
    print(render_review(rescues.get(namespace, args.name), now=datetime.now(UTC)), end="")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    rescues, namespace, _ = _client(args)
    status = rescues.get(namespace, args.name).get("status") or {}
    if args.output == "json":
        print(json.dumps(status.get("timeline") or [], indent=2))
    else:
        print("\n".join(line.lstrip() for line in timeline_lines(status)) or "(no entries yet)")
    return 0


def _change(
    args: argparse.Namespace,
    build: Callable[[str], dict[str, Any]],
    *,
    verb: str,
    expected: str | None,
) -> int:
    """Ask for a change in the spec, then wait for the operator's answer: done or refused."""
    rescues, namespace, api_client = _client(args)
    try:
        who = kube.whoami(api_client)
    except kube.KubeError:
        who = "unknown"
    changed = rescues.patch(namespace, args.name, {"spec": build(who)})
    generation = int(changed["metadata"].get("generation", 0))
    deadline = time.monotonic() + args.wait
    while True:
        status = rescues.get(namespace, args.name).get("status") or {}
        if int(status.get("observedGeneration", 0)) >= generation:
            break
        if time.monotonic() > deadline:
            print(
                f"rescue {args.name}: {verb} requested; the operator has not answered within "
                f"{args.wait:.0f} s (is it running?)"
            )
            return 0
        time.sleep(0.3)
    phase = status.get("phase", "-")
    refused = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "TransitionRefused" and c.get("status") == "True"
        ),
        None,
    )
    if expected is not None and phase != expected and refused is not None:
        print(f"rescue {args.name}: {verb} refused: {refused['message']}", file=sys.stderr)
        return 1
    state = (status.get("mitigation") or {}).get("state")
    extra = f", mitigation {state}" if state and verb in ("approve", "reject") else ""
    print(f"rescue {args.name} is {phase}{extra}")
    return 0


def cmd_shelve(args: argparse.Namespace) -> int:
    return _change(
        args,
        lambda who: {"paused": True, "pauseReason": args.reason, "pausedBy": who},
        verb="shelve",
        expected="Paused",
    )


def cmd_resume(args: argparse.Namespace) -> int:
    return _change(
        args, lambda who: {"paused": False, "pausedBy": who}, verb="resume", expected="Active"
    )


def _approval(args: argparse.Namespace, decision: str, verb: str) -> int:
    rescues, namespace, _ = _client(args)
    state = ((rescues.get(namespace, args.name).get("status") or {}).get("mitigation") or {}).get(
        "state"
    )
    if state != "Proposed":
        raise UsageError(
            f"rescue {args.name} has no proposed mitigation to {verb}"
            + (f" (its mitigation is {state})" if state else "")
        )

    def build(who: str) -> dict[str, Any]:
        approval = {"decision": decision, "by": who, "at": format_time(datetime.now(UTC))}
        if getattr(args, "reason", None):
            approval["reason"] = args.reason
        return {"approval": approval}

    return _change(args, build, verb=verb, expected="Active")


def _stamp(who: str) -> dict[str, str]:
    return {"by": who, "at": format_time(datetime.now(UTC))}


def cmd_triage(args: argparse.Namespace) -> int:
    return _change(
        args,
        lambda who: {
            "severity": args.severity,
            "triageNote": {"severity": args.severity, "reason": args.reason, **_stamp(who)},
        },
        verb="triage",
        expected=None,
    )


def cmd_diagnose(args: argparse.Namespace) -> int:
    return _change(
        args,
        lambda who: {
            "diagnosis": {"rootCause": args.root_cause, "category": args.category, **_stamp(who)}
        },
        verb="diagnose",
        expected=None,
    )


def cmd_resolve(args: argparse.Namespace) -> int:
    def build(who: str) -> dict[str, Any]:
        resolution: dict[str, Any] = {"fix": args.fix, **_stamp(who)}
        if args.commit:
            resolution["commit"] = args.commit
        return {"resolution": resolution}

    return _change(args, build, verb="resolve", expected=None)


def cmd_approve(args: argparse.Namespace) -> int:
    return _approval(args, "approved", "approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _approval(args, "rejected", "reject")


def cmd_conclude(args: argparse.Namespace) -> int:
    def build(who: str) -> dict[str, Any]:
        conclusion: dict[str, Any] = {
            "requestedAt": format_time(datetime.now(UTC)),
            "requestedBy": who,
            "actionItems": list(args.action_items),
        }
        if args.summary:
            conclusion["summary"] = args.summary
        if args.route:
            conclusion["route"] = args.route
        return {"conclusion": conclusion}

    return _change(args, build, verb="conclude", expected="Completed")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "version": cmd_version,
    "doctor": cmd_doctor,
    "cluster": cmd_cluster,
    "webhook": cmd_webhook,
    "operator": cmd_operator,
    "demo": cmd_demo,
    "list": cmd_list,
    "show": cmd_show,
    "timeline": cmd_timeline,
    "review": cmd_review,
    "report": cmd_report,
    "shelve": cmd_shelve,
    "resume": cmd_resume,
    "conclude": cmd_conclude,
    "approve": cmd_approve,
    "triage": cmd_triage,
    "diagnose": cmd_diagnose,
    "resolve": cmd_resolve,
    "reject": cmd_reject,
}


if __name__ == "__main__":
    sys.exit(main())
