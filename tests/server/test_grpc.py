"""TF Serving's gRPC API, driven by tensorflow-serving-api's own stubs."""

from __future__ import annotations

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from testbed.support.wait import wait_for

from .conftest import ADDRESS, StartServer

pytestmark = pytest.mark.timeout(120)


def version_status(port: int, version: int) -> get_model_status_pb2.ModelVersionStatus:
    with grpc.insecure_channel(f"{ADDRESS}:{port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "mnist"
        request.model_spec.version.value = version
        (entry,) = (
            model_service_pb2_grpc.ModelServiceStub(channel)
            .GetModelStatus(request, timeout=5)
            .model_version_status
        )
        return entry


def status_of(port: int, version: int) -> int:
    return int(version_status(port, version).state)


def test_predict_metadata_and_status_over_grpc(start_server: StartServer) -> None:
    _, _, port = start_server(1, load_seconds=1.0)
    assert status_of(port, 1) == get_model_status_pb2.ModelVersionStatus.LOADING
    wait_for(
        lambda: status_of(port, 1) == get_model_status_pb2.ModelVersionStatus.AVAILABLE, 30, what="AVAILABLE"
    )
    with grpc.insecure_channel(f"{ADDRESS}:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 4.0], dtype=tf.float32))
        response = stub.Predict(request, timeout=10)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 4.0]
        assert response.model_spec.version.value == 1

        request.inputs.clear()
        request.inputs["nope"].CopyFrom(tf.make_tensor_proto([1.0], dtype=tf.float32))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(request, timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT

        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        metadata_request.model_spec.name = "mnist"
        metadata = stub.GetModelMetadata(metadata_request, timeout=10)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        metadata.metadata["signature_def"].Unpack(signatures)
        assert set(signatures.signature_def["serving_default"].inputs) == {"x"}

        missing = get_model_status_pb2.GetModelStatusRequest()
        missing.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as unknown:
            model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(missing, timeout=5)
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_version_that_failed_to_load_reports_its_error_code_over_grpc(start_server: StartServer) -> None:
    _, _, port = start_server(6)
    wait_for(
        lambda: status_of(port, 6) == get_model_status_pb2.ModelVersionStatus.END, 30, what="version 6 END"
    )
    entry = version_status(port, 6)
    assert entry.status.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert entry.status.error_message.startswith("Could not find SavedModel")
