"""GitOps mitigation end to end: the real operator, a real API server, a real git remote.

Each test tells a story in a GitOps repository served over smart HTTP with a token: the target
``checkout`` was deployed at v1, then v2 landed an hour before the incident. The operator has
to find v2 as the suspect and restore v1 by a forward commit, and nothing else.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from forge_standin import GitHubStandIn
from helpers import OperatorHandle, eventually, notification
from kubernetes import client
from sshserver import SshServer

from rescue import controlplane, stack
from rescue.core import failpoints, git, kube, review
from rescue.core.incident import format_time
from rescue.core.model import Severity, Target
from rescue.core.policy import Policy
from rescue.gitserver import GitServer
from rescue.operator import mitigation, tracker
from rescue.operator.environment import ClusterEnvironment
from rescue.sample import WorkClone, deployment

pytestmark = pytest.mark.usefixtures("operator", "gitops_crds")

NOW = datetime.now(UTC).replace(microsecond=0)
INCIDENT = NOW - timedelta(hours=1)


@dataclass
class Story:
    namespace: str
    url: str
    work: WorkClone
    api: Any
    rescues: kube.Rescues
    cluster: controlplane.Cluster
    v1: str
    v2: str

    @property
    def path(self) -> str:
        return f"apps/{self.namespace}/checkout"

    def policy(self, *, url: str | None = None, **spec: Any) -> None:
        body = {
            "selector": {"matchLabels": {"team": "shop"}},
            "repository": {
                "url": url or self.url,
                "branch": "main",
                "path": "apps/{namespace}/{name}",
                "secretRef": {"name": "gitops-credentials"},
            },
            "mitigation": {"strategy": "rollback"},
            "gates": {"minFiringSeconds": 0, "verifyWithinSeconds": 600},
        }
        for key, value in spec.items():
            body[key] = {**body.get(key, {}), **value}
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            "alc.hecate.dev",
            "v1alpha1",
            self.namespace,
            "rescuepolicies",
            {
                "apiVersion": "alc.hecate.dev/v1alpha1",
                "kind": "RescuePolicy",
                "metadata": {"name": "shop"},
                "spec": body,
            },
        )

    def rescue(self, name: str, severity: str = "SEV1", *, start: datetime = INCIDENT) -> None:
        alert = {
            "fingerprint": f"fp-{name}",
            "alertname": "CheckoutErrors",
            "status": "firing",
            "startsAt": format_time(start),
            "labels": {"team": "shop", "namespace": self.namespace, "deployment": "checkout"},
        }
        self.rescues.create(
            self.namespace,
            {
                "apiVersion": "alc.hecate.dev/v1alpha1",
                "kind": "Rescue",
                "metadata": {"name": name},
                "spec": {
                    "severity": severity,
                    "target": {
                        "kind": "Deployment",
                        "namespace": self.namespace,
                        "name": "checkout",
                    },
                    "incidentStart": format_time(start),
                    "alerts": [alert],
                },
            },
        )

    def deploy(self, image: str, *, when: datetime) -> None:
        """A person deploys the target at ``image``: a commit pushed to the branch."""
        self.work.pull()
        self.work.write(
            f"{self.path}/deployment.yaml",
            deployment(name="checkout", namespace=self.namespace, image=image),
        )
        self.work.commit(f"Deploy checkout {image.rsplit(':', 1)[-1]}", when=when)
        self.work.push()

    def complete_the_record(self, name: str) -> None:
        """What people record before concluding: root cause, fix, lessons; then Review."""
        for args in (
            (
                "diagnose",
                name,
                "--root-cause",
                "checkout v2 leaks connections",
                "--category",
                "deployment",
            ),
            ("resolve", name, "--fix", "close connections in v2.1"),
        ):
            done = self.cli(*args)
            assert done.returncode == 0, done.stderr
        self.wait(name, lambda s: s.get("step") == "Review", f"{name} to reach Review")
        reviewed = self.cli("review", name, "--lessons", "Canary the payment flow first.")
        assert reviewed.returncode == 0, reviewed.stderr

    def parsed_policy(self) -> Policy:
        """The policy as an operator parses it, for running the Mitigate step in this process."""
        return Policy.parse(
            self.namespace,
            "shop",
            {
                "repository": {"url": self.url, "secretRef": {"name": "gitops-credentials"}},
                "gates": {"minFiringSeconds": 0},
            },
        )

    def view(self, name: str, *, fingerprint: str) -> mitigation.RescueView:
        """What the Mitigate step knows of a SEV1 rescue of checkout, started at INCIDENT."""
        return mitigation.RescueView(
            namespace=self.namespace,
            name=name,
            severity=Severity.SEV1,
            target=Target(namespace=self.namespace, name="checkout"),
            incident_start=INCIDENT,
            alertname="CheckoutErrors",
            fingerprint=fingerprint,
            firing=1,
            mitigation={},
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rescues.get(self.namespace, name).get("status") or {})

    def wait(self, name: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        return eventually(
            lambda: (s := self.status(name)) and check(s) and s, timeout=45, what=what
        )

    def mitigation_state(self, name: str, state: str) -> dict[str, Any]:
        return self.wait(
            name, lambda s: (s.get("mitigation") or {}).get("state") == state, f"{name} {state}"
        )

    def resolve(self, name: str) -> None:
        body = self.rescues.get(self.namespace, name)
        alerts = body["spec"]["alerts"]
        for alert in alerts:
            alert["status"] = "resolved"
        self.rescues.patch(self.namespace, name, {"spec": {"alerts": alerts}})

    def rescue_commits(self) -> list[str]:
        out = self.work.log("--format=%H %(trailers:key=Rescue,valueonly,separator=%x2C)")
        return [line for line in out.splitlines() if line.split(" ", 1)[1:] != [""]]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                stack.rescue_program(),
                *args,
                "-n",
                self.namespace,
                "--kubeconfig",
                str(self.cluster.kubeconfig),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=stack.child_env(self.cluster),
            check=False,
        )


@pytest.fixture
def story(
    namespace: str,
    git_server: GitServer,
    git_token: str,
    tmp_path: Path,
    api_client: Any,
    rescues: kube.Rescues,
    cluster: controlplane.Cluster,
) -> Iterator[Story]:
    git_server.create_repo(f"gitops/{namespace}")
    url = git_server.repo_url(f"gitops/{namespace}")
    work = WorkClone(url, token=git_token, path=tmp_path / "work")
    app = f"apps/{namespace}/checkout/deployment.yaml"
    work.write(app, deployment(name="checkout", namespace=namespace, image="shop/checkout:v1"))
    work.write(
        f"apps/{namespace}/cart/deployment.yaml",
        deployment(name="cart", namespace=namespace, image="shop/cart:v7"),
    )
    v1 = work.commit("Deploy checkout v1 and cart v7", when=NOW - timedelta(hours=3))
    work.write(app, deployment(name="checkout", namespace=namespace, image="shop/checkout:v2"))
    v2 = work.commit("Deploy checkout v2", when=NOW - timedelta(hours=2))
    work.push()
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "gitops-credentials"},
            "data": {"token": base64.b64encode(git_token.encode()).decode()},
        },
    )
    yield Story(namespace, url, work, api_client, rescues, cluster, v1, v2)
    # Rescues left open would count against the cluster-wide budget of later tests.
    for item in rescues.list(namespace):
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            "alc.hecate.dev", "v1alpha1", namespace, "rescues", item["metadata"]["name"]
        )


def test_rollback_restores_the_target_and_nothing_else(story: Story) -> None:
    # A colleague changed another app after the incident began: that change must survive.
    story.work.write(
        f"apps/{story.namespace}/cart/deployment.yaml",
        deployment(name="cart", namespace=story.namespace, image="shop/cart:v8"),
    )
    later = story.work.commit("Deploy cart v8", when=NOW - timedelta(minutes=30))
    story.work.push()
    story.policy()
    story.rescue("checkout-down")

    status = story.mitigation_state("checkout-down", "Committed")
    m = status["mitigation"]
    assert m["suspect"]["commit"] == story.v2
    assert m["lkg"] == story.v1
    assert "Deploy checkout v2" in m["why"]

    story.work.pull()
    head = story.work.git("rev-parse", "HEAD").strip()
    assert head == m["commit"]
    assert story.work.git("rev-parse", "HEAD^").strip() == later
    changed = story.work.git("diff", "--name-only", "HEAD^", "HEAD").split()
    assert changed == [f"{story.path}/deployment.yaml"]
    content = story.work.git("show", f"HEAD:{story.path}/deployment.yaml")
    assert "shop/checkout:v1" in content
    assert "shop/cart:v8" in story.work.git(
        "show", f"HEAD:apps/{story.namespace}/cart/deployment.yaml"
    )

    trailers = story.work.git("log", "-1", "--format=%(trailers)")
    assert f"Rescue: {story.namespace}/checkout-down" in trailers
    assert "Alert-Fingerprint: fp-checkout-down" in trailers
    assert f"Rollback-To: {story.v1}" in trailers
    assert f"Rolls-Back: {story.v2}" in trailers

    table = stack.kubectl(story.cluster, "get", "rescues", "-n", story.namespace)
    assert m["commit"][:7] in table.splitlines()[1].split()


def test_no_change_before_the_incident_means_no_rollback(story: Story) -> None:
    story.policy()
    story.rescue("too-early", start=NOW - timedelta(hours=4))
    status = story.mitigation_state("too-early", "NoRegression")
    assert "no deploy regression to roll back" in status["mitigation"]["reason"]
    assert status["step"] == "Diagnose"
    assert story.rescue_commits() == []


def test_min_firing_gate_holds_and_says_so(story: Story) -> None:
    story.policy(gates={"minFiringSeconds": 10 * 86400})
    story.rescue("young")
    status = story.mitigation_state("young", "Held")
    assert status["mitigation"]["heldBy"] == "min_firing"
    assert status["timeline"][-1]["event"] == "gate_held_min_firing"
    events = client.CoreV1Api(story.api).list_namespaced_event(
        story.namespace, field_selector="involvedObject.name=young"
    )
    assert "gate_held_min_firing" in {e.reason for e in events.items} or eventually(
        lambda: (
            "gate_held_min_firing"
            in {
                e.reason
                for e in client.CoreV1Api(story.api)
                .list_namespaced_event(story.namespace, field_selector="involvedObject.name=young")
                .items
            }
        ),
        what="the gate's Event",
    )
    assert story.rescue_commits() == []


def test_budget_gate_holds_when_the_cluster_budget_is_spent(story: Story) -> None:
    story.policy(gates={"maxConcurrent": 0})
    story.rescue("over-budget")
    status = story.mitigation_state("over-budget", "Held")
    assert status["mitigation"]["heldBy"] == "budget"
    assert story.rescue_commits() == []


def test_one_open_mitigation_per_target(story: Story) -> None:
    story.policy()
    story.rescue("first")
    story.mitigation_state("first", "Committed")
    story.rescue("second")
    status = story.mitigation_state("second", "Held")
    assert status["mitigation"]["heldBy"] == "one_per_target"
    assert f"{story.namespace}/first" in status["mitigation"]["reason"]
    assert len(story.rescue_commits()) == 1


def test_cooldown_turns_the_commit_into_a_proposal_a_person_approves(story: Story) -> None:
    story.policy()
    story.rescue("earlier")
    story.mitigation_state("earlier", "Committed")
    story.resolve("earlier")
    story.mitigation_state("earlier", "Verified")

    # A new bad deploy, then a new incident within the cooldown.
    story.deploy("shop/checkout:v3", when=datetime.now(UTC) - timedelta(seconds=30))
    story.rescue("again", start=datetime.now(UTC) - timedelta(seconds=5))
    status = story.mitigation_state("again", "Proposed")
    assert status["mitigation"]["heldBy"] == "cooldown"
    assert "shop/checkout:v3" in status["mitigation"]["proposal"]["diff"]
    assert len(story.rescue_commits()) == 1

    approved = story.cli("approve", "again")
    assert approved.returncode == 0, approved.stderr
    story.mitigation_state("again", "Committed")
    assert len(story.rescue_commits()) == 2
    entry = [e for e in story.status("again")["timeline"] if e["event"] == "mitigation_approved"]
    assert "rescue-admin" in entry[0]["message"]


def test_propose_mode_waits_and_reject_drops_the_change(story: Story) -> None:
    story.policy(triage={"open": ["SEV3"]})
    story.rescue("minor", "SEV3")
    status = story.mitigation_state("minor", "Proposed")
    proposal = status["mitigation"]["proposal"]
    assert "-          image: shop/checkout:v2" in proposal["diff"]
    assert "+          image: shop/checkout:v1" in proposal["diff"]
    assert "Rescue: " in proposal["message"]

    rejected = story.cli("reject", "minor", "--reason", "the v2 fix is already rolling out")
    assert rejected.returncode == 0, rejected.stderr
    status = story.mitigation_state("minor", "Rejected")
    assert status["step"] == "Diagnose"
    assert story.rescue_commits() == []


def test_verification_waits_for_flux_to_apply_and_the_alert_to_resolve(story: Story) -> None:
    flux = client.CustomObjectsApi(story.api)
    flux.create_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        story.namespace,
        "kustomizations",
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "shop"},
            "spec": {"path": f"./apps/{story.namespace}"},
        },
    )
    story.policy()
    story.rescue("verify")
    commit = story.mitigation_state("verify", "Committed")["mitigation"]["commit"]
    status = story.wait(
        "verify",
        lambda s: any(c["type"] == "MitigationVerified" for c in s.get("conditions", [])),
        "the verification condition",
    )
    (cond,) = [c for c in status["conditions"] if c["type"] == "MitigationVerified"]
    assert cond["status"] == "False"
    assert f"Kustomization {story.namespace}/shop to apply {commit[:12]}" in cond["message"]
    assert "the alert to resolve" in cond["message"]

    flux.patch_namespaced_custom_object_status(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        story.namespace,
        "kustomizations",
        "shop",
        {"status": {"lastAppliedRevision": f"main@sha1:{commit}"}},
        _content_type="application/merge-patch+json",
    )
    story.resolve("verify")
    status = story.mitigation_state("verify", "Verified")
    assert status["mitigation"]["appliedRevision"] == commit
    assert status["step"] == "Diagnose"


def test_scale_strategy_raises_replicas_within_the_bound(story: Story) -> None:
    story.policy(mitigation={"strategy": "scale", "scale": {"factor": 2, "maxReplicas": 3}})
    story.rescue("busy")
    status = story.mitigation_state("busy", "Committed")
    assert (
        status["mitigation"]["change"] == f"scale {story.namespace}/checkout from 2 to 3 replicas"
    )
    story.work.pull()
    content = story.work.git("show", f"HEAD:{story.path}/deployment.yaml")
    assert "replicas: 3  # scaled by hand during sales" in content
    assert "shop/checkout:v2" in content


def test_crash_after_push_is_recorded_not_committed_again(
    story: Story, tmp_path: Path, git_token: str
) -> None:
    # An operator pushed the rollback and died before writing the status: simulate exactly that
    # with the same code path, then let the running operator pick the rescue up.
    story.policy()
    story.rescue("crashed", "SEV3")  # stays Pending: no policy opens SEV3 here
    policy = story.parsed_policy()
    env = ClusterEnvironment(api_client=story.api, cache_root=tmp_path / "dead-operator-cache")
    view = story.view("crashed", fingerprint="fp-crashed")
    lost = mitigation.advance(view, policy, mitigation.Facts(now=datetime.now(UTC)), env)
    assert lost.mitigation["state"] == "Committed"
    assert len(story.rescue_commits()) == 1

    story.rescues.patch(story.namespace, "crashed", {"spec": {"severity": "SEV1"}})
    status = story.mitigation_state("crashed", "Committed")
    assert status["mitigation"]["commit"] == lost.mitigation["commit"]
    assert "mitigation_recorded" in [e["event"] for e in status["timeline"]]
    assert len(story.rescue_commits()) == 1


def test_a_concurrent_human_push_is_kept_and_the_rollback_rebuilt_on_top(
    story: Story, tmp_path: Path, git_token: str
) -> None:
    class HumanPushesFirst(git.Repository):
        pushed = False

        def push(self, sha: str) -> None:
            if not HumanPushesFirst.pushed:
                HumanPushesFirst.pushed = True
                human = WorkClone(story.url, token=git_token, path=tmp_path / "human")
                human.pull()
                human.write("README.md", "on-call notes\n")
                human.commit("Add on-call notes")
                human.push()
            super().push(sha)

    class Env(ClusterEnvironment):
        def repository(self, policy: Policy) -> git.Repository:
            base = super().repository(policy)
            return HumanPushesFirst(
                base.url,
                base.branch,
                cache_root=tmp_path / "cache",
                credentials=base.credentials,
                identity=base.identity,
            )

    story.policy()
    story.rescue("racing", "SEV3")
    policy = story.parsed_policy()
    view = story.view("racing", fingerprint="fp")
    result = mitigation.advance(
        view,
        policy,
        mitigation.Facts(now=datetime.now(UTC)),
        Env(api_client=story.api, cache_root=tmp_path),
    )
    assert result.mitigation["state"] == "Committed", result.mitigation.get("reason")
    story.work.pull()
    assert story.work.git("log", "-1", "--format=%s", "HEAD^").strip() == "Add on-call notes"
    assert story.work.git("rev-parse", "HEAD").strip() == result.mitigation["commit"]
    assert "shop/checkout:v1" in story.work.git("show", f"HEAD:{story.path}/deployment.yaml")
    assert (story.work.path / "README.md").read_text() == "on-call notes\n"
    assert len(story.rescue_commits()) == 1


def test_two_more_operators_still_make_exactly_one_commit(
    story: Story, cluster: controlplane.Cluster, tmp_path: Path, run_dir: Path
) -> None:
    extra = [
        stack.start_operator(
            cluster,
            folder=run_dir,
            name=f"replica-{story.namespace}-{i}",
            extra_args=("--git-cache", str(tmp_path / f"cache-{i}")),
        )
        for i in range(2)
    ]
    try:
        story.policy()
        story.rescue("crowded")
        story.mitigation_state("crowded", "Committed")
        # Give the other two every chance to push a second commit: wait until each has seen
        # the rescue and gone quiet about it.
        for process in extra:
            eventually(
                lambda p=process: f"{story.namespace}/crowded" in p.tail(5000),
                what=f"{process.name} to handle the rescue",
            )
        time.sleep(2)
        assert len(story.rescue_commits()) == 1
    finally:
        for process in extra:
            process.stop()


def test_an_unreachable_remote_is_retried_and_the_mitigation_lands_when_it_is_back(
    story: Story, git_server: GitServer
) -> None:
    story.policy()
    git_server.reject_pushes(True)
    try:
        story.rescue("offline")
        status = story.wait(
            "offline",
            lambda s: any(
                c["type"] == "GitReachable" and c["status"] == "False"
                for c in s.get("conditions", [])
            ),
            "the GitReachable condition",
        )
        assert "cannot be reached" in status["timeline"][-1]["message"]
        assert story.rescue_commits() == []
    finally:
        git_server.reject_pushes(False)
    status = story.mitigation_state("offline", "Committed")
    (cond,) = [c for c in status["conditions"] if c["type"] == "GitReachable"]
    assert cond["status"] == "True"
    assert len(story.rescue_commits()) == 1


AUTOMATION = """apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageUpdateAutomation
metadata:
  name: shop-images
  namespace: flux-system
spec:
  interval: 5m
  sourceRef: {{kind: GitRepository, name: gitops}}
  update:
    strategy: Setters
    path: ./apps/{namespace}
"""


def test_image_automation_is_held_by_the_rollback_and_released_at_conclusion(
    story: Story,
) -> None:
    # The target is under image automation: a setter comment, an automation covering its path.
    story.work.write(
        f"{story.path}/deployment.yaml",
        deployment(name="checkout", namespace=story.namespace, image="shop/checkout:v2").replace(
            "image: shop/checkout:v2",
            'image: shop/checkout:v2 # {"$imagepolicy": "flux-system:checkout"}',
        ),
    )
    story.work.write(
        "clusters/flux/image-automation.yaml", AUTOMATION.format(namespace=story.namespace)
    )
    story.work.commit("Automate checkout images", when=NOW - timedelta(hours=1, minutes=30))
    story.work.push()
    story.policy(gates={"stableSeconds": 0})
    story.rescue("automated")

    status = story.mitigation_state("automated", "Committed")
    assert status["mitigation"]["heldAutomation"] == [
        {"name": "shop-images", "file": "clusters/flux/image-automation.yaml"}
    ]
    story.work.pull()
    held = story.work.git("show", "HEAD:clusters/flux/image-automation.yaml")
    assert "  suspend: true" in held
    assert "Image automation suspended until the rescue is concluded" in story.work.git(
        "log", "-1", "--format=%B"
    )

    story.resolve("automated")
    story.mitigation_state("automated", "Verified")
    story.complete_the_record("automated")
    concluded = story.cli(
        "conclude",
        "automated",
        "--summary",
        "rolled back",
        "--route",
        "none",
        "--action-item",
        "Pin the image policy during incidents",
    )
    assert concluded.returncode == 0, concluded.stderr
    status = story.wait(
        "automated",
        lambda s: bool((s.get("mitigation") or {}).get("released")),
        "the automation to be released",
    )
    story.work.pull()
    assert "  suspend: false" in story.work.git("show", "HEAD:clusters/flux/image-automation.yaml")
    assert f"Rescue-Release: {story.namespace}/automated" in story.work.git(
        "log", "-1", "--format=%B"
    )
    assert status["mitigation"]["released"] == story.work.git("rev-parse", "HEAD").strip()
    assert "automation_released" in [e["event"] for e in status["timeline"]]


def test_rollback_over_the_file_transport(story: Story, git_server: GitServer) -> None:
    story.policy(url=f"file://{git_server.root / 'gitops' / story.namespace}.git")
    story.rescue("local-remote")
    status = story.mitigation_state("local-remote", "Committed")
    story.work.pull()
    assert story.work.git("rev-parse", "HEAD").strip() == status["mitigation"]["commit"]
    assert "shop/checkout:v1" in story.work.git("show", f"HEAD:{story.path}/deployment.yaml")


def test_a_policy_url_with_credentials_in_it_is_refused_without_acting(story: Story) -> None:
    story.policy(url=story.url.replace("http://", "http://git:secret@"))
    story.rescue("leaky")
    status = story.mitigation_state("leaky", "Failed")
    assert "must not contain credentials" in status["mitigation"]["reason"]
    assert "secret" not in str(status)
    assert story.rescue_commits() == []


def test_pull_request_mode_opens_one_pull_request_and_counts_once_it_is_merged(
    story: Story, git_server: GitServer, git_token: str
) -> None:
    bare = git_server.root / "gitops" / f"{story.namespace}.git"
    standin = GitHubStandIn(bare, owner="gitops", repo=story.namespace, token=git_token).start()
    try:
        story.policy(
            mitigation={"modes": {"SEV1": "pull-request"}},
            repository={"forge": {"apiURL": standin.api_url}},
        )
        story.rescue("reviewed")
        status = story.mitigation_state("reviewed", "PullRequestOpen")
        pull = status["mitigation"]["pullRequest"]
        assert [p["number"] for p in standin.pulls] == [pull["number"]]
        assert pull["url"] == standin.pulls[0]["html_url"]
        assert story.rescue_commits() == []  # nothing pushed to main

        # A reviewer merges it (a fast-forward of main to the pull request's branch).
        branch_head = subprocess.run(
            ["git", "--git-dir", str(bare), "rev-parse", f"refs/heads/{pull['branch']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(
            ["git", "--git-dir", str(bare), "update-ref", "refs/heads/main", branch_head],
            check=True,
        )
        status = story.mitigation_state("reviewed", "Committed")
        assert status["mitigation"]["commit"] == branch_head
        assert len(story.rescue_commits()) == 1
        assert "shop/checkout:v1" in story.work.git("show", f"HEAD:{story.path}/deployment.yaml")
        assert len(standin.pulls) == 1
    finally:
        standin.stop()


def test_rollback_over_ssh_with_a_private_key_from_the_secret(
    story: Story, git_server: GitServer, tmp_path: Path
) -> None:
    server = SshServer(tmp_path / "sshd").start()
    try:
        client.CoreV1Api(story.api).create_namespaced_secret(
            story.namespace,
            {
                "metadata": {"name": "gitops-ssh"},
                "data": {"ssh-privatekey": base64.b64encode(server.client_key.encode()).decode()},
            },
        )
        bare = git_server.root / "gitops" / f"{story.namespace}.git"
        story.policy(url=server.url(bare), repository={"secretRef": {"name": "gitops-ssh"}})
        story.rescue("over-ssh")
        status = story.mitigation_state("over-ssh", "Committed")
        story.work.pull()
        assert story.work.git("rev-parse", "HEAD").strip() == status["mitigation"]["commit"]
        assert "shop/checkout:v1" in story.work.git("show", f"HEAD:{story.path}/deployment.yaml")
    finally:
        server.stop()


def test_shelving_during_mitigate_holds_the_commit_until_resume(story: Story) -> None:
    # The gate holds for a few seconds; the rescue is shelved meanwhile and stays quiet after
    # the gate would have let it act, then commits once resumed.
    story.policy(gates={"minFiringSeconds": 6})
    story.rescue("parked", start=datetime.now(UTC))
    story.mitigation_state("parked", "Held")
    shelved = story.cli("shelve", "parked", "--reason", "waiting for the payments vendor")
    assert shelved.returncode == 0, shelved.stderr
    time.sleep(10)
    assert story.status("parked")["mitigation"]["state"] == "Held"
    assert story.rescue_commits() == []

    resumed = story.cli("resume", "parked")
    assert resumed.returncode == 0, resumed.stderr
    story.mitigation_state("parked", "Committed")
    assert len(story.rescue_commits()) == 1
    events = [e["event"] for e in story.status("parked")["timeline"]]
    assert events.index("rescue_resumed_v1") < events.index("mitigation_committed")


def test_diagnosis_aids_list_recent_changes_links_and_earlier_rescues(story: Story) -> None:
    story.policy()
    story.rescue("before")
    story.mitigation_state("before", "Committed")
    story.resolve("before")
    status = story.wait(
        "before", lambda s: "diagnosisAids" in s, "the first rescue's diagnosis aids"
    )
    aids = status["diagnosisAids"]
    assert [c["subject"] for c in aids["recentChanges"]] == [
        "Deploy checkout v2",
        "Deploy checkout v1 and cart v7",
    ]
    assert aids["path"] == story.path
    assert status["timeline"][-1]["event"] == "diagnosis_aids"

    # A second incident on the same target: the first rescue is its "known issue".
    story.rescue("again-later", start=NOW - timedelta(minutes=1))
    later = story.wait(
        "again-later", lambda s: "diagnosisAids" in s, "the second rescue's diagnosis aids"
    )
    assert f"{story.namespace}/before" in later["diagnosisAids"]["related"]


def test_a_mitigation_that_does_not_clear_the_alert_escalates_and_stops_automation(
    story: Story,
) -> None:
    story.policy(gates={"verifyWithinSeconds": 10, "cooldownSeconds": 0, "maxPerDay": 10})
    story.rescue("not-the-deploy")
    story.mitigation_state("not-the-deploy", "Committed")
    # The alert keeps firing past the window: the rollback was not the cure.
    status = story.mitigation_state("not-the-deploy", "Unverified")
    events = [e["event"] for e in status["timeline"]]
    assert events[-4:-2] == ["mitigation_unverified", "rescue_escalated"]
    assert status["mitigation"]["escalatedTo"] == "design"
    assert status["step"] == "Diagnose"

    # Another bad deploy and another incident on the same target: no automatic commit now.
    story.deploy("shop/checkout:v3", when=datetime.now(UTC) - timedelta(seconds=30))
    story.rescue("next-one", start=datetime.now(UTC) - timedelta(seconds=5))
    nxt = story.mitigation_state("next-one", "Proposed")
    assert nxt["mitigation"]["heldBy"] == "not_a_regression"
    assert f"{story.namespace}/not-the-deploy" in nxt["timeline"][-2]["message"]
    assert len(story.rescue_commits()) == 1


def test_an_incident_walks_from_rollback_to_review_as_people_record_their_findings(
    story: Story,
) -> None:
    story.policy(gates={"stableSeconds": 3})
    story.rescue("walk")
    story.mitigation_state("walk", "Committed")
    story.resolve("walk")
    story.wait("walk", lambda s: s.get("step") == "Diagnose", "Diagnose")

    diagnosed = story.cli(
        "diagnose",
        "walk",
        "--root-cause",
        "checkout 1.5.0 leaks connections",
        "--category",
        "deployment",
    )
    assert diagnosed.returncode == 0, diagnosed.stderr
    story.wait("walk", lambda s: s.get("step") == "Resolve", "Resolve")
    resolved = story.cli("resolve", "walk", "--fix", "close connections in 1.5.1")
    assert resolved.returncode == 0, resolved.stderr

    status = story.wait("walk", lambda s: s.get("step") == "Review", "Review")
    steps = [e["event"] for e in status["timeline"] if e["event"].startswith("step_")]
    assert steps == [
        "step_triage",
        "step_mitigate",
        "step_diagnose",
        "step_resolve",
        "step_review",
    ]
    assert "restoredAt" in status

    # The review is in the GitOps repository, written from the record.
    committed = story.wait(
        "walk", lambda s: bool((s.get("review") or {}).get("commit")), "the review's commit"
    )
    path = f"postmortems/{story.namespace}/walk.md"
    assert committed["review"]["path"] == path
    story.work.pull()
    first = story.work.git("show", f"HEAD:{path}")
    assert first.startswith("## Incident: ")
    assert "checkout 1.5.0 leaks connections (category: deployment)" in first

    # The checklist names the lessons and the routing until they are given; then it concludes.
    early = story.cli("conclude", "walk")
    assert early.returncode == 1
    assert "post-incident review (rescue review NAME --lessons" in early.stderr
    reviewed = story.cli("review", "walk", "--lessons", "Canary connection-heavy releases.")
    assert reviewed.returncode == 0, reviewed.stderr
    story.wait(
        "walk",
        lambda s: s["review"]["commit"] != committed["review"]["commit"],
        "the review to be committed again with the lessons",
    )
    story.work.pull()
    assert "Canary connection-heavy releases." in story.work.git("show", f"HEAD:{path}")
    assert f"Rescue-Review: {story.namespace}/walk" in story.work.git("log", "-1", "--format=%B")
    concluded = story.cli(
        "conclude",
        "walk",
        "--route",
        "refactoring",
        "--action-item",
        "Connection leak test -- owner: payments, due: 2026-12-17",
    )
    assert concluded.returncode == 0, concluded.stderr
    assert "is Completed" in concluded.stdout
    routed = story.status("walk")
    assert routed["routedTo"] == "refactoring"
    assert "findings_routed" in [e["event"] for e in routed["timeline"]]


def test_a_target_rescued_again_within_the_window_escalates_to_design(story: Story) -> None:
    story.policy(escalation={"recurringCount": 2, "recurringWindowSeconds": 86400})
    story.rescue("first-time")
    first = story.mitigation_state("first-time", "Committed")
    assert "escalatedTo" not in first
    story.rescue("second-time")
    status = story.wait(
        "second-time", lambda s: s.get("escalatedTo") == "design", "the recurring escalation"
    )
    (entry,) = [e for e in status["timeline"] if e["event"] == "rescue_escalated"]
    assert entry["message"] == (
        f"Escalated to design: {story.namespace}/checkout needed 2 rescues within 1 day(s) "
        f"(earlier: {story.namespace}/first-time)."
    )


@pytest.mark.parametrize("point", ["before-commit", "after-push", "verifying"])
def test_an_operator_killed_at_any_step_of_a_mitigation_finishes_it_with_one_commit(
    story: Story,
    point: str,
    operator: OperatorHandle,
    cluster: controlplane.Cluster,
    tmp_path: Path,
) -> None:
    story.policy()
    marker = tmp_path / "fired"
    env = {failpoints.ENV: f"{point}@{marker}"}
    args = ("--git-cache", str(tmp_path / "cache"))
    with operator.stopped():
        doomed = stack.start_operator(
            cluster, folder=tmp_path, name="doomed", extra_args=args, env=env
        )
        story.rescue("doomed")
        eventually(
            lambda: doomed.popen.poll() is not None,
            what=f"the operator to die at the failpoint {point}",
        )
        assert doomed.popen.returncode == -signal.SIGKILL
        assert marker.exists()
        # The same program, environment and cache, started again as a Deployment would.
        again = stack.start_operator(
            cluster, folder=tmp_path, name="restarted", extra_args=args, env=env
        )
        try:
            committed = story.mitigation_state("doomed", "Committed")
            story.resolve("doomed")
            status = story.mitigation_state("doomed", "Verified")
        finally:
            again.stop()
    commits = story.rescue_commits()
    assert len(commits) == 1
    assert commits[0].split()[0] == committed["mitigation"]["commit"]
    assert status["mitigation"]["commit"] == committed["mitigation"]["commit"]
    if point == "after-push":  # the restarted operator found the pushed commit, not its own
        assert "mitigation_recorded" in [e["event"] for e in status["timeline"]]


@pytest.fixture
def forge(story: Story, git_server: GitServer, git_token: str) -> Iterator[GitHubStandIn]:
    """The GitHub stand-in in front of the story's repository (owner gitops, named after it)."""
    bare = git_server.root / "gitops" / f"{story.namespace}.git"
    standin = GitHubStandIn(bare, owner="gitops", repo=story.namespace, token=git_token).start()
    yield standin
    standin.stop()


def _bare_git(forge: GitHubStandIn, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(forge.bare_repo), *args],
        capture_output=True,
        text=True,
        check=check,
    ).stdout.strip()


def _walk_to_review(story: Story, name: str) -> None:
    story.rescue(name)
    story.mitigation_state(name, "Committed")
    story.resolve(name)
    story.mitigation_state(name, "Verified")
    for args in (
        ("diagnose", name, "--root-cause", "checkout v2 leaks connections", "--category", "code"),
        ("resolve", name, "--fix", "close connections in v2.1"),
    ):
        done = story.cli(*args)
        assert done.returncode == 0, done.stderr
    story.wait(name, lambda s: s.get("step") == "Review", f"{name} to reach Review")


def test_review_pull_request_mode_carries_the_review_in_one_pull_request_unmerged(
    story: Story, forge: GitHubStandIn
) -> None:
    story.policy(
        gates={"stableSeconds": 0},
        repository={"forge": {"apiURL": forge.api_url}},
        review={"mode": "pull-request", "directory": "docs/reviews"},
    )
    # The forge is down when the review is first due: the operator tries again.
    forge.fail_next(503, method="GET", path="/pulls", headers={"Retry-After": "1"})
    _walk_to_review(story, "reviewed")

    opened = story.wait(
        "reviewed",
        lambda s: bool((s.get("review") or {}).get("pullRequest")),
        "the review's pull request",
    )["review"]
    branch = f"rescue-review/{story.namespace}/reviewed"
    path = f"docs/reviews/{story.namespace}/reviewed.md"
    [pull] = forge.pulls
    assert (pull["head"], pull["base"], pull["state"]) == (branch, "main", "open")
    assert opened["pullRequest"] == {
        "url": pull["html_url"],
        "number": pull["number"],
        "branch": branch,
    }
    assert opened["path"] == path
    assert _bare_git(forge, "rev-parse", f"refs/heads/{branch}") == opened["commit"]
    assert ("GET", "/pulls", 503) in [(m, p.split("?")[0][-6:], s) for m, p, s in forge.requests]
    # Nothing of the review is pushed to the branch itself.
    assert "docs" not in _bare_git(forge, "ls-tree", "--name-only", "main")

    # People add their lessons: one more commit on top of the same pull request's branch.
    reviewed = story.cli("review", "reviewed", "--lessons", "Canary connection-heavy releases.")
    assert reviewed.returncode == 0, reviewed.stderr
    updated = story.wait(
        "reviewed",
        lambda s: s["review"]["commit"] != opened["commit"],
        "the review to reach its pull request again",
    )
    assert len(forge.pulls) == 1
    head = _bare_git(forge, "rev-parse", f"refs/heads/{branch}")
    assert head == updated["review"]["commit"]
    assert _bare_git(forge, "rev-parse", f"{head}^") == opened["commit"]  # a fast-forward
    assert "Canary connection-heavy releases." in _bare_git(forge, "show", f"{head}:{path}")
    events = [e["event"] for e in updated["timeline"]]
    assert events.count("review_pull_request_opened") == 1
    assert "review_pull_request_updated" in events
    entry = [e for e in updated["timeline"] if e["event"] == "review_pull_request_updated"][-1]
    assert "counts as done for the exit checklist" in entry["message"]

    # The review counts as done while its pull request is still open: conclusion goes ahead.
    concluded = story.cli(
        "conclude", "reviewed", "--route", "none", "--action-item", "Leak test -- owner: payments"
    )
    assert concluded.returncode == 0, concluded.stderr
    assert forge.pulls[0]["state"] == "open"

    # Once merged, a later change is a follow-up pull request from the same branch.
    forge.merge(pull["number"])
    assert "reviewed.md" in _bare_git(forge, "ls-tree", "-r", "--name-only", "main")
    again = story.cli("review", "reviewed", "--action-item", "Alert on connection count")
    assert again.returncode == 0, again.stderr
    followed = story.wait(
        "reviewed",
        lambda s: s["review"]["pullRequest"]["number"] != pull["number"],
        "a follow-up pull request",
    )
    assert [p["state"] for p in forge.pulls] == ["closed", "open"]
    assert followed["review"]["pullRequest"]["branch"] == branch
    assert "Alert on connection count" in _bare_git(forge, "show", f"{branch}:{path}")


def test_routed_findings_open_one_tracker_issue_and_a_forge_outage_only_delays_it(
    story: Story, forge: GitHubStandIn, tmp_path: Path
) -> None:
    tracker_spec = {"issues": True, "labels": ["rescue-findings", "design"]}
    story.policy(
        gates={"stableSeconds": 0},
        repository={"forge": {"apiURL": forge.api_url}},
        tracker=tracker_spec,
    )
    _walk_to_review(story, "routed")
    reviewed = story.cli("review", "routed", "--lessons", "Canary connection-heavy releases.")
    assert reviewed.returncode == 0, reviewed.stderr
    story.wait(
        "routed",
        lambda s: (
            (s.get("review") or {}).get("trigger")
            == review.basis(story.rescues.get(story.namespace, "routed")["spec"])
        ),
        "the review with the lessons",
    )

    forge.fail_next(503, method="GET", path="/issues", headers={"Retry-After": "1"})
    concluded = story.cli(
        "conclude",
        "routed",
        "--summary",
        "rolled back; the leak is a design flaw",
        "--route",
        "design",
        "--action-item",
        "Pool connections per tenant -- owner: payments",
    )
    assert concluded.returncode == 0, concluded.stderr  # the outage does not hold it back
    status = story.wait("routed", lambda s: bool(s.get("routedIssue")), "the findings issue")

    [issue] = forge.issues
    assert status["routedIssue"] == {
        "url": f"{forge.api_url}/gitops/{story.namespace}/issues/{issue['number']}",
        "number": issue["number"],
    }
    assert issue["title"] == f"Rescue findings for design: {story.namespace}/checkout"
    assert issue["labels"] == ["rescue-findings", "design"]
    body = issue["body"]
    assert "checkout v2 leaks connections (category: code)" in body
    assert "close connections in v2.1" in body
    assert "- [ ] Pool connections per tenant -- owner: payments" in body
    assert f"`postmortems/{story.namespace}/routed.md` on branch `main`" in body
    assert body.rstrip().splitlines()[-1] == f"<!-- rescue: {story.namespace}/routed -->"
    assert ("GET", 503) in [(m, s) for m, p, s in forge.requests if "/issues" in p]
    assert status["phase"] == "Completed"
    entry = [e for e in status["timeline"] if e["event"] == "findings_issue_opened"]
    assert len(entry) == 1 and f"#{issue['number']}" in entry[0]["message"]
    eventually(
        lambda: (
            "findings_issue_opened"
            in {
                e.reason
                for e in client.CoreV1Api(story.api)
                .list_namespaced_event(story.namespace, field_selector="involvedObject.name=routed")
                .items
            }
        ),
        what="the findings_issue_opened Event",
    )

    # An operator that died before recording the issue finds it again instead of a second one.
    policy = Policy.parse(
        story.namespace,
        "shop",
        {
            "repository": {
                "url": story.url,
                "secretRef": {"name": "gitops-credentials"},
                "forge": {"apiURL": forge.api_url},
            },
            "tracker": tracker_spec,
        },
    )
    record = story.rescues.get(story.namespace, "routed")
    composed = tracker.compose(
        story.namespace,
        "routed",
        record["spec"],
        {**record["status"], "routedIssue": None},
        branch="main",
    )
    env = ClusterEnvironment(api_client=story.api, cache_root=tmp_path / "dead-operator-cache")
    found = tracker.open_issue(policy, env, composed)
    assert (found.number, found.created) == (issue["number"], False)
    assert len(forge.issues) == 1


def _notification_for(story: Story, **labels: str) -> dict[str, Any]:
    body = notification(namespace=story.namespace, starts_at=format_time(INCIDENT))
    for place in (body["alerts"][0]["labels"], body["commonLabels"]):
        place.update(team="shop", **labels)
    return body


@pytest.mark.parametrize(
    "deployment",
    ["../../../etc", "checkout/../../cart", "..", "Checkout_Bad Name", "-rf", "a" * 300],
)
def test_a_target_name_that_could_leave_its_folder_is_refused_and_nothing_is_written(
    story: Story, post: Any, deployment: str
) -> None:
    story.policy()
    before = story.work.git("ls-remote", story.url, "refs/heads/main").split()[0]
    answer = post(_notification_for(story, deployment=deployment))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json()["detail"]  # a reason, not a stack trace
        assert story.rescues.list(story.namespace) == []
        return
    (rescue,) = eventually(lambda: story.rescues.list(story.namespace), what="the rescue")
    name = rescue["metadata"]["name"]
    status = story.wait(
        name,
        lambda s: (s.get("mitigation") or {}).get("state") in ("NotApplicable", "Failed"),
        "the mitigation to be refused",
    )
    assert "path" in status["mitigation"]["reason"] or "name" in status["mitigation"]["reason"]
    assert story.work.git("ls-remote", story.url, "refs/heads/main").split()[0] == before


def test_text_that_looks_like_a_trailer_never_becomes_one(story: Story, post: Any) -> None:
    story.policy()
    forged = "CheckoutErrors\nRescue: other/forged\nRolls-Back: 0000000"
    answer = post(_notification_for(story, alertname=forged, deployment="checkout"))
    assert answer.status_code == 200, answer.text
    (rescue,) = eventually(lambda: story.rescues.list(story.namespace), what="the rescue")
    name = rescue["metadata"]["name"]
    commit = story.mitigation_state(name, "Committed")["mitigation"]["commit"]
    story.work.pull()
    trailers = story.work.git(
        "log", "-1", "--format=%(trailers:key=Rescue,valueonly)", commit
    ).split()
    assert trailers == [f"{story.namespace}/{name}"]
    message = story.work.git("log", "-1", "--format=%B", commit)
    assert "\nRescue: other/forged" not in message
