"""The API server crashes, then the network to it goes silent, in the middle of a canary:
no worker blocks past its bound, what was deleted meanwhile comes back, the
cache matches the server afterwards, and the canary finishes without a spurious rollback.

The operator talks to the API server through a loopback TCP proxy (testbed.support.tcp_proxy)
so the partition can be made without touching the machine's network; the crash is a real
SIGKILL of the suite's kube-apiserver, started again on the same port and etcd.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.names import deployment_name
from modeldeploy.control.kinds import WATCHED
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.tcp_proxy import TcpProxy
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, Operator
from .test_canary import canary, canary_sample, pods_of, serving_v1

pytestmark = pytest.mark.timeout(420)
CRASH_SECONDS = 30
PARTITION_SECONDS = 60
# A pass ends at its first failed request: 5 s to connect (tried three times at most) and
# 30 s to read (kube.REQUEST_TIMEOUT), plus the model gate's and scrape's own timeouts.
PASS_BOUND_SECONDS = 60
RELIST_SECONDS = 10


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[TcpProxy]:
    if cluster.local is None:
        pytest.skip("kills the API server: runs on the suite's own control plane only")
    server = json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    started = TcpProxy((host, int(port))).start()
    yield started
    started.close()


def kubeconfig_through(proxy: TcpProxy, cluster: Cluster, path: Path) -> Path:
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://{proxy.address}"  # the cert names 127.0.0.1
    path.write_text(json.dumps(config))
    return path


def probes(op: Operator) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def no_worker_stuck(op: Operator) -> bool:
    longest = float(probes(op)["longestPassSeconds"])
    assert longest <= PASS_BOUND_SECONDS, f"a pass has run {longest}s"
    return True


def server_count(cluster: Cluster, namespace: str) -> int:
    """Objects of every watched kind in ``namespace``, selected as the operator's watches are."""
    count = 0
    for kind in WATCHED:
        query = [("labelSelector", kind.selector)] if kind.selector else []
        response = cluster.api.call_api(
            kind.path(namespace),
            "GET",
            query_params=query,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
        )
        count += len(json.loads(response.data)["items"])
    return count


def test_api_server_crash_and_partition_mid_canary_end_in_a_promotion(
    cluster: Cluster,
    namespace: str,
    proxy: TcpProxy,
    start_operator: Callable[..., Operator],
    traffic: Callable[..., TrafficDriver],
    tmp_path: Path,
) -> None:
    assert cluster.local is not None
    op = start_operator(
        kubeconfig=kubeconfig_through(proxy, cluster, tmp_path / "through-proxy"),
        MODELDEPLOY_RELIST_SECONDS=str(RELIST_SECONDS),
    )
    # The first step's pause outlasts both faults; the deadline is far beyond them.
    steps = [{"weight": 20, "pause": "100s"}, {"weight": 50, "pause": "2s"}]
    serving_v1(cluster, namespace, canary_sample(steps=steps, progressDeadlineSeconds=900))
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    # Its pod must exist before the crash: a ReplicaSet whose first pod create fails while
    # the API server is down retries on the controller-manager's backoff, tens of seconds later.
    wait_for(
        lambda: (c := canary(cluster, namespace) or {}).get("weight") == 20 and c.get("readyReplicas", 0),
        60,
        what="canary at 20% with a ready pod",
    )

    # 1. kube-apiserver dies mid-canary and stays down.
    cluster.local.kill("kube-apiserver")
    holds_for(lambda: no_worker_stuck(op), CRASH_SECONDS, interval=1, what="workers bounded, API server down")
    cluster.local.start_component("kube-apiserver")

    # 2. The network to it goes silent; meanwhile a canary pod and the stable Deployment go.
    proxy.stall()
    canary_pod = sorted(pods_of(cluster, namespace, 2))
    assert canary_pod, "the canary has a pod"
    doomed = next(
        p.metadata.name
        for p in cluster.core.list_namespaced_pod(namespace).items
        if p.metadata.uid == canary_pod[0]
    )
    cluster.core.delete_namespaced_pod(doomed, namespace)
    cluster.apps.delete_namespaced_deployment(deployment_name("mnist", 1), namespace)
    holds_for(lambda: no_worker_stuck(op), PARTITION_SECONDS, interval=1, what="workers bounded, partition")
    proxy.resume()

    # 3. Afterwards: the Deployment is back, the cache matches the server, the canary goes on.
    wait_for(
        lambda: cluster.apps.read_namespaced_deployment(deployment_name("mnist", 1), namespace),
        PASS_BOUND_SECONDS,
        what="the deleted stable Deployment made again",
    )
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=180)
    status = md["status"]
    assert status["stable"]["version"] == 2
    # Promoted by its analysis, on the record: while the stable Deployment was gone a pass
    # once wrote no stable version, and the next promoted the canary with no history entry.
    assert status["history"][-1]["version"] == 2, status["history"]
    assert status["history"][-1]["result"] == "Promoted", status["history"]
    assert "analysis" in status["history"][-1]["reason"], status["history"]
    assert not status.get("failedVersions"), status
    assert all(h["result"] != "RolledBack" for h in status["history"]), status["history"]
    # Nothing that went during the gap may stay cached: the children's reflectors resume
    # their watches from the last version (or list again on a 410), the ModelDeployments'
    # relist covers kopf's watch.
    wait_for(
        lambda: probes(op)["cachedObjects"] == server_count(cluster, namespace),
        2 * RELIST_SECONDS + 15,  # a relist, plus kopf's 10 s cache of probe results
        what="the operator's cache holding what the server holds",
    )
