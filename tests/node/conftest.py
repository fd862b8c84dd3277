"""Fixtures for tests on the real node: a second local control plane without kwok, and a
kubelet with containerd and runc on this machine (tests/cluster/realnode.py). Nothing is
skipped: a node that cannot start fails the run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import pytest

from tests.cluster.localcluster import LocalCluster
from tests.cluster.realnode import RealNode
from tests.support.kube import create_namespace


@dataclass
class NodeCluster:
    kubeconfig: Path
    api: kubernetes.client.ApiClient
    node: RealNode

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("node-cluster"), fake_nodes=False)
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
    name = f"n-{uuid.uuid4().hex[:8]}"
    create_namespace(node_cluster.core, name)
    yield name
    node_cluster.core.delete_namespace(name)
