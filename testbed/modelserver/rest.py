"""TF Serving's REST API (``--rest_api_port``): model status, metadata, predict and the
Prometheus metrics page, with TF Serving's JSON shapes and error mapping
(``tensorflow_serving/model_servers/http_rest_api_handler.cc``)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from google.protobuf import json_format

from .errors import ServingError
from .server import ModelServer

# The request paths TF Serving's REST handler accepts (labels are not supported here).
_PATH = re.compile(
    r"^/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?:(?::(?P<method>predict|classify|regress))|(?:/(?P<sub>metadata)))?$",
    re.IGNORECASE,
)
Reply = tuple[int, str, str]  # HTTP status, content type, body
# Test-only, outside TF Serving's /v1/ API: the server's predict log (ModelServer.predict_log).
PREDICT_LOG = "/testing/predict-log"


def _json(status: int, body: Any) -> Reply:
    return status, "application/json", json.dumps(body, indent=1)


def _error(exc: ServingError) -> Reply:
    return _json(exc.http_status, {"error": exc.message})


# Metrics pages a broken exporter or proxy could serve: faults for the operator's tests
# (``metrics_fault``), never served unless a test asks.
FAULTY_METRICS = {
    "garbage": ':tensorflow:serving:request_count{{model_name="{model}",status="OK"}} lots\n',
    "non_utf8": "\udcff\udcfe not text",
}
_BUCKET_SAMPLE = re.compile(
    r'^(:tensorflow:serving:request_latency_bucket\{model_name="(?P<model>[^"]*)".*\}) \S+$'
)
_OK_SAMPLE = re.compile(
    r'^:tensorflow:serving:request_count\{model_name="(?P<model>[^"]*)",status="OK"\} (?P<n>\S+)$'
)


def _nan_latency(page: str, model: str) -> str:
    """The true page with every latency bucket of ``model`` NaN, while the request counts
    stay true: the p99 is the only number that can decide, and it is not a number."""
    lines = [
        f"{m.group(1)} NaN" if (m := _BUCKET_SAMPLE.match(line)) and m["model"] == model else line
        for line in page.splitlines()
    ]
    return "\n".join(lines) + "\n"


def _negative_errors(page: str, model: str) -> str:
    """The true page plus an error count of minus half the OK count. Taken as a number, the
    errors fall as traffic grows, and the success rate comes out above 1: a pass."""
    ok = sum(
        float(m["n"]) for line in page.splitlines() if (m := _OK_SAMPLE.match(line)) and m["model"] == model
    )
    errors = f':tensorflow:serving:request_count{{model_name="{model}",status="INTERNAL"}} {-ok / 2:g}'
    return page.replace(
        "# TYPE :tensorflow:serving:request_latency",
        errors + "\n# TYPE :tensorflow:serving:request_latency",
        1,
    )


# Faults of the counts that decide a verdict (latency, errors), applied to the true page.
DECISIVE_FAULTS = {"nan": _nan_latency, "negative": _negative_errors}


def _metrics_page(server: ModelServer) -> str:
    model = next(iter(server.models), "")
    if server.metrics_fault in FAULTY_METRICS:
        return FAULTY_METRICS[server.metrics_fault].format(model=model)
    if server.metrics_fault in DECISIVE_FAULTS:
        return DECISIVE_FAULTS[server.metrics_fault](server.metrics.exposition(), model)
    return server.metrics.exposition()


def handle(server: ModelServer, method: str, path: str, body: bytes) -> Reply:
    """One REST request; never raises."""
    if method == "GET" and server.metrics_path is not None and path == server.metrics_path:
        return 200, "text/plain; version=0.0.4", _metrics_page(server)
    if method == "GET" and path == PREDICT_LOG:
        return _json(200, list(server.predict_log))
    if not path.lower().startswith("/v1/"):
        return 404, "text/plain", f"{path} not found"
    match = _PATH.match(path)
    try:
        if match is None or (method == "GET") == bool(match["method"]) or method not in ("GET", "POST"):
            raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
        version = int(match["version"]) if match["version"] else None
        if method == "GET" and match["sub"]:
            return _json(200, _metadata(server, match["model"], version))
        if method == "GET":
            return _json(200, _status(server, match["model"], version))
        if match["method"].lower() != "predict":
            raise ServingError("UNIMPLEMENTED", f"{match['method']} is not served by this test double")
        return _json(200, _predict(server, match["model"], version, body))
    except ServingError as exc:
        return _error(exc)


def _status(server: ModelServer, model: str, version: int | None) -> dict[str, Any]:
    return {
        "model_version_status": [
            {
                "version": str(state.version),
                "state": state.state,
                "status": {"error_code": state.error_code, "error_message": state.error_message},
            }
            for state in server.status(model, version)
        ]
    }


def _metadata(server: ModelServer, model: str, version: int | None) -> dict[str, Any]:
    served, servable = server.servable(model, version)
    signature_defs = json_format.MessageToDict(
        servable.signature_def_map(),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return {
        "model_spec": {"name": model, "signature_name": "", "version": str(served)},
        "metadata": {"signature_def": signature_defs},
    }


def _request_inputs(request: dict[str, Any], input_names: list[str]) -> tuple[dict[str, Any], bool]:
    """(named inputs, row format?) from a predict body in either of TF Serving's formats."""
    if "instances" in request and "inputs" in request:
        raise ServingError("INVALID_ARGUMENT", "Not both 'instances' and 'inputs' can be specified.")
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("INVALID_ARGUMENT", "'instances' must be a non-empty list")
        if all(isinstance(i, dict) for i in instances):
            names = set(instances[0])
            if any(set(i) != names for i in instances):
                raise ServingError("INVALID_ARGUMENT", "Every instance must name the same inputs.")
            return {name: [i[name] for i in instances] for name in names}, True
        if len(input_names) != 1:
            raise ServingError(
                "INVALID_ARGUMENT", f"The signature has {len(input_names)} inputs: instances must name them."
            )
        return {input_names[0]: instances}, True
    if "inputs" in request:
        inputs = request["inputs"]
        if isinstance(inputs, dict):
            return inputs, False
        if len(input_names) != 1:
            raise ServingError(
                "INVALID_ARGUMENT", f"The signature has {len(input_names)} inputs: inputs must name them."
            )
        return {input_names[0]: inputs}, False
    raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key")


def _predict(server: ModelServer, model: str, version: int | None, body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except ValueError as exc:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {exc}") from None
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", "JSON Value is not an object")
    signature_name = str(request.get("signature_name") or "")
    # Input names come from the signature of the version that will answer.
    _, servable = server.servable(model, version)
    input_names = sorted(servable.signature(signature_name).inputs)
    inputs, rows = _request_inputs(request, input_names)
    _, outputs = server.predict(model, version, signature_name, inputs, entrypoint="REST")
    plain = {name: np.asarray(value).tolist() for name, value in outputs.items()}
    if not rows:
        return {"outputs": next(iter(plain.values())) if len(plain) == 1 else plain}
    if len(plain) == 1:
        return {"predictions": next(iter(plain.values()))}
    count = len(next(iter(plain.values())))
    return {"predictions": [{name: values[i] for name, values in plain.items()} for i in range(count)]}


class RestServer:
    """The REST API on ``(address, port)``, served by threads until ``stop()``."""

    def __init__(self, server: ModelServer, address: str, port: int) -> None:
        model_server = server

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                status, content_type, text = handle(model_server, method, path, body)
                data = text.encode("utf-8", "surrogateescape")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if model_server.metrics_fault == "drip" and path == model_server.metrics_path:
                    for i in range(len(data)):  # a byte a second: a peer that never quite answers
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(1.0)
                else:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

        self.address = address
        self.http = ThreadingHTTPServer((address, port), Handler)
        self.http.daemon_threads = True
        # No polling: a fleet serves thousands of pods from one process, and each server
        # waking twice a second to look for a shutdown would cost a scale run's cores more
        # than the operator it measures. stop() wakes the loop instead.
        self.thread = threading.Thread(
            target=self.http.serve_forever,
            kwargs={"poll_interval": None},
            name=f"rest-{address}",
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        """Ask the loop to end, then connect until it has: each connection wakes its wait,
        and the first one after the request is seen lets it go."""
        ending = threading.Thread(target=self.http.shutdown, daemon=True)
        ending.start()
        while ending.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection((self.address, self.http.server_port), timeout=1.0).close()
            ending.join(0.05)
        self.http.server_close()
