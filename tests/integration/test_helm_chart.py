"""charts/modeldeploy read by helm (built from its Go module) and applied to the real API
server: lint, template with the defaults and with every option, server-side dry run, and an
install for real whose objects are what the chart promises. The operator the chart installs
running as pods is tested on the real node (tests/node/test_operator_in_cluster.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from modeldeploy.control.notices import load_config
from testbed.cluster.localcluster import versions
from testbed.support.tools import helm as run_helm
from testbed.support.wait import wait_for

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
    "--set=notifications.webhooks[0].format=Slack",
    "--set=notifications.webhooks[0].signingSecret=hmac-key",
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
    # The values schema refuses it before any template runs, naming the key and the choices.
    assert "at '/logFormat': value must be one of 'text', 'json'" in result.stderr


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
        "CustomResourceDefinition",
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
    (operator_role,) = [
        r for r in by_kind(documents, "ClusterRole") if r["metadata"]["name"] == f"modeldeploy-{namespace}"
    ]
    assert operator_role["rules"] == by_kind(manifests, "ClusterRole")[0]["rules"]
    assert by_kind(documents, "Role")[0]["rules"] == by_kind(manifests, "Role")[0]["rules"]
    aggregated = [
        d for d in yaml.safe_load_all((REPO / "manifests" / "aggregate-roles.yaml").read_text()) if d
    ]
    for role in ("view", "edit", "admin"):
        label = f"rbac.authorization.k8s.io/aggregate-to-{role}"
        (chart_role,) = [r for r in by_kind(documents, "ClusterRole") if label in r["metadata"]["labels"]]
        (manifest_role,) = [r for r in aggregated if label in r["metadata"]["labels"]]
        assert chart_role["rules"] == manifest_role["rules"]
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
    assert (webhook.format.value, webhook.signing_secret) == ("Slack", "hmac-key")
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
        "--set=crds.install=false",  # the test cluster's CRD is not this release's
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
    assert env["MODELDEPLOY_SHARDS"] == "1"  # one leader by default, as before shards
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


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("--set=replica=3", "replica"),
        ("--set=workers=many", "workers"),
        ("--set=image.tag=5", "tag"),
        ("--set=leaderElection.shards=0", "shards"),
        ("--set=webhookAllowed={http://user@hooks.example}", "webhookAllowed"),
    ],
    ids=["unknown-key", "wrong-type", "numeric-tag", "no-shards", "webhook-credentials"],
)
@pytest.mark.parametrize("command", ["lint", "template", "install"])
def test_values_the_schema_refuses_are_refused_naming_the_key(
    cluster: Cluster, namespace: str, command: str, option: str, named: str
) -> None:
    args = {
        "lint": ["lint", str(CHART)],
        "template": ["template", "md", str(CHART), f"--kube-version={KUBE_VERSION}"],
        "install": ["install", "md", str(CHART), "-n", namespace, "--dry-run=server"],
    }[command]
    result = helm(cluster, *args, option, check=False)
    assert result.returncode != 0, result.stdout
    output = result.stdout + result.stderr
    assert "values don't meet the specifications of the schema" in output, output
    assert named in output, output


def test_the_webhook_allow_list_reaches_the_operator(cluster: Cluster, namespace: str) -> None:
    def allowed(*options: str) -> str:
        (deployment,) = by_kind(template(cluster, namespace, *options), "Deployment")
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        return str(env["MODELDEPLOY_WEBHOOK_ALLOWED"])

    assert allowed() == "", "no gate may be called by default"
    listed = "--set=webhookAllowed={https://gates.example/ci/,http://127.0.0.1:}"
    assert allowed(listed) == "https://gates.example/ci/,http://127.0.0.1:"


def test_a_numeric_tag_given_as_a_string_is_the_image_tag(cluster: Cluster, namespace: str) -> None:
    (deployment,) = by_kind(template(cluster, namespace, "--set-string=image.tag=5"), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "modeldeploy/operator:5"


def test_without_leader_election_more_than_one_replica_is_refused(cluster: Cluster, namespace: str) -> None:
    result = helm(
        cluster,
        "template",
        "md",
        str(CHART),
        f"--kube-version={KUBE_VERSION}",
        "--set=leaderElection.enabled=false",
        check=False,
    )
    assert result.returncode != 0
    assert "replicas: 2 needs leaderElection.enabled=true" in result.stderr
    documents = template(cluster, namespace, "--set=leaderElection.enabled=false", "--set=replicas=1")
    (deployment,) = by_kind(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not by_kind(documents, "PodDisruptionBudget"), "one replica and minAvailable 1 block every drain"


@pytest.mark.parametrize(("replicas", "budget"), [("1", False), ("2", True), ("3", True)])
def test_the_disruption_budget_exists_only_when_a_drain_can_evict(
    cluster: Cluster, namespace: str, replicas: str, budget: bool
) -> None:
    documents = template(cluster, namespace, f"--set=replicas={replicas}")
    assert bool(by_kind(documents, "PodDisruptionBudget")) is budget


def test_names_identity_and_placement_come_from_the_values(cluster: Cluster, namespace: str) -> None:
    documents = template(
        cluster,
        namespace,
        "--set=fullnameOverride=mdop",
        "--set=imagePullSecrets[0].name=regcred",
        "--set=serviceAccount.name=robot",
        "--set=serviceAccount.annotations.iam=role",
        "--set=priorityClassName=system-cluster-critical",
        "--set=podSecurityContext.runAsUser=1234",
        "--set=nodeSelector.pool=system",
        "--set=tolerations[0].key=dedicated",
        "--set=tolerations[0].operator=Exists",
    )
    (deployment,) = by_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["metadata"]["name"] == "mdop"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "robot"
    assert pod["priorityClassName"] == "system-cluster-critical"
    # Helm merges a value into the chart's defaults: the user set, the rest stays restricted.
    assert pod["securityContext"]["runAsUser"] == 1234
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    (account,) = by_kind(documents, "ServiceAccount")
    assert (account["metadata"]["name"], account["metadata"]["annotations"]) == ("robot", {"iam": "role"})
    subjects = [s for b in by_kind(documents, "ClusterRoleBinding") for s in b["subjects"]]
    assert {s["name"] for s in subjects} == {"robot"}
    existing = template(
        cluster, namespace, "--set=serviceAccount.create=false", "--set=serviceAccount.name=mine"
    )
    assert not by_kind(existing, "ServiceAccount")
    assert by_kind(existing, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_notes_tell_how_to_check_the_install(cluster: Cluster, namespace: str) -> None:
    result = helm(
        cluster, "install", "md", str(CHART), "-n", namespace, "--dry-run=client", "--set=crds.install=false"
    )
    assert "NOTES:" in result.stdout
    assert f"kubectl -n {namespace} get pods -l app.kubernetes.io/instance=md" in result.stdout


CRD_NAME = "modeldeployments.serving.modeldeploy.dev"
NEW_STATUS_FIELD = "servingSince"  # a field only the newer build's CRD has


def chart_whose_crd_gained_a_field(tmp_path: Path) -> Path:
    """A copy of the chart, one version on, whose CRD's status has one more field."""
    newer = tmp_path / "modeldeploy"
    shutil.copytree(CHART, newer)
    chart = yaml.safe_load((newer / "Chart.yaml").read_text())
    (newer / "Chart.yaml").write_text(yaml.safe_dump({**chart, "version": "0.1.1-newer"}))
    template_text = (newer / "templates" / "crd.yaml").read_text()
    head, _, rest = template_text.partition("\nspec:\n")
    body, _, tail = ("spec:\n" + rest).rpartition("{{- end }}")
    spec = yaml.safe_load(body)
    status = spec["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    status["properties"][NEW_STATUS_FIELD] = {
        "type": "string",
        "description": "When the version began serving.",
    }
    (newer / "templates" / "crd.yaml").write_text(
        head + "\n" + yaml.safe_dump(spec, sort_keys=False) + "{{- end }}" + tail
    )
    return newer


def status_field_stored(cluster: Cluster, namespace: str, value: str) -> bool:
    cluster.custom.patch_namespaced_custom_object_status(
        "serving.modeldeploy.dev",
        "v1alpha1",
        namespace,
        "modeldeployments",
        "upgraded",
        {"status": {NEW_STATUS_FIELD: value}},
    )
    return cluster.get_md(namespace, "upgraded").get("status", {}).get(NEW_STATUS_FIELD) == value


@pytest.fixture
def crd_lent_to_a_release(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The test cluster's CRD adopted by a release in ``namespace``, as an admin adopts one
    applied by kubectl (README, "Upgrades and the CRD"); put back as generated afterwards."""
    cluster.kubectl("label", "crd", CRD_NAME, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    cluster.kubectl(
        "annotate",
        "crd",
        CRD_NAME,
        "meta.helm.sh/release-name=md",
        f"meta.helm.sh/release-namespace={namespace}",
        "--overwrite",
    )
    yield "md"
    helm(cluster, "uninstall", "md", "-n", namespace, "--wait", check=False)
    cluster.kubectl("replace", "-f", str(REPO / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"))


def test_helm_upgrade_updates_the_crd_and_uninstall_keeps_it(
    cluster: Cluster, namespace: str, crd_lent_to_a_release: str, tmp_path: Path
) -> None:
    release = crd_lent_to_a_release
    confined = [f"--set=watchNamespaces={{{namespace}}}", "--set=replicas=1", "--wait", "--timeout=90s"]
    helm(cluster, "install", release, str(CHART), "-n", namespace, *confined)
    body = yaml.safe_load((REPO / "manifests" / "samples" / "mnist.yaml").read_text())
    body["metadata"] = {"name": "upgraded", "namespace": namespace}
    cluster.create_md(namespace, body)
    # The installed CRD's status schema is structural: a field it does not know is pruned.
    assert not status_field_stored(cluster, namespace, "before")

    helm(
        cluster, "upgrade", release, str(chart_whose_crd_gained_a_field(tmp_path)), "-n", namespace, *confined
    )
    wait_for(
        lambda: status_field_stored(cluster, namespace, "after"),
        30,
        what="the upgraded CRD storing the new field",
    )

    helm(cluster, "uninstall", release, "-n", namespace, "--wait")
    crd = cluster.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout
    assert json.loads(crd)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert cluster.get_md(namespace, "upgraded")["status"][NEW_STATUS_FIELD] == "after"
