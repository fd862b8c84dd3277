"""A release is installable as it ships: `make release`'s artefacts, built into a folder of
the test run's own, installed on the real node. Its image tarballs are imported, its
install.yaml applied (or its chart package installed by helm) unchanged but for the API
server's address this machine's pods need, its plugin package installed alone into a fresh
virtual environment, and that plugin follows a sample through a canary to Ready.

The release's packages hold what they promise: the plugin's wheel only the plugin and the
api models, and runs with only its declared dependencies; the operator image only the
distributions the operator process imports."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.release import Release, build_release
from modeldeploy.api.names import GROUP, PLURAL, VERSION
from testbed.cluster.operator_manifests import OPERATOR_NAMESPACE, operator_container
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.priority import in_background
from testbed.support.s3server import CREDENTIALS
from testbed.support.tools import helm
from testbed.support.wait import wait_for

from .conftest import BUCKET, NodeCluster
from .test_operator_in_cluster import _ready_operator_pod, kubectl

# Image builds (buildah on vfs) happen in the first test's setup.
pytestmark = pytest.mark.timeout(1800)
REPO = Path(__file__).resolve().parents[2]
RELEASE_VERSION = "1.2.3"  # not the tree's own version: the pinning shows in every artefact
NAME = "mnist"
SAMPLE = REPO / "manifests" / "samples" / "mnist.yaml"
HELM_RELEASE, HELM_NAMESPACE = "mdrelease", "modeldeploy-release"
SITE_PACKAGES = "usr/local/lib/python3.11/site-packages/"
# Distributions the plugin's package must not bring: the operator's own.
OPERATOR_ONLY = {"kopf", "grpcio", "prometheus-client", "protobuf", "tensorflow-serving-api", "modeldeploy"}


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """`make release VERSION=1.2.3` of this checkout (its tracked files, as they are)."""
    dist = tmp_path_factory.mktemp("dist")
    # Minutes of CPU: at background priority, so the other worker's canaries keep their pace.
    return in_background(lambda: build_release(REPO, RELEASE_VERSION, dist))


@pytest.fixture(scope="session")
def plugin_venv(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the plugin's wheel and its declared dependencies."""
    venv = tmp_path_factory.mktemp("plugin") / "venv"

    def install() -> None:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", str(release.plugin_wheel)],
            check=True,
            timeout=600,
        )

    in_background(install)
    return venv


def plugin(venv: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "kubectl-modeldeploy"), *args], capture_output=True, text=True, timeout=timeout
    )


def test_the_plugin_package_holds_the_plugin_and_the_api_only_and_runs_alone(
    release: Release, plugin_venv: Path
) -> None:
    with zipfile.ZipFile(release.plugin_wheel) as wheel:
        files = [n for n in wheel.namelist() if ".dist-info/" not in n]
    assert set(files) >= {"modeldeploy/__init__.py", "modeldeploy/cli/main.py", "modeldeploy/api/spec.py"}
    outside = [f for f in files if not f.startswith(("modeldeploy/cli/", "modeldeploy/api/"))]
    assert outside == ["modeldeploy/__init__.py"], outside

    pip = [str(plugin_venv / "bin" / "pip")]
    listed = subprocess.run([*pip, "list", "--format=json"], check=True, capture_output=True, text=True)
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "kubectl-modeldeploy" in installed
    assert installed & OPERATOR_ONLY == set(), installed
    subprocess.run([*pip, "check"], check=True, capture_output=True, text=True, timeout=60)
    helped = plugin(plugin_venv, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "status" in helped.stdout


def _layer_site_packages(archive: Path, into: Path) -> None:
    """The site-packages the image's own build added (every layer over the base image's)."""
    with tarfile.open(archive) as image:
        manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer_name in manifest[0]["Layers"][1:]:
            with tarfile.open(fileobj=image.extractfile(layer_name)) as layer:
                members = [m for m in layer.getmembers() if m.name.lstrip("./").startswith(SITE_PACKAGES)]
                layer.extractall(into, members=members, filter="data")


# Run against the image's site-packages only (-I -S: nothing of this machine's but the
# standard library): the distributions whose modules the operator process loads, and
# every distribution installed there.
IMPORTS_OF_THE_OPERATOR = """
import json, sys
sys.path.insert(0, sys.argv[1])
sys.modules["kubernetes"] = None  # as modeldeploy.control.__main__ hides it
import kopf.cli, modeldeploy.control.__main__, modeldeploy.control.handlers
from importlib.metadata import distributions, packages_distributions
owners = packages_distributions()
loaded = {m.split(".")[0] for m, v in list(sys.modules.items()) if v is not None}
print(json.dumps({
    "imported": sorted({d for m in loaded for d in owners.get(m, [])}),
    "installed": sorted({d.metadata["Name"] for d in distributions(path=[sys.argv[1]])}),
}))
"""


def _normalised(names: list[str]) -> set[str]:
    return {n.lower().replace("_", "-").replace(".", "-") for n in names}


def test_the_operator_image_installs_only_what_the_operator_imports(release: Release, tmp_path: Path) -> None:
    image_root = tmp_path / "image"
    _layer_site_packages(release.images["operator"], image_root)
    site = image_root / SITE_PACKAGES
    found = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORTS_OF_THE_OPERATOR, str(site)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    answer = json.loads(found.stdout)
    imported, installed = _normalised(answer["imported"]), _normalised(answer["installed"])
    assert "modeldeploy" in installed
    assert {"kubernetes", "grpcio", "rich"} & installed == set(), installed
    assert installed - imported == set(), f"installed, never imported: {sorted(installed - imported)}"


def canary_sample(image: str, version: int) -> dict[str, Any]:
    """The shipped sample, read from the bridge's S3 bucket with a Secret's credentials,
    served by the test serving image, its canary timings shortened."""
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    spec = body["spec"]
    spec["model"].update(
        {"storageUri": f"s3://{BUCKET}/mnist", "version": version, "storageSecretName": "s3"}
    )
    spec["runtime"] = {"image": image}
    spec["replicas"] = 1
    spec["rollout"]["steps"] = [{"weight": 50, "pause": "5s"}]
    spec["rollout"]["analysis"].update({"interval": "2s", "minRequests": 10})
    return body


def watch_with_plugin(venv: Path, node_cluster: NodeCluster, namespace: str) -> None:
    watched = plugin(
        venv,
        "status",
        NAME,
        "--watch",
        "--timeout=5m",
        f"--namespace={namespace}",
        f"--kubeconfig={node_cluster.kubeconfig}",
        timeout=360,
    )
    print(watched.stdout, watched.stderr)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.strip().splitlines()[-1].split()[1].startswith("Ready"), watched.stdout


def canary_to_ready_with_the_plugin(
    node_cluster: NodeCluster, namespace: str, s3_endpoint: str, image: str, venv: Path
) -> None:
    """The sample at version 8 to Ready, then version 9 through its canary to Ready, each
    followed by the plugin's `status --watch` until it exits 0."""
    node_cluster.core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "s3"}, "stringData": {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}},
    )
    kubectl(node_cluster, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(canary_sample(image, 8)))
    watch_with_plugin(venv, node_cluster, namespace)
    traffic = TrafficDriver(node_cluster.api, namespace, NAME, NAME, rps=20).start()
    try:
        node_cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, NAME, {"spec": {"model": {"version": 9}}}
        )
        watch_with_plugin(venv, node_cluster, namespace)
    finally:
        traffic.stop()
    md = node_cluster.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
    assert md["status"]["stable"]["version"] == 9, md["status"]
    serving = node_cluster.core.list_namespaced_pod(namespace, label_selector=f"{GROUP}/version=9").items
    assert serving, "no serving pod of version 9"
    fetcher = serving[0].spec.init_containers[0].image
    assert fetcher.endswith(f"/fetcher:{RELEASE_VERSION}"), fetcher


def operator_ready(node_cluster: NodeCluster, namespace: str) -> None:
    """A Ready replica of the operator in ``namespace``, running the release's image."""
    name = wait_for(lambda: _ready_operator_pod(node_cluster, namespace), 180, what="the operator pod Ready")
    pod = node_cluster.core.read_namespaced_pod(name, namespace)
    assert pod.spec.containers[0].image.endswith(f"/operator:{RELEASE_VERSION}"), pod.spec.containers[0].image


def pods_gone(node_cluster: NodeCluster, namespace: str) -> None:
    wait_for(
        lambda: not node_cluster.core.list_namespaced_pod(namespace).items, 120, what="the operator pods gone"
    )


@pytest.fixture
def release_images(node_cluster: NodeCluster, release: Release) -> Release:
    """The release's image tarballs imported into the node, as a user loads them."""
    for archive in release.images.values():
        node_cluster.node.import_archive(archive)
    return release


@pytest.fixture
def installed_from_yaml(
    node_cluster: NodeCluster, node_namespace: str, release_images: Release
) -> Iterator[None]:
    documents = list(yaml.safe_load_all(release_images.install_yaml.read_text()))
    container = operator_container(documents)
    container["env"] = [*container["env"], *node_cluster.node.api_server_env()]
    kubectl(node_cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    yield
    kubectl(node_cluster, "-n", OPERATOR_NAMESPACE, "delete", "deployment", "modeldeploy", "--wait=true")
    pods_gone(node_cluster, OPERATOR_NAMESPACE)


def test_install_yaml_of_the_release_runs_a_canary_to_ready_with_the_plugin(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    plugin_venv: Path,
    installed_from_yaml: None,
) -> None:
    operator_ready(node_cluster, OPERATOR_NAMESPACE)
    canary_to_ready_with_the_plugin(node_cluster, node_namespace, bridge_s3, modelserver_image, plugin_venv)


def adopt_crd_for_helm(node_cluster: NodeCluster, release: str, namespace: str) -> None:
    """The chart README's adoption of a CRD that `kubectl apply` installed (as this node's
    cluster and the install.yaml test did): without it helm refuses to install."""
    crd = f"{PLURAL}.{GROUP}"
    kubectl(node_cluster, "label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
    kubectl(
        node_cluster,
        "annotate",
        "--overwrite",
        "crd",
        crd,
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
    )


@pytest.fixture
def installed_from_chart(
    node_cluster: NodeCluster, node_namespace: str, release_images: Release, tmp_path: Path
) -> Iterator[None]:
    adopt_crd_for_helm(node_cluster, HELM_RELEASE, HELM_NAMESPACE)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"extraEnv": node_cluster.node.api_server_env()}))
    chart = str(release_images.chart)
    helm(
        node_cluster.kubeconfig,
        "install",
        HELM_RELEASE,
        chart,
        "-n",
        HELM_NAMESPACE,
        "--create-namespace",
        "-f",
        str(values),
    )
    yield
    helm(node_cluster.kubeconfig, "uninstall", HELM_RELEASE, "-n", HELM_NAMESPACE, "--wait")
    pods_gone(node_cluster, HELM_NAMESPACE)


def test_the_chart_package_of_the_release_runs_a_canary_to_ready_with_the_plugin(
    node_cluster: NodeCluster,
    node_namespace: str,
    bridge_s3: str,
    modelserver_image: str,
    plugin_venv: Path,
    installed_from_chart: None,
) -> None:
    operator_ready(node_cluster, HELM_NAMESPACE)
    canary_to_ready_with_the_plugin(node_cluster, node_namespace, bridge_s3, modelserver_image, plugin_venv)
