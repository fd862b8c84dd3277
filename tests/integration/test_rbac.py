"""The operator completes a full reconcile with exactly the rights manifests/ grants it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.names import KIND
from modeldeploy.control.apply import Applier
from modeldeploy.control.kinds import BY_KIND, new_cache
from modeldeploy.control.reconcile import Reconciler
from modeldeploy.control.watches import relist
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from modeldeploy.kube.workqueue import RetryLaterError
from testbed.cluster.localcluster import write_kubeconfig
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import wait_for

from .conftest import REPO, Cluster, Operator
from .test_canary import canary_sample

pytestmark = pytest.mark.timeout(180)
SA_NAMESPACE, SA_NAME = "modeldeploy-system", "modeldeploy"


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "rbac.yaml"))
    token = cluster.kubectl("create", "token", SA_NAME, "-n", SA_NAMESPACE, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    write_kubeconfig(path, server["server"], Path(server["certificate-authority"]), token, user=SA_NAME)
    return path


def test_full_canary_with_manifest_rbac(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    tmp_path: Path,
    traffic: Callable[..., TrafficDriver],
) -> None:
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "sa-kubeconfig")
    op = start_operator(kubeconfig=kubeconfig)
    body = canary_sample()
    body["spec"].pop("replicas")
    body["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 3}
    # Pre-traffic checks read the golden ConfigMap: the one right they add (configmaps get).
    golden = {"configMapRef": {"name": "golden", "key": "requests.jsonl"}}
    body["spec"]["rollout"]["preTraffic"] = {"warmupRequests": 2, "goldenRequests": golden}
    cluster.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "golden"}, "data": {"requests.jsonl": '{"instances": [1.0]}'}}
    )
    cluster.create_md(namespace, body)
    cluster.wait_phase(namespace, "mnist", "Ready")
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 2
    assert md["status"]["history"][-1]["result"] == "Promoted"

    # The promoted canary keeps its size: the operator handed its replica count to the HPA.
    # The promotion is recorded in status before the children change, so the hand-over
    # lands a moment after Ready.
    def replica_owners() -> set[str]:
        dep = cluster.apps.read_namespaced_deployment("mnist-v2", namespace)
        assert dep.spec.replicas == 2
        fields = [(m.manager, str(m.fields_v1.get("f:spec", {}))) for m in dep.metadata.managed_fields]
        return {manager for manager, spec in fields if "f:replicas" in spec}

    wait_for(lambda: "modeldeploy" not in replica_owners(), 30, what="the replica count handed to the HPA")
    assert "Forbidden" not in op.log()
    assert " 403" not in op.log()


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("get", "secrets"),
        ("list", "configmaps"),
        ("update", "leases.coordination.k8s.io"),  # only its own Lease, in its own namespace
        ("create", "modeldeployments.serving.modeldeploy.dev"),
        ("create", "pods"),
        ("delete", "modeldeployments.serving.modeldeploy.dev"),
        ("update", "clusterroles"),
    ],
)
def test_operator_rights_are_least(cluster: Cluster, verb: str, resource: str) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "namespace.yaml"))
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "rbac.yaml"))
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        f"--as=system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
        "-A",
        check=False,
    )
    assert result.stdout.strip() == "no"


def namespace_user(cluster: Cluster, namespace: str, name: str, role: str) -> str:
    """A ServiceAccount bound to the built-in ``role`` ClusterRole in ``namespace`` only, as a
    namespace admin grants a team: no rule about ModelDeployments written for it."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        name,
        f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{name}",
        "-n",
        namespace,
    )
    return f"system:serviceaccount:{namespace}:{name}"


def can(cluster: Cluster, user: str, verb: str, resource: str, namespace: str, subresource: str = "") -> bool:
    # kubectl reads TYPE/NAME in the resource argument: a subresource goes in its own flag.
    sub = [f"--subresource={subresource}"] if subresource else []
    args = ["auth", "can-i", verb, resource, *sub, f"--as={user}", "-n", namespace]
    return cluster.kubectl(*args, check=False).stdout.strip() == "yes"


def test_namespace_editors_use_modeldeployments_and_viewers_only_read_them(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", str(REPO / "manifests" / "aggregate-roles.yaml"))
    editor = namespace_user(cluster, namespace, "editor", "edit")
    viewer = namespace_user(cluster, namespace, "viewer", "view")
    resource = "modeldeployments.serving.modeldeploy.dev"
    # The controller-manager's aggregation controller copies the rules into edit and view.
    wait_for(
        lambda: can(cluster, editor, "create", resource, namespace), 30, what="edit aggregating the rules"
    )
    wait_for(lambda: can(cluster, viewer, "list", resource, namespace), 30, what="view aggregating the rules")

    body = yaml.safe_load((REPO / "manifests" / "samples" / "mnist.yaml").read_text())
    as_editor = [f"--as={editor}", "-n", namespace]
    cluster.kubectl("create", "-f", "-", *as_editor, stdin=yaml.safe_dump(body))
    cluster.kubectl("patch", "md", "mnist", "--type=merge", "-p", '{"spec": {"replicas": 3}}', *as_editor)
    cluster.kubectl("scale", "md/mnist", "--replicas=2", *as_editor)
    # The plugin's promote, run with the editor's own credentials.
    token = cluster.kubectl("create", "token", "editor", "-n", namespace, "--duration=10m").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    kubeconfig = tmp_path / "editor-kubeconfig"
    write_kubeconfig(kubeconfig, admin["server"], Path(admin["certificate-authority"]), token, user="editor")
    promote = subprocess.run(
        [
            sys.executable,
            "-m",
            "modeldeploy.cli.main",
            "promote",
            "mnist",
            "-n",
            namespace,
            f"--kubeconfig={kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert promote.returncode == 0, promote.stdout + promote.stderr
    md = cluster.get_md(namespace, "mnist")
    assert "serving.modeldeploy.dev/promote" in md["metadata"]["annotations"]
    assert md["spec"]["replicas"] == 2

    as_viewer = [f"--as={viewer}", "-n", namespace]
    got = json.loads(cluster.kubectl("get", "md", "mnist", "-o", "json", *as_viewer).stdout)
    assert got["metadata"]["name"] == "mnist"
    refused = cluster.kubectl(
        "patch", "md", "mnist", "--type=merge", "-p", '{"spec": {"replicas": 1}}', *as_viewer, check=False
    )
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    # Status stays the operator's to write, for editors too.
    assert not can(cluster, editor, "patch", resource, namespace, subresource="status")
    assert can(cluster, editor, "patch", resource, namespace, subresource="scale")


def test_a_refused_status_write_and_a_relist_read_the_resource_with_the_manifest_s_rights(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The two paths that GET one ModelDeployment, driven for certain on the real API server
    with the ServiceAccount's token: a status write computed from a version someone has
    since changed (409, then the resource is read again) and a relist that finds a version
    its cache lacks. Under a ClusterRole without ``get`` both were 403s."""
    kube = Kube(load_client_config(2, str(service_account_kubeconfig(cluster, tmp_path / "sa"))), BY_KIND)
    cluster.create_md(namespace, canary_sample())
    cache = new_cache()
    stale = cluster.get_md(namespace, "mnist")
    cache.upsert(KIND, stale)
    # A person's edit between the operator's read and its status write.
    edited = cluster.patch_md(namespace, "mnist", {"metadata": {"labels": {"team": "search"}}})
    writes = Writes(kube)
    reconciler = Reconciler(writes, cache, Applier(kube, cache), clock=writes.now, gate=lambda *_: False)
    with pytest.raises(RetryLaterError, match="changed while this pass ran"):
        reconciler.reconcile(namespace, "mnist")
    fresh = cache.get(KIND, namespace, "mnist")
    assert fresh is not None
    assert fresh["metadata"]["resourceVersion"] == edited["metadata"]["resourceVersion"]
    # A relist into a cache that lacks the resource reads its body.
    relisted = new_cache()
    assert relist(kube, relisted, namespace) == {"mnist"}
    assert relisted.get(KIND, namespace, "mnist") is not None
