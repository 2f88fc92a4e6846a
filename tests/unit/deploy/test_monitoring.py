"""deploy/monitoring: the rules Prometheus accepts and evaluates as intended, the dashboard and
the rules asking only for metrics the processes export, and the manifests agreeing with
deploy/base on names, labels and ports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rescue import controlplane

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"

_HISTOGRAMS = {
    "rescue_time_to_detect_seconds",
    "rescue_time_to_triage_seconds",
    "rescue_time_to_mitigate_seconds",
    "rescue_time_to_resolve_seconds",
    "rescue_time_to_conclude_seconds",
    "rescue_webhook_request_duration_seconds",
}
#: Every series the operator and the webhook export (webhook/metrics.py, operator/telemetry.py).
EXPORTED = {
    f"{name}{suffix}" for name in _HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
} | {
    "rescue_opened_total",
    "rescue_concluded_total",
    "rescue_mitigations_total",
    "rescue_gate_holds_total",
    "rescue_escalations_total",
    "rescue_open",
    "rescue_open_overdue",
    "rescue_open_oldest_seconds",
    "rescue_webhook_notifications_total",
    "rescue_webhook_outcomes_total",
    "rescue_webhook_rejected_total",
    "rescue_webhook_deduplicated_total",
}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool is missing: `apt-get install prometheus` (hack/install-tools.sh does it)",
)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _rules() -> Iterator[dict[str, Any]]:
    for group in _yaml(RULES)["groups"]:
        yield from group["rules"]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((MONITORING / "grafana-dashboard.json").read_text()))


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _metric_names(expr: str) -> set[str]:
    """The identifiers of a PromQL expression that name Rescue's series."""
    unquoted = re.sub(r'"[^"]*"', "", expr)
    return {n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", unquoted) if "rescue" in n}


def _promtool(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert promtool is not None
    return subprocess.run(
        [promtool, *argv], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


# --- the rules --------------------------------------------------------------------------------


@needs_promtool
def test_the_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES), cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheusrule_carries_exactly_the_groups_of_rules_yml() -> None:
    (resource,) = _documents(MONITORING / "prometheusrule.yaml")
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == _yaml(RULES)["groups"]


def test_recording_rules_follow_the_level_metric_operations_convention() -> None:
    recorded = [r["record"] for r in _rules() if "record" in r]
    assert "severity:rescue_time_to_resolve_seconds:mean7d" in recorded
    assert "severity:rescue_time_to_mitigate_seconds:p90_7d" in recorded
    for name in recorded:
        level, metric, operations = name.split(":")
        assert level == "severity"
        assert metric in EXPORTED or f"{metric}_count" in EXPORTED
        assert operations


def test_every_query_names_only_exported_or_recorded_metrics() -> None:
    recorded = {r["record"] for r in _rules() if "record" in r}
    exprs = [r["expr"] for r in _rules()] + _dashboard_exprs()
    unknown = {name for expr in exprs for name in _metric_names(expr)} - EXPORTED - recorded
    assert not unknown, f"queries name series nothing exports or records: {sorted(unknown)}"


def test_the_names_in_a_query_are_found_whole() -> None:
    expr = 'max by (severity) (severity:rescue_time_to_resolve_seconds:p90_7d{job="rescue-x"})'
    assert _metric_names(expr) == {"severity:rescue_time_to_resolve_seconds:p90_7d"}


def _expanded(text: str, *, value: str, labels: dict[str, str]) -> str:
    """An annotation as Prometheus renders it, for the few templates the rules use."""
    text = text.replace("{{ $value }}", value)
    for key, label in labels.items():
        text = text.replace(f"{{{{ $labels.{key} }}}}", label)
    assert "{{" not in text, f"a template the test cannot expand: {text}"
    return text


def _alert(name: str) -> dict[str, Any]:
    return next(r for r in _rules() if r.get("alert") == name)


def _expected(name: str, *, value: str, **labels: str) -> dict[str, Any]:
    rule = _alert(name)
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {
            key: _expanded(text, value=value, labels=labels)
            for key, text in rule["annotations"].items()
        },
    }


@needs_promtool
def test_the_rules_compute_what_they_are_named_for(tmp_path: Path) -> None:
    """Two operator replicas: one observes two recoveries (30 min and 1 h), the other exports
    the same series at zero; both report the same SEV1 overdue gauge."""
    sev1 = 'severity="SEV1"'
    durations = "rescue_time_to_resolve_seconds"
    series = [
        (f'{durations}_sum{{{sev1},instance="a"}}', "0 0 1800 1800 5400x30"),
        (f'{durations}_count{{{sev1},instance="a"}}', "0 0 1 1 2x30"),
        (f'{durations}_bucket{{{sev1},instance="a",le="900"}}', "0x34"),
        (f'{durations}_bucket{{{sev1},instance="a",le="1800"}}', "0 0 1x32"),
        (f'{durations}_bucket{{{sev1},instance="a",le="3600"}}', "0 0 1 1 2x30"),
        (f'{durations}_bucket{{{sev1},instance="a",le="+Inf"}}', "0 0 1 1 2x30"),
        (f'{durations}_sum{{{sev1},instance="b"}}', "0x34"),
        (f'{durations}_count{{{sev1},instance="b"}}', "0x34"),
        # A severity without recoveries records nothing (rather than NaN).
        (f'{durations}_sum{{severity="SEV2",instance="a"}}', "0x34"),
        (f'{durations}_count{{severity="SEV2",instance="a"}}', "0x34"),
    ]

    def recorded(name: str, value: float) -> dict[str, Any]:
        return {
            "expr": name,
            "eval_time": "24h",
            "exp_samples": [{"labels": f"{name}{{{sev1}}}", "value": value}],
        }

    overdue = [
        ('rescue_open_overdue{severity="SEV1",instance="a"}', "0 0 1 1 1 1 0"),
        ('rescue_open_overdue{severity="SEV1",instance="b"}', "0 0 1 1 1 1 0"),
        ('rescue_open_overdue{severity="SEV2",instance="a"}', "3x6"),
        ('up{job="rescue-operator",instance="a"}', "1x6"),
    ]
    suite = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1h",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    recorded("severity:rescue_time_to_resolve_seconds:mean1d", 2700),
                    recorded("severity:rescue_time_to_resolve_seconds:mean7d", 2700),
                    recorded("severity:rescue_time_to_resolve_seconds:p50_7d", 1800),
                    recorded("severity:rescue_time_to_resolve_seconds:p90_7d", 3240),
                ],
            },
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in overdue],
                "alert_rule_test": [
                    # Overdue since 2m, but not yet for a whole minute.
                    {"eval_time": "2m", "alertname": "RescueSEV1OpenTooLong", "exp_alerts": []},
                    # Both replicas report the one overdue rescue: it is one, not two.
                    {
                        "eval_time": "4m",
                        "alertname": "RescueSEV1OpenTooLong",
                        "exp_alerts": [_expected("RescueSEV1OpenTooLong", value="1")],
                    },
                    {"eval_time": "6m", "alertname": "RescueSEV1OpenTooLong", "exp_alerts": []},
                    {"eval_time": "6m", "alertname": "RescueOperatorDown", "exp_alerts": []},
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'rescue_webhook_rejected_total{reason="api_unavailable"}',
                        "values": "0+2x20",
                    },
                    {
                        "series": 'rescue_webhook_rejected_total{reason="unauthorized"}',
                        "values": "0x20",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "RescueWebhookCannotRecordAlerts",
                        "exp_alerts": [
                            _expected(
                                "RescueWebhookCannotRecordAlerts",
                                value="20",
                                reason="api_unavailable",
                            )
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "RescueWebhookDroppingNotifications",
                        "exp_alerts": [],
                    },
                    # No operator is scraped at all: that is an operator down too.
                    {
                        "eval_time": "10m",
                        "alertname": "RescueOperatorDown",
                        "exp_alerts": [
                            _expected("RescueOperatorDown", value="1", job="rescue-operator")
                        ],
                    },
                ],
            },
        ],
    }
    tests = tmp_path / "rules.test.yml"
    tests.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = _promtool("test", "rules", str(tests), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_shows_what_the_response_is_judged_by() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "rescue-overview"
    assert dashboard["schemaVersion"] >= 39
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    titles = {p["title"] for p in dashboard["panels"]}
    assert {
        "MTTR by severity",
        "Time to mitigate by severity",
        "Open rescues by phase and severity",
        "Overdue open rescues",
        "Mitigation outcomes by strategy",
        "Gate holds by reason",
        "Escalations by destination",
        "Webhook notifications by status",
        "Webhook requests rejected by reason",
        "Webhook p99 latency",
    } <= titles
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], f"panel {panel['title']!r} queries nothing"


def test_the_dashboard_reads_gauges_with_max_and_counters_with_sum() -> None:
    """Every operator replica reports the gauges; only one increments a counter."""
    for expr in _dashboard_exprs():
        if re.search(r"\brescue_open(_overdue|_oldest_seconds)?\b", expr):
            assert "max by" in expr, expr
        if "_total" in expr or "_bucket" in expr:
            assert "sum" in expr, expr


def test_the_mttr_panel_reads_the_recording_rules() -> None:
    (panel,) = [p for p in _dashboard()["panels"] if p["title"] == "MTTR by severity"]
    assert {t["expr"] for t in panel["targets"]} == {
        "severity:rescue_time_to_resolve_seconds:mean7d",
        "severity:rescue_time_to_resolve_seconds:p90_7d",
    }


# --- scraping ---------------------------------------------------------------------------------


def _base(name: str) -> list[dict[str, Any]]:
    return _documents(ROOT / "deploy" / "base" / name)


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_servicemonitor_finds_the_operator_metrics_port() -> None:
    (monitor,) = _documents(MONITORING / "servicemonitor.yaml")
    service = next(d for d in _base("operator.yaml") if d["kind"] == "Service")
    deployment = next(d for d in _base("operator.yaml") if d["kind"] == "Deployment")
    assert service["metadata"]["name"] == "rescue-operator"  # the scrape job's name
    assert _labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}

    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert "--metrics-port=9090" in container["args"]
    assert ports["metrics"] == 9090
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_podmonitor_finds_the_webhook_and_names_its_job() -> None:
    (monitor,) = _documents(MONITORING / "podmonitor.yaml")
    deployment = next(d for d in _base("webhook.yaml") if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    assert _labels_match(monitor["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]}
    assert {"action": "replace", "targetLabel": "job", "replacement": "rescue-webhook"} in endpoint[
        "relabelings"
    ]


@needs_promtool
def test_the_plain_scrape_configs_are_valid_and_name_the_jobs(tmp_path: Path) -> None:
    scrape = _yaml(MONITORING / "scrape-configs.yml")["scrape_configs"]
    assert [job["job_name"] for job in scrape] == ["rescue-operator", "rescue-webhook"]
    # NB: Debian's Prometheus is built without Kubernetes discovery, so promtool checks the
    # relabeling with a static discovery in its place.
    for job in scrape:
        assert job["kubernetes_sd_configs"][0]["role"] == "pod"
        job["static_configs"] = [{"targets": []}]
        del job["kubernetes_sd_configs"]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "scrape_configs": scrape}))
    result = _promtool("check", "config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- kustomize --------------------------------------------------------------------------------


def _kubectl() -> Path:
    try:
        return controlplane.find_binaries() / "kubectl"
    except controlplane.ControlPlaneError as exc:
        pytest.skip(f"no kubectl to run kustomize with: {exc}")


def test_kustomize_renders_the_monitoring_resources_and_the_dashboard() -> None:
    result = subprocess.run(
        [str(_kubectl()), "kustomize", str(MONITORING)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = {d["kind"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(rendered) == {"ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor"}
    assert {d["metadata"]["namespace"] for d in rendered.values()} == {"rescue-system"}
    dashboard = rendered["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["rescue-overview.json"]) == _dashboard()
