"""The real node runs pods for real: on the test run's own bridge with no route
out, with the pod security the runtime enforces, reachable from the host on the bridge."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any

import pytest

from testbed.cluster.images import busybox_image
from testbed.cluster.realnode import BRIDGE_ADDRESS, POD_SUBNET
from testbed.support.wait import wait_for

from .conftest import NodeCluster

pytestmark = pytest.mark.timeout(180)
BUSYBOX = busybox_image().name


def pod(name: str, script: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",  # imported into the node, no registry
                    "command": ["/bin/sh", "-c", script],
                    **container,
                }
            ],
        },
    }


def finished(cluster: NodeCluster, namespace: str, name: str) -> str:
    """The pod's termination message once it has Succeeded."""

    def done() -> str | None:
        p = cluster.core.read_namespaced_pod(name, namespace)
        if p.status.phase == "Failed":
            raise AssertionError(f"pod {name} failed: {p.status}")
        if p.status.phase != "Succeeded":
            return None
        return str(p.status.container_statuses[0].state.terminated.message or "")

    return str(wait_for(done, 120, what=f"pod {name} Succeeded"))


def test_a_pods_routes_hold_only_the_bridge_subnet(node_cluster: NodeCluster, node_namespace: str) -> None:
    node_cluster.core.create_namespaced_pod(
        node_namespace, pod("routes", "ip -4 route > /dev/termination-log")
    )
    routes = [line for line in finished(node_cluster, node_namespace, "routes").splitlines() if line.strip()]
    assert routes, "the pod has a route to its subnet"
    for route in routes:
        destination = route.split()[0]
        assert destination != "default", f"a pod must not have a default route: {routes}"
        assert ipaddress.IPv4Network(destination).subnet_of(ipaddress.IPv4Network(POD_SUBNET)), routes


def test_the_runtime_enforces_the_uid_and_a_read_only_root(
    node_cluster: NodeCluster, node_namespace: str
) -> None:
    log = "/dev/termination-log"
    script = f"id -u > {log}; touch /written 2>> {log} || echo refused >> {log}"
    secured = pod(
        "secured",
        script,
        securityContext={
            "runAsUser": 1000,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    )
    node_cluster.core.create_namespaced_pod(node_namespace, secured)
    message = finished(node_cluster, node_namespace, "secured")
    assert message.splitlines()[0] == "1000", message
    assert "Read-only file system" in message, message
    assert message.strip().endswith("refused"), message


def test_the_host_reaches_a_ready_pod_on_the_bridge(node_cluster: NodeCluster, node_namespace: str) -> None:
    page = "/tmp/www/index.html"
    script = f"mkdir -p /tmp/www && echo served-by-a-real-pod > {page} && exec httpd -f -p 8080 -h /tmp/www"
    server = pod(
        "web",
        script,
        ports=[{"containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
    )
    node_cluster.core.create_namespaced_pod(node_namespace, server)

    def ready_ip() -> str | None:
        p = node_cluster.core.read_namespaced_pod("web", node_namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        return str(p.status.pod_ip) if ready else None

    ip = str(wait_for(ready_ip, 120, what="pod web Ready"))
    # Only the bridge's subnet is ever dialled.
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(POD_SUBNET), ip
    assert ip != BRIDGE_ADDRESS
    with urllib.request.urlopen(f"http://{ip}:8080/index.html", timeout=5) as response:
        assert response.read().decode().strip() == "served-by-a-real-pod"
