"""What the Mitigate step needs from the outside world, gathered in one place: the GitOps
repository (with its credentials from a Secret) and the GitOps controllers' view of it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescue.core import forge, git, kube
from rescue.core.policy import Policy
from rescue.operator.mitigation import Applied

#: (group, version, plural, kind, how to read its path, how to read its applied revision)
FLUX = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
ARGO = ("argoproj.io", "v1alpha1", "applications", "Application")


@dataclass
class ClusterEnvironment:
    api_client: Any
    cache_root: Path
    rescues: kube.Rescues = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.rescues = kube.Rescues(self.api_client)

    @classmethod
    def from_kubeconfig(cls, cache_root: Path | None = None) -> ClusterEnvironment:
        return cls(
            api_client=kube.load_client(),
            cache_root=cache_root or Path.home() / ".cache" / "rescue" / "git",
        )

    def forge(self, policy: Policy) -> forge.GitHub:
        spec = policy.spec.repository
        if spec is None:
            raise git.InvalidRepository(f"policy {policy.ref} names no repository")
        token = self._credentials(policy).token
        if not token:
            raise forge.ForgeAuthError(
                f"pull requests need a token in the Secret named by policy {policy.ref}"
            )
        return forge.GitHub.from_repository_url(spec.url, token=token, api_url=spec.forge.apiURL)

    def _credentials(self, policy: Policy) -> git.Credentials:
        spec = policy.spec.repository
        credentials = git.Credentials()
        if spec is not None and spec.secretRef is not None:
            try:
                data = kube.read_secret(self.api_client, policy.namespace, spec.secretRef.name)
            except kube.NotFound as exc:
                raise git.GitAuthError(
                    f"the Secret {policy.namespace}/{spec.secretRef.name} named by policy "
                    f"{policy.ref} does not exist"
                ) from exc
            except kube.KubeError as exc:
                raise git.GitUnavailable(f"reading the repository Secret failed: {exc}") from exc
            credentials = git.Credentials.from_secret(data)
        return credentials

    def repository(self, policy: Policy) -> git.Repository:
        spec = policy.spec.repository
        if spec is None:
            raise git.InvalidRepository(f"policy {policy.ref} names no repository")
        credentials = self._credentials(policy)
        author = policy.spec.mitigation.author
        return git.Repository(
            spec.url,
            spec.branch,
            cache_root=self.cache_root,
            credentials=credentials,
            identity=git.Identity(name=author.name, email=author.email),
        )

    def applied(self, repository: git.Repository, path: str) -> Applied | None:
        """The Flux Kustomization or Argo CD Application deploying ``path``, if there is one."""
        for group, version, plural, kind in (FLUX, ARGO):
            try:
                items = kube.list_objects(
                    self.api_client, group=group, version=version, plural=plural
                )
            except kube.KubeError:
                continue
            for item in items:
                spec, status = item.get("spec") or {}, item.get("status") or {}
                if kind == "Kustomization":
                    source_path = spec.get("path", "")
                    revision = status.get("lastAppliedRevision")
                else:
                    source = spec.get("source") or {}
                    source_path = source.get("path", "")
                    revision = (status.get("sync") or {}).get("revision")
                    if source.get("repoURL") and source["repoURL"].rstrip(
                        "/"
                    ) != repository.url.rstrip("/"):
                        continue
                base = str(source_path).strip().lstrip("./").strip("/")
                if base and (path == base or path.startswith(base + "/")):
                    meta = item["metadata"]
                    return Applied(f"{kind} {meta['namespace']}/{meta['name']}", revision)
        return None
