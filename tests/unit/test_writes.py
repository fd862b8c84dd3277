"""The operator's own requests, as the API server receives them: the model gate on the pod's
status subresource, the fenced status write, Events. A loopback server records each one."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.names import API_VERSION, CONDITION_MODEL_AVAILABLE, KIND, LABEL_MODEL_AVAILABLE
from modeldeploy.control.kinds import BY_KIND
from modeldeploy.control.writes import Writes
from modeldeploy.kube.client import Kube, load_client_config
from tests.unit.test_kube_client import loopback_kubeconfig

pytestmark = pytest.mark.timeout(30)
Request = tuple[str, str, str, Any]  # method, path, content type, body


@contextlib.contextmanager
def recording_server(status: int = 200) -> Iterator[tuple[int, list[Request]]]:
    """Answers every request with ``status`` and its own body (or a Status on an error)."""
    received: list[Request] = []

    class Recording(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            received.append((self.command, self.path, self.headers.get("Content-Type", ""), body))
            answer = json.dumps(body if status < 400 else {"kind": "Status", "code": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_PATCH(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, received
    finally:
        server.shutdown()
        server.server_close()


def writes_to(port: int, folder: Path) -> Writes:
    return Writes(Kube(load_client_config(2, str(loopback_kubeconfig(folder, port))), BY_KIND))


def test_the_model_gate_is_one_strategic_merge_patch_of_the_pods_status(tmp_path: Path) -> None:
    with recording_server() as (port, received):
        writes_to(port, tmp_path).close_model_gate("ml", "mnist-v3-a", "ServingRestarted", "restarted")
    [(method, path, content_type, body)] = received
    assert (method, path) == ("PATCH", "/api/v1/namespaces/ml/pods/mnist-v3-a/status")
    assert content_type == "application/strategic-merge-patch+json"
    assert body["metadata"]["labels"] == {LABEL_MODEL_AVAILABLE: None}  # null removes the label
    [condition] = body["status"]["conditions"]
    assert condition["type"] == CONDITION_MODEL_AVAILABLE
    assert (condition["status"], condition["reason"]) == ("False", "ServingRestarted")


def test_a_gate_on_a_pod_that_went_away_is_no_error(tmp_path: Path) -> None:
    with recording_server(status=404) as (port, _):
        assert writes_to(port, tmp_path).open_model_gate("ml", "gone", "available") is None


def test_the_status_write_is_fenced_by_the_version_it_was_computed_from(tmp_path: Path) -> None:
    with recording_server() as (port, received):
        writes_to(port, tmp_path).patch_status("ml", "mnist", {"phase": "Ready"}, "41")
    [(method, path, content_type, body)] = received
    assert (method, path) == (
        "PATCH",
        f"/apis/{API_VERSION}/namespaces/ml/modeldeployments/mnist/status",
    )
    assert content_type == "application/json-patch+json"
    assert body == [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/status", "value": {"phase": "Ready"}},
    ]


def test_an_event_names_the_resource_and_a_refused_one_is_only_logged(tmp_path: Path) -> None:
    involved = {"metadata": {"name": "mnist", "namespace": "ml", "uid": "u-1", "resourceVersion": "7"}}
    with recording_server() as (port, received):
        writes_to(port, tmp_path).post_event(involved, "Normal", "Promoted", "x" * 2000)
    [(method, path, _, event)] = received
    assert (method, path) == ("POST", "/api/v1/namespaces/ml/events")
    assert event["involvedObject"]["kind"] == KIND
    assert event["involvedObject"]["uid"] == "u-1"
    assert len(event["message"]) == 1024
    with recording_server(status=403) as (port, _):
        writes_to(port, tmp_path).post_event(involved, "Normal", "Promoted", "refused")
