"""A GitOps repository with a story, for the demo, the tests and the benchmarks.

``WorkClone`` is a person's clone of the GitOps repository: write manifests, commit them at a
chosen time, push over the real transport with a token passed through the environment. The
manifests it writes are ordinary Deployments and ConfigMaps of the kind Flux or Argo CD apply.
This is not a product component.
"""

from __future__ import annotations

import base64
import os
import subprocess
from datetime import datetime
from pathlib import Path


def deployment(*, name: str, namespace: str, image: str, replicas: int = 2) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}  # scaled by hand during sales
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: {name}
          image: {image}
"""


def feature_flags(*, namespace: str, flags: dict[str, str]) -> str:
    lines = "".join(f'  {key}: "{value}"\n' for key, value in flags.items())
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\n"
        f"  namespace: {namespace}\ndata:\n{lines}"
    )


class WorkClone:
    """A clone someone works in, pushing to ``url`` with ``token``."""

    def __init__(self, url: str, *, token: str, path: Path, author: str = "Dev <dev@example.org>"):
        self.url, self.path = url, path
        name, _, email = author.partition(" <")
        basic = base64.b64encode(f"git:{token}".encode()).decode()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email.rstrip(">"),
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email.rstrip(">"),
        }
        if not (path / ".git").exists():
            path.mkdir(parents=True, exist_ok=True)
            self.git("init", "--quiet", "-b", "main")
            self.git("remote", "add", "origin", url)

    def git(self, *args: str, when: datetime | None = None) -> str:
        env = dict(self.env)
        if when is not None:
            stamp = f"{int(when.timestamp())} +0000"
            env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
        result = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
        return result.stdout

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def remove(self, relative: str) -> None:
        self.git("rm", "-r", "--quiet", "--", relative)

    def commit(self, message: str, *, when: datetime | None = None) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message, when=when)
        return self.git("rev-parse", "HEAD").strip()

    def push(self) -> None:
        self.git("push", "--quiet", "origin", "HEAD:refs/heads/main")

    def pull(self) -> None:
        self.git("fetch", "--quiet", "origin", "main")
        self.git("reset", "--quiet", "--hard", "origin/main")

    def log(self, *args: str) -> str:
        self.pull()
        return self.git("log", *args)


def policy_manifest(
    *, namespace: str, name: str, team: str, url: str, token: str, gates: str
) -> str:
    """A Secret with the repository token and a RescuePolicy selecting ``team=<team>``.

    ``gates`` is the policy's gates as a YAML flow mapping, e.g.
    ``{minFiringSeconds: 0, cooldownSeconds: 1800}``.
    """
    return f"""apiVersion: v1
kind: Secret
metadata: {{name: gitops-credentials, namespace: {namespace}}}
stringData: {{token: {token}}}
---
apiVersion: alc.hecate.dev/v1alpha1
kind: RescuePolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{team: {team}}}}}
  target: {{kind: Deployment, namespaceLabel: namespace, nameLabel: deployment}}
  repository:
    url: {url}
    branch: main
    path: "apps/{{namespace}}/{{name}}"
    secretRef: {{name: gitops-credentials}}
  mitigation:
    strategy: rollback
    modes: {{SEV1: commit, SEV2: commit, SEV3: propose, SEV4: none}}
  gates: {gates}
"""
