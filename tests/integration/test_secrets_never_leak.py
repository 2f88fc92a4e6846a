"""Secrets never leak, even when they are what makes things fail.

The webhook and the operator run as processes under their own ServiceAccounts (the shipped
roles, not the admin's) and with debug logging, the most they ever say. Three failure paths are
driven with real secrets: a policy whose Secret holds a git token the remote refuses, a policy
whose token the git remote accepts but the forge refuses (pull-request mode), and callers
presenting the webhook's token wrapped in credentials it does not accept. Then every place a
secret could surface is searched for each one, in every form it travels in (as is, and inside
the base64 of an HTTP Basic header): both processes' logs, the rescues and their Events, what
the CLI prints about them, and every file of the operator's git cache.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import security
from forge_standin import GitHubStandIn
from helpers import OperatorHandle, eventually, notification
from kubernetes import client

from rescue import controlplane, stack
from rescue.core import kube
from rescue.core.incident import format_time
from rescue.gitserver import GitServer
from rescue.sample import WorkClone, deployment

NOW = datetime.now(UTC).replace(microsecond=0)


def _forms(secret: str) -> set[str]:
    """The secret as it may travel: as is, base64, and inside an HTTP Basic credential."""
    found = {secret, base64.b64encode(secret.encode()).decode()}
    for user in ("git", "x-access-token"):
        found.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return found


@dataclass
class Stage:
    """One GitOps repository with a suspect deploy, a policy, and its Secret."""

    namespace: str
    url: str

    def rescue_of(self, rescues: kube.Rescues) -> dict[str, Any]:
        (found,) = rescues.list(self.namespace)
        return found


def _stage(
    cluster: controlplane.Cluster,
    *,
    namespace: str,
    git_server: GitServer,
    git_token: str,
    secret_token: str,
    work: Path,
    api: Any,
    spec: dict[str, Any],
) -> Stage:
    stack.ensure_namespace(cluster, namespace)
    git_server.create_repo(f"gitops/{namespace}")
    url = git_server.repo_url(f"gitops/{namespace}")
    clone = WorkClone(url, token=git_token, path=work)
    app = f"apps/{namespace}/checkout/deployment.yaml"
    clone.write(app, deployment(name="checkout", namespace=namespace, image="shop/checkout:v1"))
    clone.commit("Deploy checkout v1", when=NOW - timedelta(hours=3))
    clone.write(app, deployment(name="checkout", namespace=namespace, image="shop/checkout:v2"))
    clone.commit("Deploy checkout v2", when=NOW - timedelta(hours=2))
    clone.push()
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {"metadata": {"name": "gitops-credentials"}, "stringData": {"token": secret_token}},
    )
    repository = {
        "url": url,
        "branch": "main",
        "path": "apps/{namespace}/{name}",
        "secretRef": {"name": "gitops-credentials"},
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescuepolicies",
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "RescuePolicy",
            "metadata": {"name": "shop"},
            "spec": {
                "selector": {},
                "repository": {**repository, **spec.pop("repository", {})},
                "mitigation": {"strategy": "rollback", **spec.pop("mitigation", {})},
                "gates": {"minFiringSeconds": 0, "verifyWithinSeconds": 600},
            },
        },
    )
    return Stage(namespace=namespace, url=url)


@pytest.fixture
def processes(
    cluster: controlplane.Cluster,
    api_client: Any,
    operator: OperatorHandle,
    tmp_path: Path,
    default_namespace: str,
) -> Iterator[tuple[stack.Process, stack.Process, Path, str]]:
    """The webhook and an operator, each as its own ServiceAccount, logging everything."""
    security.apply_rbac(cluster)
    webhook_token = secrets.token_hex(20)
    as_webhook = security.kubeconfig_as(
        cluster,
        security.token_for(api_client, security.SYSTEM_NAMESPACE, "rescue-webhook"),
        tmp_path / "webhook.kubeconfig",
    )
    as_operator = security.kubeconfig_as(
        cluster,
        security.token_for(api_client, security.SYSTEM_NAMESPACE, "rescue-operator"),
        tmp_path / "operator.kubeconfig",
    )
    cache = tmp_path / "git-cache"
    with operator.stopped():  # one operator acts at a time: this test's
        webhook = stack.start_webhook(
            as_webhook, folder=tmp_path, token=webhook_token, name="webhook", verbose=True
        )
        acting = stack.start_operator(
            as_operator,
            folder=tmp_path,
            name="operator",
            verbose=True,
            extra_args=("--git-cache", str(cache)),
        )
        try:
            yield webhook, acting, cache, webhook_token
        finally:
            acting.stop()
            webhook.stop()


def _condition(rescues: kube.Rescues, stage: Stage, reason: str) -> Any:
    def found() -> Any:
        items = rescues.list(stage.namespace)
        status = (items[0].get("status") or {}) if items else {}
        for condition in status.get("conditions", []):
            if condition["type"] == "GitReachable" and condition["reason"] == reason:
                return condition
        return None

    return eventually(found, timeout=90, what=f"GitReachable={reason} in {stage.namespace}")


def _cli(cluster: controlplane.Cluster, *args: str) -> str:
    result = subprocess.run(
        [stack.rescue_program(), *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.child_env(cluster),
        check=False,
    )
    return result.stdout + result.stderr


def test_no_secret_surfaces_in_logs_status_events_cli_or_the_git_cache(
    cluster: controlplane.Cluster,
    api_client: Any,
    rescues: kube.Rescues,
    git_server: GitServer,
    git_token: str,
    processes: tuple[stack.Process, stack.Process, Path, str],
    tmp_path: Path,
) -> None:
    webhook, acting, cache, webhook_token = processes
    wrong_git_token = secrets.token_hex(20)
    wrong_forge_token = secrets.token_hex(20)

    # A token the git remote refuses.
    refused = _stage(
        cluster,
        namespace=f"t-leak-git-{secrets.token_hex(4)}",
        git_server=git_server,
        git_token=git_token,
        secret_token=wrong_git_token,
        work=tmp_path / "work-git",
        api=api_client,
        spec={},
    )
    # The right git token, which the forge refuses: it expects another.
    bare = git_server.root / "gitops"
    forge_namespace = f"t-leak-forge-{secrets.token_hex(4)}"
    standin_bare = bare / f"{forge_namespace}.git"
    forged = None
    standin = None
    try:
        forged = _stage(
            cluster,
            namespace=forge_namespace,
            git_server=git_server,
            git_token=git_token,
            secret_token=git_token,
            work=tmp_path / "work-forge",
            api=api_client,
            spec={},
        )
        standin = GitHubStandIn(
            standin_bare, owner="gitops", repo=forge_namespace, token=wrong_forge_token
        ).start()
        client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
            "alc.hecate.dev",
            "v1alpha1",
            forge_namespace,
            "rescuepolicies",
            "shop",
            {
                "spec": {
                    "repository": {"forge": {"apiURL": standin.api_url}},
                    "mitigation": {"modes": {"SEV1": "pull-request"}},
                }
            },
            _content_type="application/merge-patch+json",
        )

        # The operator reads policies from its own index: wait until it has handled the
        # change, or the rescue may be handled under the policy as it was first created.
        def policy_seen() -> bool:
            policy = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                "alc.hecate.dev", "v1alpha1", forge_namespace, "rescuepolicies", "shop"
            )
            handled = (policy["metadata"].get("annotations") or {}).get(
                "operator.alc.hecate.dev/last-handled-configuration", ""
            )
            return "pull-request" in handled

        eventually(policy_seen, timeout=60, what="the operator handling the policy's change")

        # Both incidents arrive through the webhook, as Alertmanager would send them.
        started = format_time(NOW - timedelta(hours=1))
        with httpx.Client(base_url=webhook.url, timeout=30) as http:
            for stage in (refused, forged):
                answer = http.post(
                    "/api/v1/alerts",
                    json=notification(namespace=stage.namespace, starts_at=started),
                    headers={"Authorization": f"Bearer {webhook_token}"},
                )
                assert answer.status_code == 200, answer.text
            # Near misses that carry the webhook's real token inside them.
            near_misses = [
                f"Bearer {webhook_token}x",
                f"Bearer x{webhook_token}",
                "Basic " + base64.b64encode(f"alertmanager:{webhook_token}".encode()).decode(),
                webhook_token,
            ]
            for header in near_misses:
                answer = http.post(
                    "/api/v1/alerts",
                    json=notification(namespace=refused.namespace, starts_at=started),
                    headers={"Authorization": header},
                )
                assert answer.status_code == 401
                assert webhook_token not in answer.text

        git_refusal = _condition(rescues, refused, "GitAuthFailed")
        assert "refused the credentials" in git_refusal["message"]
        forge_refusal = _condition(rescues, forged, "ForgeAuthFailed")
        assert "refused the token" in forge_refusal["message"]
    finally:
        if standin is not None:
            standin.stop()
    assert forged is not None

    # Where a secret could surface.
    surfaces: dict[str, str] = {
        "webhook log": webhook.log.read_text(errors="replace"),
        "operator log": acting.log.read_text(errors="replace"),
    }
    for stage in (refused, forged):
        body = stage.rescue_of(rescues)
        name = body["metadata"]["name"]
        surfaces[f"rescue {stage.namespace}"] = json.dumps(body)
        events = client.CoreV1Api(api_client).list_namespaced_event(stage.namespace)
        surfaces[f"events {stage.namespace}"] = json.dumps(
            [(e.reason, e.message) for e in events.items]
        )
        for verb in ("show", "timeline"):
            surfaces[f"rescue {verb} {name}"] = _cli(cluster, verb, name, "-n", stage.namespace)
        surfaces[f"rescue doctor -n {stage.namespace}"] = _cli(
            cluster, "doctor", "-n", stage.namespace
        )
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files, "the operator fetched nothing into its git cache"
    for path in files:
        surfaces[f"cache file {path.relative_to(cache)}"] = path.read_bytes().decode(
            errors="replace"
        )

    # The failures did surface, with words a person can act on...
    assert "GitAuthFailed" in surfaces[f"rescue {refused.namespace}"]
    assert "ForgeAuthFailed" in surfaces[f"rescue {forged.namespace}"]
    assert "DEBUG" in surfaces["operator log"] and "DEBUG" in surfaces["webhook log"]
    # ...and no secret did, in any form.
    for secret in (git_token, wrong_git_token, wrong_forge_token, webhook_token):
        leaks = [
            where for where, text in surfaces.items() for form in _forms(secret) if form in text
        ]
        assert leaks == []

    # The cached clones carry no remote and no credential helper or header in their config.
    for config in cache.glob("*/config"):
        text = config.read_text()
        assert "[remote" not in text, config
        assert "extraheader" not in text.lower(), config
        assert "credential" not in text.lower(), config
        remotes = subprocess.run(
            ["git", "--git-dir", str(config.parent), "remote", "-v"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert remotes.stdout == ""

    # The operator's own role was enough for all of this: the API server refused it nothing.
    assert "forbidden" not in surfaces["operator log"].lower()
    assert "forbidden" not in surfaces["webhook log"].lower()
