"""``rescue doctor``: what stands between this cluster and a working Rescue, one line each.

Each check says what it looked at and, when it fails, what to do. It reads and never writes:
the cluster connection and who we are, the CRDs against the ones this version ships, and for
every RescuePolicy whether it parses, whether its Secret is there, and whether its GitOps
repository answers with those credentials (read access, by ``git ls-remote``; push access shows
at the first mitigation, and the rescue's GitReachable condition says so if it is refused).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rescue.core import git, kube
from rescue.core.model import GROUP, POLICY_PLURAL, VERSION
from rescue.core.policy import Policy, PolicyError

CRDS = Path(__file__).parent / "crds"


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what}"


def shipped_crds() -> dict[str, dict[str, Any]]:
    """The CRDs this version ships, by name."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                found[document["metadata"]["name"]] = document
    return found


def _digest(crd: dict[str, Any]) -> str:
    """What must match between the shipped and the installed CRD: versions and schemas."""
    versions = [
        {"name": v.get("name"), "schema": v.get("schema"), "served": v.get("served")}
        for v in crd.get("spec", {}).get("versions", [])
    ]
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()


def check_cluster(api_client: Any) -> Iterator[Finding]:
    server = api_client.configuration.host
    try:
        kube.ping(api_client)
    except kube.KubeError as exc:
        yield Finding(False, f"API server {server}: {exc}; check --kubeconfig/--context")
        return
    try:
        who = kube.whoami(api_client)
    except kube.KubeError:
        who = "an identity the API server would not describe"
    yield Finding(True, f"API server {server} answers; you are {who}")


def check_crds(api_client: Any) -> Iterator[Finding]:
    extensions = client.ApiextensionsV1Api(api_client)
    for name, shipped in shipped_crds().items():
        try:
            answer: Any = extensions.read_custom_resource_definition(
                name, _request_timeout=kube.REQUEST_TIMEOUT, _preload_content=False
            )
            installed = json.loads(answer.data)
        except ApiException as exc:
            if exc.status == 404:
                yield Finding(
                    False,
                    f"CRD {name} is not installed; apply the CRDs this version ships "
                    "(kubectl apply --server-side -k crds/, or the deploy/ base)",
                )
            else:
                yield Finding(False, f"CRD {name} could not be read: HTTP {exc.status}")
            continue
        except (OSError, ValueError) as exc:
            yield Finding(False, f"CRD {name} could not be read: {exc}")
            continue
        if _digest(installed) != _digest(shipped):
            names = ", ".join(v["name"] for v in installed["spec"]["versions"])
            yield Finding(
                False,
                f"CRD {name} (versions {names}) differs from the one this version ships; "
                "apply crds/ again (kubectl apply --server-side -k crds/)",
            )
        else:
            yield Finding(True, f"CRD {name} matches this version")


def _policies(api_client: Any, namespace: str | None) -> list[dict[str, Any]]:
    api = client.CustomObjectsApi(api_client)
    answer: Any
    try:
        if namespace:
            answer = api.list_namespaced_custom_object(
                GROUP, VERSION, namespace, POLICY_PLURAL, _request_timeout=kube.REQUEST_TIMEOUT
            )
        else:
            answer = api.list_cluster_custom_object(
                GROUP, VERSION, POLICY_PLURAL, _request_timeout=kube.REQUEST_TIMEOUT
            )
    except ApiException as exc:
        raise kube.KubeRejected(
            f"listing RescuePolicies: HTTP {exc.status}", status=int(exc.status or 0)
        ) from exc
    return list(answer.get("items", []))


def check_policies(api_client: Any, namespace: str | None) -> Iterator[Finding]:
    try:
        items = _policies(api_client, namespace)
    except kube.KubeError as exc:
        yield Finding(False, str(exc))
        return
    if not items:
        where = f"namespace {namespace}" if namespace else "any namespace"
        yield Finding(
            True,
            f"no RescuePolicy in {where}: rescues open and record, but nothing is mitigated",
        )
        return
    with tempfile.TemporaryDirectory(prefix="rescue-doctor-") as cache:
        for item in items:
            meta = item.get("metadata") or {}
            yield _check_policy(
                api_client,
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                item.get("spec") or {},
                Path(cache),
            )


def _check_policy(
    api_client: Any, namespace: str, name: str, spec: dict[str, Any], cache: Path
) -> Finding:
    ref = f"policy {namespace}/{name}"
    try:
        policy = Policy.parse(namespace, name, spec)
    except PolicyError as exc:
        return Finding(False, f"{exc}; fix the policy (kubectl edit rescuepolicy -n {namespace})")
    repository = policy.spec.repository
    if repository is None:
        return Finding(True, f"{ref}: no repository, so it opens and records but never mitigates")
    credentials = git.Credentials()
    if repository.secretRef is not None:
        try:
            data = kube.read_secret(api_client, namespace, repository.secretRef.name)
        except kube.NotFound:
            return Finding(
                False,
                f"{ref}: its Secret {namespace}/{repository.secretRef.name} does not exist; "
                "create it with the repository's token or SSH key",
            )
        except kube.KubeError as exc:
            return Finding(False, f"{ref}: its Secret could not be read ({exc})")
        credentials = git.Credentials.from_secret(data)
    try:
        repo = git.Repository(
            repository.url, repository.branch, cache_root=cache, credentials=credentials
        )
        head = repo.remote_head()
    except git.GitAuthError as exc:
        return Finding(False, f"{ref}: the repository refused the credentials ({exc})")
    except git.GitError as exc:
        return Finding(False, f"{ref}: the repository cannot be read ({exc})")
    if head is None:
        return Finding(
            False, f"{ref}: {repository.url} has no branch {repository.branch!r}; fix the policy"
        )
    return Finding(
        True,
        f"{ref}: {repository.url} branch {repository.branch} at {head[:12]} reads with its "
        "credentials (push access shows at the first mitigation)",
    )


def run(api_client: Any, *, namespace: str | None) -> list[Finding]:
    findings = list(check_cluster(api_client))
    if not all(f.ok for f in findings):
        return findings
    findings += check_crds(api_client)
    findings += check_policies(api_client, namespace)
    return findings
