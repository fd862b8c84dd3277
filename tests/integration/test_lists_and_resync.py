"""What the operator reads on the real control plane, from the audit log: kopf's first list
of the ModelDeployments comes in pages; and the periodic resync. No watch reports the
ConfigMaps and Services, so now and then each resource's pass reads their versions and
applies again what someone changed or deleted; on a converged cluster it writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from modeldeploy.kube.client import LIST_PAGE
from testbed.cluster.localcluster import OPERATOR_USER
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator, sample
from .test_leader_election import WRITES, audit_entries

pytestmark = pytest.mark.timeout(180)
RESYNC_SECONDS = "2"


def operator_requests(cluster: Cluster, namespace: str, since: datetime, resources: set[str]) -> list[str]:
    """The operator's finished requests about ``resources`` in ``namespace``, as 'verb resource name'."""
    return [
        f"{entry['verb']} {entry['objectRef']['resource']} {entry['objectRef'].get('name', '')}"
        for entry in audit_entries(cluster, since)
        if entry.get("stage") == "ResponseComplete"
        and entry.get("user", {}).get("username") == OPERATOR_USER
        and (entry.get("objectRef") or {}).get("namespace") == namespace
        and (entry.get("objectRef") or {}).get("resource") in resources
    ]


def test_a_resync_reads_unwatched_children_and_repairs_only_what_drifted(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    assert cluster.local is not None  # its own user: the audit log tells its requests apart
    start_operator(kubeconfig=cluster.local.operator_kubeconfig, MODELDEPLOY_RESYNC_SECONDS=RESYNC_SECONDS)
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    config_name = "mnist-v1-config"
    unwatched = {"configmaps", "services"}
    since = datetime.now(UTC)

    def resyncs_seen() -> int:
        reads = operator_requests(cluster, namespace, since, unwatched)
        return sum(1 for r in reads if r == f"get configmaps {config_name}")

    # Converged: resync after resync reads each unwatched child and writes none of them.
    wait_for(lambda: resyncs_seen() >= 2, 30, what="two resyncs' reads")
    requests = operator_requests(cluster, namespace, since, unwatched)
    assert {r.split()[0] for r in requests} == {"get"}, requests
    assert "get services mnist" in requests
    # A ConfigMap edited by hand is put back by the next resync.
    original = cluster.core.read_namespaced_config_map(config_name, namespace).data
    cluster.core.patch_namespaced_config_map(config_name, namespace, {"data": {"models.config": "edited"}})
    wait_for(
        lambda: cluster.core.read_namespaced_config_map(config_name, namespace).data == original,
        30,
        what="the edited ConfigMap put back",
    )
    # A Service deleted by hand is made again.
    cluster.core.delete_namespaced_service("mnist", namespace)
    wait_for(lambda: cluster.core.list_namespaced_service(namespace).items, 30, what="the Service made again")
    # Writes went to exactly the two children that drifted.
    written = {r for r in operator_requests(cluster, namespace, since, unwatched) if r.split()[0] in WRITES}
    assert written == {f"patch configmaps {config_name}", "patch services mnist"}, written


def test_the_operator_lists_model_deployments_in_pages(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    """kopf's first list of the ModelDeployments, like the operator's own lists, asks for pages:
    a replica starting beside thousands never holds them all decoded at once."""
    assert cluster.local is not None
    since = datetime.now(UTC)
    start_operator(kubeconfig=cluster.local.operator_kubeconfig)
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    lists = [
        entry["requestURI"]
        for entry in audit_entries(cluster, since)
        if entry.get("user", {}).get("username") == OPERATOR_USER
        and entry.get("verb") == "list"
        and (entry.get("objectRef") or {}).get("resource") == "modeldeployments"
    ]
    assert lists, "the operator never listed the ModelDeployments"
    assert all(f"limit={LIST_PAGE}" in uri for uri in lists), lists


def test_a_restarted_operator_writes_none_of_the_children_it_finds_applied(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    """A new process has no memo of its applies: it reads each unwatched child to claim it,
    and takes one carrying this manifest's hash and fields as applied, writing nothing."""
    assert cluster.local is not None
    first = start_operator(kubeconfig=cluster.local.operator_kubeconfig)
    cluster.create_md(namespace, sample())
    cluster.wait_phase(namespace, "mnist", "Ready")
    first.stop()
    since = datetime.now(UTC)
    start_operator(kubeconfig=cluster.local.operator_kubeconfig)
    unwatched = {"configmaps", "services"}
    claimed = {"get configmaps mnist-v1-config", "get services mnist"}
    wait_for(
        lambda: claimed <= set(operator_requests(cluster, namespace, since, unwatched)),
        30,
        what="the restarted operator reading its unwatched children",
    )
    requests = operator_requests(cluster, namespace, since, unwatched)
    assert [r for r in requests if r.split()[0] in WRITES] == [], requests
