"""TF Serving's REST API on real SavedModels: status, metadata, predict, errors, metrics."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from testbed.modelserver import export
from testbed.support.wait import wait_for

from .conftest import ADDRESS, StartServer

pytestmark = pytest.mark.timeout(120)


def call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://{ADDRESS}:{port}{path}", data=data, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def available(port: int, version: int) -> bool:
    status, body = call(port, f"/v1/models/mnist/versions/{version}")
    return status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"


def test_predictions_are_tensorflows_own(start_server: StartServer, exports: Path) -> None:
    import tensorflow as tf

    _, port, _ = start_server(1, 2)
    wait_for(lambda: available(port, 1) and available(port, 2), 30, what="versions 1 and 2 AVAILABLE")
    inputs = [1.0, -3.5, 12.25]
    for version, name in ((1, export.HALF_PLUS_TWO), (2, export.HALF_PLUS_THREE)):
        expected = (
            tf.saved_model.load(str(exports / name))
            .signatures["serving_default"](x=tf.constant(inputs))["y"]
            .numpy()
            .tolist()
        )
        status, rows = call(port, f"/v1/models/mnist/versions/{version}:predict", {"instances": inputs})
        assert (status, rows) == (200, {"predictions": expected})
        status, columns = call(
            port,
            f"/v1/models/mnist/versions/{version}:predict",
            {"signature_name": "serving_default", "inputs": {"x": inputs}},
        )
        assert (status, columns) == (200, {"outputs": expected})
    assert call(port, "/v1/models/mnist/versions/1:predict", {"instances": [1.0]})[1] == {
        "predictions": [2.5]
    }
    # Without a version: the latest AVAILABLE one answers, as TF Serving's Latest() does.
    assert call(port, "/v1/models/mnist:predict", {"instances": [1.0]})[1] == {"predictions": [3.5]}


def test_metadata_lists_the_exported_signature(start_server: StartServer) -> None:
    _, port, _ = start_server(5)
    wait_for(lambda: available(port, 5), 30, what="version 5 AVAILABLE")
    status, body = call(port, "/v1/models/mnist/versions/5/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "mnist", "signature_name": "", "version": "5"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == {"x"}
    assert signature["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert set(signature["outputs"]) == {"y", "doubled"}  # OUTPUT_ADDED
    assert signature["method_name"] == "tensorflow/serving/predict"


def test_loading_then_available(start_server: StartServer) -> None:
    _, port, _ = start_server(1, load_seconds=2.0)
    status, body = call(port, "/v1/models/mnist/versions/1")
    assert status == 200
    assert body["model_version_status"][0]["state"] == "LOADING"
    code, error = call(port, "/v1/models/mnist/versions/1:predict", {"instances": [1.0]})
    assert code == 404
    assert error == {"error": "Servable not found for request: Specific(mnist, 1)"}
    wait_for(lambda: available(port, 1), 30, what="AVAILABLE after loading")


def test_a_folder_that_is_not_a_savedmodel_ends_with_tf_servings_error(start_server: StartServer) -> None:
    _, port, _ = start_server(6)

    def ended() -> dict[str, Any] | None:
        entry = call(port, "/v1/models/mnist/versions/6")[1]["model_version_status"][0]
        return entry if entry["state"] == "END" else None

    entry = wait_for(ended, 30, what="version 6 END")
    assert entry["status"]["error_code"] == "NOT_FOUND"
    assert entry["status"]["error_message"] == (
        "Could not find SavedModel .pb or .pbtxt at supplied export directory path: /models/mnist/6"
    )


def test_zero_padded_version_folders_are_versions(start_server: StartServer) -> None:
    _, port, _ = start_server(8)  # the folder is 00000008
    wait_for(lambda: available(port, 8), 30, what="version 8 (folder 00000008) AVAILABLE")
    status, body = call(port, "/v1/models/mnist/versions/8/metadata")
    assert status == 200
    assert (
        body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]["dtype"]
        == "DT_DOUBLE"
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "/v1/models/mnist/versions/1:predict",
            {"inputs": {"y": [1.0]}},
            400,
            "input tensor alias not found in signature: y. Inputs expected to be in the set {x}.",
        ),
        (
            "/v1/models/mnist/versions/1:predict",
            {"instances": ["a"]},
            400,
            "input 'x' is not of type float32",
        ),
        (
            "/v1/models/mnist/versions/1:predict",
            {"instances": [1.0], "signature_name": "nope"},
            400,
            'Serving signature key "nope" not found.',
        ),
        ("/v1/models/mnist/versions/1:predict", {"instances": [1.0], "inputs": [1.0]}, 400, "Not both"),
        (
            "/v1/models/other:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Latest(other)",
        ),
        ("/v1/models/other", None, 404, "Could not find any versions of model other"),
        ("/v1/models/mnist/versions/42", None, 404, "Could not find version 42 of model mnist"),
        ("/v1/models/mnist/versions/x", None, 400, "Malformed request: GET /v1/models/mnist/versions/x"),
    ],
)
def test_errors_have_tf_servings_shape_and_status(
    start_server: StartServer, path: str, body: dict[str, Any] | None, status: int, message: str
) -> None:
    _, port, _ = start_server(1)
    wait_for(lambda: available(port, 1), 30, what="version 1 AVAILABLE")
    got_status, got = call(port, path, body)
    assert got_status == status
    assert set(got) == {"error"}
    assert message in got["error"]


def test_metrics_count_real_requests(start_server: StartServer) -> None:
    _, port, _ = start_server(3)  # refuses x >= 5 with a tf.debugging assertion
    wait_for(lambda: available(port, 3), 30, what="version 3 AVAILABLE")
    for value in (1.0, 2.0, 9.0):
        call(port, "/v1/models/mnist/versions/3:predict", {"instances": [value]})
    status, refused = call(port, "/v1/models/mnist/versions/3:predict", {"instances": [7.0]})
    assert status == 400
    assert "input must be below 5" in refused["error"]  # TensorFlow's own InvalidArgument
    _, text = call(port, "/monitoring/prometheus/metrics")
    assert ':tensorflow:serving:request_count{model_name="mnist",status="OK"} 2' in text
    assert ':tensorflow:serving:request_count{model_name="mnist",status="INVALID_ARGUMENT"} 2' in text
    labels = 'model_name="mnist",API="predict",entrypoint="REST"'
    assert f":tensorflow:serving:request_latency_count{{{labels}}} 4" in text
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="10"}}' in text
    assert f':tensorflow:serving:request_latency_bucket{{{labels},le="+Inf"}} 4' in text


def test_stop_ends_the_serving_loop_and_frees_the_port(start_server: StartServer) -> None:
    # The loop waits without polling: stop() must wake it, or it would hang here for good.
    endpoints, port, _ = start_server(1, grpc=False)
    wait_for(lambda: available(port, 1), 30, what="AVAILABLE")
    assert endpoints.rest is not None
    thread = endpoints.rest.thread
    endpoints.rest.stop()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ADDRESS, port), timeout=2).close()
    with socket.socket() as again:  # as the next server on this address binds it
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((ADDRESS, port))
        again.listen()
