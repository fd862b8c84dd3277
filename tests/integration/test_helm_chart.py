"""charts/modeldeploy read by helm (built from its Go module) and applied to the real API
server: lint, template with the defaults and with every option, server-side dry run, and an
install for real whose objects are what the chart promises. The operator the chart installs
running as pods is tested on the real node (tests/node/test_operator_in_cluster.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from modeldeploy.control.notices import load_config
from testbed.cluster.localcluster import versions
from testbed.support.wait import wait_for
from tests.support.tools import helm as run_helm

from .conftest import Cluster

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modeldeploy"
KUBE_VERSION = versions()["K8S_VERSION"].removeprefix("v")  # the test API server's
EVERYTHING_ON = [
    "--set=podMonitor.enabled=true",
    "--set=prometheusRule.enabled=true",
    "--set=dashboard.enabled=true",
    "--set=logFormat=json",
    "--set=notifications.webhooks[0].name=team",
    "--set=notifications.webhooks[0].url=http://127.0.0.1:9/hook",
    "--set=notifications.webhooks[0].events={RolledBack,Aborted}",
]


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_helm(cluster.kubeconfig, *args, check=check)


def template(cluster: Cluster, namespace: str, *options: str) -> list[dict[str, Any]]:
    text = helm(
        cluster, "template", "md", str(CHART), "-n", namespace, f"--kube-version={KUBE_VERSION}", *options
    ).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


@pytest.mark.parametrize("options", [[], EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_helm_lint_passes_strict(cluster: Cluster, options: list[str]) -> None:
    result = helm(cluster, "lint", "--strict", str(CHART), *options)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_a_wrong_log_format_is_refused_by_name(cluster: Cluster, namespace: str) -> None:
    result = helm(
        cluster,
        "template",
        "md",
        str(CHART),
        f"--kube-version={KUBE_VERSION}",
        "--set=logFormat=xml",
        check=False,
    )
    assert result.returncode != 0
    assert "logFormat must be text or json" in result.stderr


@pytest.mark.parametrize("options", [[], EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_the_rendered_chart_passes_a_server_side_dry_run(
    cluster: Cluster, namespace: str, options: list[str]
) -> None:
    documents = template(cluster, namespace, *options)
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(documents)
    )
    applied = result.stdout
    for document in documents:
        assert f"{document['kind'].lower()}" in applied.lower()
    kinds = sorted({d["kind"] for d in documents})
    expected = {
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    }
    if options:
        expected |= {"ConfigMap", "PodMonitor", "PrometheusRule", "Secret"}
    assert set(kinds) == expected


def test_the_charts_rights_and_rules_are_the_manifests(cluster: Cluster, namespace: str) -> None:
    documents = template(cluster, namespace, *EVERYTHING_ON)
    manifests = [d for d in yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text()) if d]
    assert by_kind(documents, "ClusterRole")[0]["rules"] == by_kind(manifests, "ClusterRole")[0]["rules"]
    assert by_kind(documents, "Role")[0]["rules"] == by_kind(manifests, "Role")[0]["rules"]
    rules = yaml.safe_load((REPO / "integrations" / "prometheus" / "rules.yaml").read_text())
    assert by_kind(documents, "PrometheusRule")[0]["spec"] == rules
    dashboard = by_kind(documents, "ConfigMap")[0]["data"]["modeldeploy.json"]
    assert json.loads(dashboard) == json.loads(
        (REPO / "integrations" / "grafana" / "modeldeploy.json").read_text()
    )


def test_the_charts_notifications_file_is_one_the_operator_reads(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    documents = template(cluster, namespace, *EVERYTHING_ON)
    (secret,) = by_kind(documents, "Secret")
    path = tmp_path / "notifications.yaml"
    path.write_text(secret["stringData"]["notifications.yaml"])
    (webhook,) = load_config(path).webhooks
    assert (webhook.name, webhook.url, [e.value for e in webhook.events]) == (
        "team",
        "http://127.0.0.1:9/hook",
        ["RolledBack", "Aborted"],
    )
    (deployment,) = by_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "notifications")
    assert env["MODELDEPLOY_NOTIFICATIONS_CONFIG"] == mount["mountPath"] + "/notifications.yaml"
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "notifications")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    # The operator reads the file at start: a new one must roll the pods.
    assert "checksum/notifications" in pod["metadata"]["annotations"]
    (plain,) = by_kind(template(cluster, namespace), "Deployment")  # no webhooks: no file
    assert "MODELDEPLOY_NOTIFICATIONS_CONFIG" not in str(plain)


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[str]:
    yield "md"
    helm(cluster, "uninstall", "md", "-n", namespace, "--wait", check=False)


def test_helm_install_confined_to_a_namespace(cluster: Cluster, namespace: str, release: str) -> None:
    helm(
        cluster,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        f"--set=watchNamespaces={{{namespace}}}",
        "--set=replicas=2",
        "--wait",
        "--timeout=90s",
    )
    deployment = cluster.apps.read_namespaced_deployment("modeldeploy", namespace)
    assert deployment.status.ready_replicas == 2  # kwok's pods: scheduled, started, Ready
    args = deployment.spec.template.spec.containers[0].args
    assert f"--namespace={namespace}" in args
    assert "--all-namespaces" not in args
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env if e.value is not None}
    assert env["MODELDEPLOY_LEADER_ELECTION"] == "true"
    assert env["MODELDEPLOY_LEASE_DURATION_SECONDS"] == "10"
    # Confined: the rights are a RoleBinding in the watched namespace, no cluster-wide binding
    # but the two cluster-scoped reads kopf needs.
    authz = kubernetes.client.RbacAuthorizationV1Api(cluster.api)
    bindings = [b.role_ref.name for b in authz.list_namespaced_role_binding(namespace).items]
    assert f"modeldeploy-{namespace}" in bindings
    cluster_bindings = [
        b.metadata.name
        for b in authz.list_cluster_role_binding().items
        if b.metadata.name.startswith(f"modeldeploy-{namespace}")
    ]
    assert cluster_bindings == [f"modeldeploy-{namespace}-cluster-reads"]
    listed = json.loads(helm(cluster, "list", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(release, "deployed")]
    helm(cluster, "uninstall", release, "-n", namespace, "--wait")
    wait_for(
        lambda: not cluster.apps.list_namespaced_deployment(namespace).items,
        60,
        what="the chart's Deployment gone",
    )
