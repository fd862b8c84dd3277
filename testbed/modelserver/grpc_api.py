"""TF Serving's gRPC API (``--port``) with tensorflow-serving-api's own services and
messages: ``PredictionService.Predict``, ``PredictionService.GetModelMetadata`` and
``ModelService.GetModelStatus``."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from .errors import ServingError
from .server import ModelServer

_STATES = {
    "START": get_model_status_pb2.ModelVersionStatus.START,
    "LOADING": get_model_status_pb2.ModelVersionStatus.LOADING,
    "AVAILABLE": get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    "UNLOADING": get_model_status_pb2.ModelVersionStatus.UNLOADING,
    "END": get_model_status_pb2.ModelVersionStatus.END,
}


def _abort(context: Any, exc: ServingError) -> None:
    context.abort(grpc.StatusCode[exc.code], exc.message)


def _version(spec: Any) -> int | None:
    return spec.version.value if spec.HasField("version") else None


class _Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc]
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        try:
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            served, outputs = self.server.predict(
                request.model_spec.name,
                _version(request.model_spec),
                request.model_spec.signature_name,
                inputs,
                "GRPC",
            )
        except ServingError as exc:
            _abort(context, exc)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        if list(request.metadata_field) != ["signature_def"]:
            _abort(
                context,
                ServingError("INVALID_ARGUMENT", "Metadata field(s) must be specified: signature_def"),
            )
        try:
            served, servable = self.server.servable(request.model_spec.name, _version(request.model_spec))
        except ServingError as exc:
            _abort(context, exc)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = served
        response.metadata["signature_def"].Pack(servable.signature_def_map())
        return response


class _Models(model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc]
    def __init__(self, server: ModelServer) -> None:
        self.server = server

    def GetModelStatus(self, request: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        try:
            states = self.server.status(request.model_spec.name, _version(request.model_spec))
        except ServingError as exc:
            _abort(context, exc)
        response = get_model_status_pb2.GetModelStatusResponse()
        for state in states:
            entry = response.model_version_status.add()
            entry.version = state.version
            entry.state = _STATES[state.state]
            entry.status.error_code = (
                ServingError(state.error_code, "").number if state.error_code != "OK" else 0
            )
            entry.status.error_message = state.error_message
        return response


def serve(server: ModelServer, address: str, port: int, threads: int = 4) -> grpc.Server:
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_Prediction(server), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_Models(server), grpc_server)
    if grpc_server.add_insecure_port(f"{address}:{port}") == 0:
        raise OSError(f"cannot bind gRPC to {address}:{port}")
    grpc_server.start()
    return grpc_server
