"""Fixtures for tests on the real node: a second local control plane without kwok, and a
kubelet with containerd and runc on this machine (testbed/cluster/realnode.py). Nothing is
skipped: a node that cannot start fails the run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import pytest

from testbed.cluster.dockerfile_images import DOCKERFILES, build
from testbed.cluster.localcluster import MODELDEPLOYMENT_CRD
from testbed.cluster.realnode import BRIDGE_ADDRESS, RealNode, control_plane_for_node
from testbed.modelserver.export import (
    FAILS_FROM_FIVE,
    HALF_PLUS_THREE,
    HALF_PLUS_TWO,
    NOT_A_SAVEDMODEL,
    ensure_exported,
)
from testbed.support.kube import temporary_namespace
from testbed.support.s3server import s3_client, start_moto, upload_dir

BUCKET = "models"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class NodeCluster:
    kubeconfig: Path
    api: kubernetes.client.ApiClient
    node: RealNode

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    cluster = control_plane_for_node(tmp_path_factory.mktemp("node-cluster"), crds=(MODELDEPLOYMENT_CRD,))
    node = RealNode(cluster)
    try:
        kubeconfig = cluster.up()
        node.up()
        api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
        yield NodeCluster(kubeconfig, api, node)
        api.close()
    finally:
        node.down()
        cluster.down()


@pytest.fixture
def node_namespace(node_cluster: NodeCluster) -> Iterator[str]:
    with temporary_namespace(node_cluster.core, "n") as name:
        yield name


@pytest.fixture(scope="session")
def bridge_s3(node_cluster: NodeCluster) -> Iterator[str]:
    """moto on the bridge's address, the one server the pods may reach, holding mnist at
    version 8 in a padded folder (00000008), version 9 (y = 0.5x + 3), version 10 (refuses
    any x >= 5 with TensorFlow's InvalidArgument) and a version 6 that is no SavedModel."""
    proc, endpoint = start_moto({}, host=BRIDGE_ADDRESS)
    client = s3_client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    models = ensure_exported()
    upload_dir(client, BUCKET, "mnist/00000008", models / HALF_PLUS_TWO)
    upload_dir(client, BUCKET, "mnist/9", models / HALF_PLUS_THREE)
    upload_dir(client, BUCKET, "mnist/10", models / FAILS_FROM_FIVE)
    upload_dir(client, BUCKET, "mnist/6", models / NOT_A_SAVEDMODEL)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def bridge_s3_refusing_keys(node_cluster: NodeCluster) -> Iterator[str]:
    """moto on the bridge checking credentials: it knows no key, so every key is wrong."""
    proc, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"}, host=BRIDGE_ADDRESS)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def fetcher_image(node_cluster: NodeCluster) -> str:
    """The fetcher image as `make images` builds it, imported into the node."""
    return _imported(node_cluster, "fetcher")


@pytest.fixture(scope="session")
def operator_image(node_cluster: NodeCluster) -> str:
    """The operator image as `make images` builds it from the Dockerfile, imported."""
    return _imported(node_cluster, "operator")


@pytest.fixture(scope="session")
def modelserver_image(node_cluster: NodeCluster) -> str:
    """The serving image: the TF Serving-compatible test double, with real TensorFlow."""
    return _imported(node_cluster, "modelserver")


def _imported(node_cluster: NodeCluster, which: str) -> str:
    _, name, _ = DOCKERFILES[which]
    node_cluster.node.import_archive(build(which))
    return name
