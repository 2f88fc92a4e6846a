"""Every manifest under deploy/ is accepted by the real API server (server-side dry run)."""

from __future__ import annotations

from rescue import controlplane, stack


def test_deploy_base_passes_a_server_side_dry_run(
    cluster: controlplane.Cluster, default_namespace: str
) -> None:
    out = stack.kubectl(
        cluster, "apply", "-k", str(stack.REPO_ROOT / "deploy" / "base"), "--dry-run=server"
    )
    assert "deployment.apps/rescue-webhook created (server dry run)" in out
    assert "deployment.apps/rescue-operator created (server dry run)" in out
    assert "clusterrole.rbac.authorization.k8s.io/rescue-operator created (server dry run)" in out
