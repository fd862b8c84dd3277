"""TensorFlow Serving configuration files, built from typed inputs, never hand-written.

The model config comes from tensorflow-serving-api's ``ModelServerConfig``
message and protobuf's text format. Only ``tensorflow_serving.config`` is
imported: those messages pull in no TensorFlow, so the operator image stays
small. The monitoring and batching files are text protos too, but their messages
(``MonitoringConfig``, ``BatchingParameters``) are not shipped in that package;
each is written by one typed function whose field names the unit tests pin to
TF Serving's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ..api.names import GRPC_PORT, METRICS_PATH, REST_PORT
from ..api.spec import Batching

CONFIG_DIR = "/config"
MODELS_DIR = "/models"
MODEL_CONFIG_FILE = "models.config"
MONITORING_CONFIG_FILE = "monitoring.config"
BATCHING_CONFIG_FILE = "batching.config"


def model_server_config(model_name: str, version: int) -> model_server_config_pb2.ModelServerConfig:
    """One model, pinned to exactly ``version`` so TF Serving never serves another."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = f"{MODELS_DIR}/{model_name}"
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.append(version)
    return config


def model_config_text(model_name: str, version: int) -> str:
    return str(text_format.MessageToString(model_server_config(model_name, version)))


@dataclass(frozen=True)
class MonitoringConfig:
    """TF Serving's MonitoringConfig: ``prometheus_config { enable path }``."""

    enable: bool = True
    path: str = METRICS_PATH


def monitoring_config_text(config: MonitoringConfig) -> str:
    enable = "true" if config.enable else "false"
    return f'prometheus_config {{\n  enable: {enable}\n  path: "{config.path}"\n}}\n'


def batching_parameters_text(batching: Batching) -> str:
    """TF Serving's BatchingParameters: every field is a wrapper message ``{ value: N }``."""
    fields = {
        "max_batch_size": batching.max_batch_size,
        "batch_timeout_micros": batching.batch_timeout_micros,
        "max_enqueued_batches": batching.max_enqueued_batches,
        "num_batch_threads": batching.num_batch_threads,
    }
    return "".join(f"{name} {{ value: {value} }}\n" for name, value in fields.items())


def server_args(batching: Batching | None, extra: list[str]) -> list[str]:
    """tensorflow_model_server flags; the operator owns ports and config paths."""
    args = [
        f"--port={GRPC_PORT}",
        f"--rest_api_port={REST_PORT}",
        f"--model_config_file={CONFIG_DIR}/{MODEL_CONFIG_FILE}",
        f"--monitoring_config_file={CONFIG_DIR}/{MONITORING_CONFIG_FILE}",
    ]
    if batching is not None:
        args += ["--enable_batching=true", f"--batching_parameters_file={CONFIG_DIR}/{BATCHING_CONFIG_FILE}"]
    return args + list(extra)


# Flags a user may not pass in runtime.args: the operator's probes, Service and
# config depend on them, so overriding one would break serving silently.
RESERVED_FLAGS = (
    "--port",
    "--rest_api_port",
    "--model_config_file",
    "--model_name",
    "--model_base_path",
    "--monitoring_config_file",
)


def reserved_flags_in(args: list[str]) -> list[str]:
    return [a for a in args if a.split("=", 1)[0] in RESERVED_FLAGS]
