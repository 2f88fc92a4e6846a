"""deploy/examples: the Alertmanager configurations pass Alertmanager's own check and reach
the webhook as deploy/base serves it; the Secrets the examples name exist where they are read.

That the Kubernetes objects among the examples are valid is the API server's call:
tests/integration/test_manifests.py dry-runs each of them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "deploy" / "examples"
ALERTMANAGER_FILES = ["alertmanager.yml", "alertmanager-kubernetes-auth.yml"]

amtool = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    amtool is None,
    reason="amtool is missing: `apt-get install prometheus-alertmanager` "
    "(hack/install-tools.sh does it)",
)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _values() -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / "kube-prometheus-stack-values.yaml").read_text()))


def _configs() -> dict[str, dict[str, Any]]:
    configs = {name: yaml.safe_load((EXAMPLES / name).read_text()) for name in ALERTMANAGER_FILES}
    configs["kube-prometheus-stack-values.yaml"] = _values()["alertmanager"]["config"]
    return configs


def _rescue_receiver(config: dict[str, Any]) -> dict[str, Any]:
    (receiver,) = [r for r in config["receivers"] if r["name"] == "rescue"]
    (webhook,) = receiver["webhook_configs"]
    return dict(webhook)


def _secrets() -> dict[tuple[str, str], dict[str, str]]:
    return {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d["stringData"]
        for d in _documents(EXAMPLES / "secrets.yaml")
    }


@needs_amtool
@pytest.mark.parametrize("name", sorted(_configs()))
def test_the_alertmanager_configuration_passes_amtool_check_config(
    name: str, tmp_path: Path
) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(_configs()[name]))
    assert amtool is not None
    result = subprocess.run(
        [amtool, "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_helm_values_carry_the_same_alertmanager_configuration() -> None:
    example = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text())
    assert _values()["alertmanager"]["config"] == example


@pytest.mark.parametrize("name", sorted(_configs()))
def test_the_receiver_posts_to_the_webhook_service_with_resolutions(name: str) -> None:
    config = _configs()[name]
    webhook = _rescue_receiver(config)
    service = next(
        d for d in _documents(ROOT / "deploy" / "base" / "webhook.yaml") if d["kind"] == "Service"
    )
    port = service["spec"]["ports"][0]["port"]
    host = f"{service['metadata']['name']}.rescue-system.svc"
    assert webhook["url"] == f"http://{host}{'' if port == 80 else f':{port}'}/api/v1/alerts"
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"
    # The token is read from a file, never written into the configuration.
    assert "credentials" not in authorization
    assert authorization["credentials_file"].startswith("/")
    route = config["route"]
    assert {"alertname", "namespace"} <= set(route["group_by"])
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route


def test_alerts_about_rescue_itself_never_go_back_to_rescue() -> None:
    for config in _configs().values():
        first = config["route"]["routes"][0]
        assert first["matchers"] == ['component="rescue"']
        assert first["receiver"] != "rescue"
        assert not first.get("continue")


def test_the_kubernetes_auth_variant_presents_the_service_account_token() -> None:
    config = _configs()["alertmanager-kubernetes-auth.yml"]
    authorization = _rescue_receiver(config)["http_config"]["authorization"]
    assert authorization["credentials_file"] == (
        "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )


def test_the_token_alertmanager_reads_is_a_secret_the_values_mount() -> None:
    """kube-prometheus-stack mounts each listed Secret at /etc/alertmanager/secrets/<name>/."""
    values = _values()["alertmanager"]
    path = _rescue_receiver(values["config"])["http_config"]["authorization"]["credentials_file"]
    prefix, name, key = path.rsplit("/", 2)
    assert prefix == "/etc/alertmanager/secrets"
    assert name in values["alertmanagerSpec"]["secrets"]
    assert key in _secrets()[("monitoring", name)]


def test_the_webhook_token_secret_is_the_one_the_webhook_mounts() -> None:
    deployment = next(
        d
        for d in _documents(ROOT / "deploy" / "base" / "webhook.yaml")
        if d["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    token_file = next(a for a in container["args"] if a.startswith("--token-file="))
    folder, key = token_file.removeprefix("--token-file=").rsplit("/", 1)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert key in _secrets()[("rescue-system", volume["secret"]["secretName"])]


@pytest.mark.parametrize("name", ["rescuepolicy-flux.yaml", "rescuepolicy-argocd.yaml"])
def test_each_policy_names_a_secret_in_its_own_namespace(name: str) -> None:
    (policy,) = _documents(EXAMPLES / name)
    namespace = policy["metadata"]["namespace"]
    secret = _secrets()[(namespace, policy["spec"]["repository"]["secretRef"]["name"])]
    url = policy["spec"]["repository"]["url"]
    if url.startswith("ssh://") or "@" in url.split("://")[-1].split("/")[0]:
        assert "ssh-privatekey" in secret
    else:
        assert "token" in secret or {"username", "password"} <= set(secret)
    modes = policy["spec"]["mitigation"]["modes"].values()
    if "pull-request" in modes or policy["spec"].get("tracker", {}).get("issues"):
        assert "token" in secret, "pull requests and issues need a token for the forge's API"
