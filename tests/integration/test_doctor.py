"""`rescue doctor` on the real API server and git remote: one line per check, the fix in each
failing line, exit 1 when anything fails."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client

from rescue import controlplane, stack
from rescue.gitserver import GitServer
from rescue.sample import WorkClone, deployment


def _doctor(cluster: controlplane.Cluster, namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            stack.rescue_program(),
            "doctor",
            "-n",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _policy(api: Any, namespace: str, name: str, url: str, secret: str, branch: str) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "alc.hecate.dev",
        "v1alpha1",
        namespace,
        "rescuepolicies",
        {
            "apiVersion": "alc.hecate.dev/v1alpha1",
            "kind": "RescuePolicy",
            "metadata": {"name": name},
            "spec": {"repository": {"url": url, "branch": branch, "secretRef": {"name": secret}}},
        },
    )


def _secret(api: Any, namespace: str, name: str, token: str) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {"metadata": {"name": name}, "data": {"token": base64.b64encode(token.encode()).decode()}},
    )


def test_a_healthy_namespace_passes_every_check(
    cluster: controlplane.Cluster,
    api_client: Any,
    namespace: str,
    git_server: GitServer,
    git_token: str,
    tmp_path: Path,
) -> None:
    git_server.create_repo(f"doctor/{namespace}")
    url = git_server.repo_url(f"doctor/{namespace}")
    work = WorkClone(url, token=git_token, path=tmp_path / "work")
    work.write("apps/a/b/deployment.yaml", deployment(name="b", namespace="a", image="x:1"))
    head = work.commit("First deploy")
    work.push()
    _secret(api_client, namespace, "gitops", git_token)
    _policy(api_client, namespace, "shop", url, "gitops", "main")

    done = _doctor(cluster, namespace)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("ok") for line in lines), lines
    assert any("API server" in line for line in lines)
    assert any("CRD rescues.alc.hecate.dev matches this version" in line for line in lines)
    assert any(f"policy {namespace}/shop" in line and head[:12] in line for line in lines)
    assert git_token not in done.stdout + done.stderr


def test_each_broken_policy_gets_its_own_line_with_the_fix(
    cluster: controlplane.Cluster,
    api_client: Any,
    namespace: str,
    git_server: GitServer,
    git_token: str,
    tmp_path: Path,
) -> None:
    git_server.create_repo(f"doctor-bad/{namespace}")
    url = git_server.repo_url(f"doctor-bad/{namespace}")
    work = WorkClone(url, token=git_token, path=tmp_path / "work")
    work.write("README.md", "gitops\n")
    work.commit("Start")
    work.push()
    _secret(api_client, namespace, "wrong", "not-the-token")
    _secret(api_client, namespace, "right", git_token)
    _policy(api_client, namespace, "no-secret", url, "absent", "main")
    _policy(api_client, namespace, "bad-token", url, "wrong", "main")
    _policy(api_client, namespace, "no-branch", url, "right", "release")

    done = _doctor(cluster, namespace)
    assert done.returncode == 1
    failing = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 3, done.stdout
    text = "\n".join(failing)
    assert f"Secret {namespace}/absent does not exist; create it" in text
    assert "refused the credentials" in text
    assert "has no branch 'release'; fix the policy" in text
    assert "problem(s) found" in done.stderr
    assert git_token not in done.stdout + done.stderr
    assert "not-the-token" not in done.stdout + done.stderr
