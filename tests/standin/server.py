"""A stand-in for TensorFlow Serving on one simulated pod's IP.

REST (model status, predict, Prometheus metrics with TF Serving's own metric
names) on :8501 and gRPC ``ModelService/GetModelStatus`` with the real
tensorflow-serving-api messages on :8500. How long the model takes to load, how
often predict fails and how slow it is are under the test's control.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Latency histogram bounds in microseconds, as TF Serving's exponential buckets.
BUCKETS_US = [10 * 1.8**i for i in range(33)]
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"


@dataclass(frozen=True)
class Behaviour:
    load_seconds: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Behaviour:
        return cls(
            load_seconds=float(data.get("load_seconds", 0.0)),
            error_rate=float(data.get("error_rate", 0.0)),
            latency_ms=float(data.get("latency_ms", 1.0)),
        )


class ModelState:
    """One model version in one pod: loading clock and request metrics."""

    def __init__(self, model: str, version: int, behaviour: Behaviour) -> None:
        self.model, self.version = model, version
        self.behaviour = behaviour
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = 0
        self.bucket_counts = [0] * len(BUCKETS_US)
        self.latency_sum_us = 0.0

    def available(self) -> bool:
        return time.monotonic() - self.started >= self.behaviour.load_seconds

    def state(self) -> str:
        return "AVAILABLE" if self.available() else "LOADING"

    def serve(self) -> bool:
        """One predict: sleeps the latency; fails deterministically at the error rate."""
        behaviour = self.behaviour
        time.sleep(behaviour.latency_ms / 1000.0)
        with self.lock:
            total = self.ok + self.errors + 1
            failed = int(total * behaviour.error_rate) > int((total - 1) * behaviour.error_rate)
            if failed:
                self.errors += 1
            else:
                self.ok += 1
            latency_us = behaviour.latency_ms * 1000.0
            self.latency_sum_us += latency_us
            # Count the request in its own bucket; metrics() makes them cumulative.
            for i, bound in enumerate(BUCKETS_US):
                if latency_us <= bound:
                    self.bucket_counts[i] += 1
                    break
        return not failed

    def metrics(self) -> str:
        labels = f'model_name="{self.model}"'
        with self.lock:
            lines = [
                f"# TYPE {REQUEST_COUNT} counter",
                f'{REQUEST_COUNT}{{{labels},status="OK"}} {self.ok}',
                f'{REQUEST_COUNT}{{{labels},status="INTERNAL"}} {self.errors}',
                f"# TYPE {REQUEST_LATENCY} histogram",
            ]
            hist = f'{labels},API="predict",entrypoint="REST"'
            cumulative = 0
            for bound, count in zip(BUCKETS_US, self.bucket_counts, strict=True):
                cumulative += count
                lines.append(f'{REQUEST_LATENCY}_bucket{{{hist},le="{bound:.6g}"}} {cumulative}')
            total = self.ok + self.errors
            lines.append(f'{REQUEST_LATENCY}_bucket{{{hist},le="+Inf"}} {total}')
            lines.append(f"{REQUEST_LATENCY}_sum{{{hist}}} {self.latency_sum_us}")
            lines.append(f"{REQUEST_LATENCY}_count{{{hist}}} {total}")
        return "\n".join(lines) + "\n"

    def status_json(self) -> dict[str, Any]:
        return {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": self.state(),
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }


def _handler(state: ModelState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: str, content_type: str = "application/json") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            prefix = f"/v1/models/{state.model}"
            if self.path == "/monitoring/prometheus/metrics":
                self._send(200, state.metrics(), "text/plain; version=0.0.4")
            elif self.path in (prefix, f"{prefix}/versions/{state.version}"):
                self._send(200, json.dumps(state.status_json()))
            elif self.path.startswith(f"{prefix}/versions/"):
                version = self.path.rsplit("/", 1)[-1]
                self._send(
                    404, json.dumps({"error": f"Could not find version {version} of model {state.model}"})
                )
            else:
                self._send(404, json.dumps({"error": "Could not find model"}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if not self.path.startswith(f"/v1/models/{state.model}") or not self.path.endswith(":predict"):
                self._send(404, json.dumps({"error": "not found"}))
            elif not state.available():
                self._send(503, json.dumps({"error": "model is loading"}))
            elif state.serve():
                self._send(200, json.dumps({"predictions": [[1.0]]}))
            else:
                self._send(500, json.dumps({"error": "stand-in injected failure"}))

    return Handler


def _grpc_server(ip: str, state: ModelState) -> Any:
    """ModelService/GetModelStatus with tensorflow-serving-api's own messages."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
        def GetModelStatus(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
            if request.model_spec.name != state.model:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find model {request.model_spec.name}")
            response = get_model_status_pb2.GetModelStatusResponse()
            status = response.model_version_status.add()
            status.version = state.version
            status.state = (
                get_model_status_pb2.ModelVersionStatus.AVAILABLE
                if state.available()
                else get_model_status_pb2.ModelVersionStatus.LOADING
            )
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(), server)
    server.add_insecure_port(f"{ip}:8500")
    server.start()
    return server


class PodServer:
    """Everything one simulated pod serves, bound to its own loopback IP."""

    def __init__(
        self, ip: str, model: str, version: int, behaviour: Behaviour, grpc_enabled: bool = True
    ) -> None:
        self.ip = ip
        self.state = ModelState(model, version, behaviour)
        self.http = ThreadingHTTPServer((ip, 8501), _handler(self.state))
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.grpc = _grpc_server(ip, self.state) if grpc_enabled else None

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.grpc is not None:
            self.grpc.stop(grace=None)
