"""A status write refused with 409 Conflict at the worst moment, for a real operator process
on the real API server: the write that records a rollback. A validating admission webhook on
loopback answers that one write with 409, as the API server answers a write computed from a
resource someone changed meanwhile; every other write goes through.

Recorded before it acts, a rollback refused so has deleted nothing: the next pass computes
it again, and the rolled-back canary never serves again. Acting first (deleting the canary
and then failing to record why) let the next pass, from the old status, bring it back."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api.names import GROUP, PLURAL
from testbed.modelserver.traffic import TrafficDriver
from testbed.support.wait import holds_for, wait_for

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1
from .test_leader_election import audit_entries
from .test_rbac import SA_NAME, SA_NAMESPACE, service_account_kubeconfig

pytestmark = pytest.mark.timeout(180)


def _records_a_rollback(review: dict[str, Any]) -> bool:
    """Whether this status write adds a RolledBack entry to the history."""
    request = review["request"]
    new = ((request.get("object") or {}).get("status") or {}).get("history") or []
    old = ((request.get("oldObject") or {}).get("status") or {}).get("history") or []
    return len(new) > len(old) and new[-1].get("result") == "RolledBack"


def _starts_a_canary(review: dict[str, Any]) -> bool:
    """Whether this status write records a canary where there was none."""
    request = review["request"]
    new = ((request.get("object") or {}).get("status") or {}).get("canary")
    old = ((request.get("oldObject") or {}).get("status") or {}).get("canary")
    return new is not None and old is None


@dataclass
class ConflictWebhook:
    """Answers the first ``conflicts`` status writes that ``refuses`` picks with 409."""

    conflicts: int = 1
    refuses: Callable[[dict[str, Any]], bool] = _records_a_rollback
    refused: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, review: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        with self._lock:
            if self.refuses(review) and len(self.refused) < self.conflicts:
                self.refused.append(review["request"]["object"]["status"])
                response = {
                    "uid": review["request"]["uid"],
                    "allowed": False,
                    "status": {
                        "code": 409,
                        "reason": "Conflict",
                        "message": "written meanwhile (the test's)",
                    },
                }
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "webhook.crt", folder / "webhook.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def conflict_webhook(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[ConflictWebhook]:
    """The webhook served on loopback and registered for this namespace's status writes."""
    webhook = ConflictWebhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps(webhook.answer(review)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"conflicts-{namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "conflicts.modeldeploy.test",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{server.server_address[1]}/",
                    "caBundle": base64.b64encode(cert.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": [f"{PLURAL}/status"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(config))
    try:
        yield webhook
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--wait=false", check=False)
        server.shutdown()


@dataclass
class DeploymentsSeen:
    """The resource's Deployments every 100 ms: whether a removed one came back."""

    cluster: Cluster
    namespace: str
    seen: list[tuple[str, ...]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> DeploymentsSeen:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            names = tuple(self.cluster.children(self.namespace, "mnist")["deployments"])
            if not self.seen or self.seen[-1] != names:
                self.seen.append(names)

    def came_back(self, deployment: str) -> bool:
        present = [deployment in names for names in self.seen]
        first_gone = next((i for i, p in enumerate(present) if i > 0 and present[i - 1] and not p), None)
        return first_gone is not None and any(present[first_gone:])


def test_a_conflict_on_the_rollback_s_status_write_never_brings_the_canary_back(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    conflict_webhook: ConflictWebhook,
    traffic: Callable[..., TrafficDriver],
) -> None:
    serving_v1(cluster, namespace, canary_sample())
    # Version 3's graph refuses inputs >= 5: half of these fail, the canary is rolled back.
    driver = traffic(inputs=(1.0, 9.0))
    with DeploymentsSeen(cluster, namespace) as deployments:
        cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
        md = cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
        assert md["status"]["history"][-1]["result"] == "RolledBack"
        assert len(conflict_webhook.refused) == 1, "the rollback's first status write met a 409"
        wait_for(
            lambda: cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"],
            30,
            what="canary removed",
        )
        # A terminating pod of version 3 may still take a request routed before it went: count
        # from when no pod of it is left, then nothing more may reach it.
        wait_for(
            lambda: (
                not [
                    pod
                    for pod in cluster.core.list_namespaced_pod(namespace).items
                    if pod.metadata.name.startswith("mnist-v3-")
                ]
            ),
            30,
            what="version 3's pods gone",
        )
        served_by_v3 = driver.counts().get(3, 0)

        def stays_rolled_back() -> bool:
            status = cluster.get_md(namespace, "mnist")["status"]
            assert status.get("canary") is None, status.get("canary")
            assert cluster.children(namespace, "mnist")["deployments"] == ["mnist-v1"]
            return True

        holds_for(stays_rolled_back, 5, what="the rolled-back canary gone")
    assert not deployments.came_back("mnist-v3"), deployments.seen
    assert driver.counts().get(3, 0) == served_by_v3, "version 3 served again after its rollback"
    assert md["status"]["failedVersions"] == [3]


def test_the_operator_under_the_manifest_s_rbac_gets_through_a_conflict_and_relists(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    conflict_webhook: ConflictWebhook,
    tmp_path: Path,
    traffic: Callable[..., TrafficDriver],
) -> None:
    """The operator as manifests/rbac.yaml's ServiceAccount, leading through a Lease and
    relisting every second: the status write that starts the canary meets a 409, the
    resource is read again (``get``, which the ClusterRole once lacked) and the rollout ends.
    The audit log shows what the API server answered that identity: never a 403."""
    conflict_webhook.refuses = _starts_a_canary
    started = datetime.now(UTC)
    start_operator(
        kubeconfig=service_account_kubeconfig(cluster, tmp_path / "sa-kubeconfig"),
        MODELDEPLOY_LEADER_ELECTION="true",
        MODELDEPLOY_LEASE_NAMESPACE=SA_NAMESPACE,
        MODELDEPLOY_RELIST_SECONDS="1",
        POD_NAME=f"rbac-{namespace}",
    )
    serving_v1(cluster, namespace, canary_sample())
    traffic()
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 7}}})  # version 1 again
    md = cluster.wait_phase(namespace, "mnist", "Ready", timeout=90)
    assert md["status"]["stable"]["version"] == 7
    assert len(conflict_webhook.refused) == 1, "the canary's first status write met a 409"
    user = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
    asked = [
        e
        for e in audit_entries(cluster, started)
        if e["user"]["username"] == user and (e.get("objectRef") or {}).get("namespace") in (namespace, None)
    ]
    forbidden = [(e["verb"], e["requestURI"]) for e in asked if e["responseStatus"]["code"] == 403]
    assert forbidden == []

    def answered(verb: str, code: int) -> list[dict[str, Any]]:
        return [
            e
            for e in asked
            if e["verb"] == verb
            and (e.get("objectRef") or {}).get("resource") == PLURAL
            and e["responseStatus"]["code"] == code
        ]

    refused_write = answered("patch", 409)
    assert refused_write, "the refused status write"
    reread = [e for e in answered("get", 200) if e["stageTimestamp"] >= refused_write[0]["stageTimestamp"]]
    assert reread, "the resource read again after the 409"
    assert len(answered("list", 200)) >= 3, "relisted every second"
