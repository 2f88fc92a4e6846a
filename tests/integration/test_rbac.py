"""Least privilege, as the real API server decides it: deploy/base/rbac.yaml applied, then
``kubectl auth can-i`` asked as each ServiceAccount, for what it needs and for what it must never
be able to do.

The needs come from the code: the webhook creates, reads and patches rescues (webhook/intake.py),
lists policies (webhook/policies.py) and reviews senders' tokens (webhook/tokenreview.py). The
operator watches and patches rescues and their status, patches policies (kopf's annotations),
posts Events, reads the Secret a policy names, lists Flux Kustomizations and Argo CD
Applications, and keeps its peering object (operator/handlers.py, environment.py,
telemetry.py). It never touches a workload: mitigation is a commit, not a kubectl apply.
"""

from __future__ import annotations

import pytest
import security

from rescue import controlplane, stack

pytestmark = pytest.mark.usefixtures("rbac", "gitops_crds")

WEBHOOK = "rescue-webhook"
OPERATOR = "rescue-operator"
RESCUES = "rescues.alc.hecate.dev"
POLICIES = "rescuepolicies.alc.hecate.dev"
TEAM = "shop"  # any namespace: both roles are cluster-wide


@pytest.fixture(scope="module")
def rbac(cluster: controlplane.Cluster) -> None:
    security.apply_rbac(cluster)


def can(cluster: controlplane.Cluster, account: str, *request: str) -> bool:
    """``kubectl auth can-i`` as the ServiceAccount, with the groups its token carries."""
    answer = stack.kubectl(
        cluster,
        "auth",
        "can-i",
        *request,
        f"--as=system:serviceaccount:{security.SYSTEM_NAMESPACE}:{account}",
        "--as-group=system:serviceaccounts",
        f"--as-group=system:serviceaccounts:{security.SYSTEM_NAMESPACE}",
        "--as-group=system:authenticated",
        check=False,
    )
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    assert first in ("yes", "no"), f"kubectl auth can-i {' '.join(request)} answered {answer!r}"
    return first == "yes"


def _ids(request: tuple[str, ...]) -> str:
    return " ".join(request)


WEBHOOK_NEEDS = [
    ("create", RESCUES, "-n", TEAM),
    ("get", RESCUES, "-n", TEAM),
    ("list", RESCUES, "-n", TEAM),
    ("patch", RESCUES, "-n", TEAM),
    ("list", POLICIES, "-n", TEAM),
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
]

WEBHOOK_MUST_NOT = [
    ("delete", RESCUES, "-n", TEAM),
    ("update", RESCUES, "-n", TEAM),
    ("patch", RESCUES, "--subresource=status", "-n", TEAM),
    ("patch", POLICIES, "-n", TEAM),
    ("get", "secrets", "-n", TEAM),
    ("list", "secrets", "--all-namespaces"),
    ("get", "deployments.apps", "-n", TEAM),
    ("patch", "deployments.apps", "-n", TEAM),
    ("create", "pods", "-n", TEAM),
    ("get", "configmaps", "-n", TEAM),
    ("create", "events", "-n", TEAM),
    # Reviewing others is not being one: the webhook is no sender of alerts.
    ("create", "/api/v1/alerts"),
    ("create", "serviceaccounts/token", "-n", TEAM),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("*", "*", "--all-namespaces"),
]

OPERATOR_NEEDS = [
    ("get", RESCUES, "-n", TEAM),
    ("list", RESCUES, "--all-namespaces"),
    ("watch", RESCUES, "--all-namespaces"),
    ("patch", RESCUES, "-n", TEAM),
    ("patch", RESCUES, "--subresource=status", "-n", TEAM),
    ("get", POLICIES, "-n", TEAM),
    ("list", POLICIES, "--all-namespaces"),
    ("watch", POLICIES, "--all-namespaces"),
    ("patch", POLICIES, "-n", TEAM),
    ("create", "events", "-n", TEAM),
    ("create", "events.events.k8s.io", "-n", TEAM),
    ("get", "secrets", "-n", TEAM),
    ("list", "kustomizations.kustomize.toolkit.fluxcd.io", "--all-namespaces"),
    ("list", "applications.argoproj.io", "--all-namespaces"),
    ("get", "clusterkopfpeerings.kopf.dev"),
    ("watch", "clusterkopfpeerings.kopf.dev"),
    ("patch", "clusterkopfpeerings.kopf.dev"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
]

OPERATOR_MUST_NOT = [
    ("create", RESCUES, "-n", TEAM),
    ("delete", RESCUES, "-n", TEAM),
    ("update", RESCUES, "-n", TEAM),
    ("create", POLICIES, "-n", TEAM),
    ("delete", POLICIES, "-n", TEAM),
    # It never touches a workload, not even to read one: mitigation is a commit.
    ("get", "deployments.apps", "-n", TEAM),
    ("update", "deployments.apps", "-n", TEAM),
    ("patch", "deployments.apps", "-n", TEAM),
    ("patch", "deployments.apps", "--subresource=scale", "-n", TEAM),
    ("patch", "statefulsets.apps", "-n", TEAM),
    ("patch", "daemonsets.apps", "-n", TEAM),
    ("create", "jobs.batch", "-n", TEAM),
    ("create", "pods", "-n", TEAM),
    ("delete", "pods", "-n", TEAM),
    ("create", "pods/exec", "-n", TEAM),
    ("get", "configmaps", "-n", TEAM),
    ("list", "configmaps", "--all-namespaces"),
    ("patch", "configmaps", "-n", TEAM),
    # A Secret is read by the name a policy gives, never listed, watched or written.
    ("list", "secrets", "--all-namespaces"),
    ("watch", "secrets", "--all-namespaces"),
    ("update", "secrets", "-n", TEAM),
    ("patch", "kustomizations.kustomize.toolkit.fluxcd.io", "-n", TEAM),
    ("patch", "applications.argoproj.io", "-n", TEAM),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n", TEAM),
    ("impersonate", "serviceaccounts", "-n", TEAM),
    ("create", "serviceaccounts/token", "-n", TEAM),
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "/api/v1/alerts"),
    ("*", "*", "--all-namespaces"),
]


@pytest.mark.parametrize("request_", WEBHOOK_NEEDS, ids=_ids)
def test_the_webhook_may_do_what_it_needs(
    cluster: controlplane.Cluster, request_: tuple[str, ...]
) -> None:
    assert can(cluster, WEBHOOK, *request_)


@pytest.mark.parametrize("request_", WEBHOOK_MUST_NOT, ids=_ids)
def test_the_webhook_may_not_do_what_it_must_not(
    cluster: controlplane.Cluster, request_: tuple[str, ...]
) -> None:
    assert not can(cluster, WEBHOOK, *request_)


@pytest.mark.parametrize("request_", OPERATOR_NEEDS, ids=_ids)
def test_the_operator_may_do_what_it_needs(
    cluster: controlplane.Cluster, request_: tuple[str, ...]
) -> None:
    assert can(cluster, OPERATOR, *request_)


@pytest.mark.parametrize("request_", OPERATOR_MUST_NOT, ids=_ids)
def test_the_operator_may_not_do_what_it_must_not(
    cluster: controlplane.Cluster, request_: tuple[str, ...]
) -> None:
    assert not can(cluster, OPERATOR, *request_)


def test_the_sender_role_grants_posting_alerts_and_nothing_else(
    cluster: controlplane.Cluster,
) -> None:
    rules = stack.kubectl(
        cluster, "get", "clusterrole", "rescue-alert-sender", "-o", "jsonpath={.rules}"
    )
    assert rules == '[{"nonResourceURLs":["/api/v1/alerts"],"verbs":["create"]}]'
