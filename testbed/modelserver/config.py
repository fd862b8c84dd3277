"""TF Serving's config files, parsed as TF Serving parses them: protobuf text format.

The model config uses tensorflow-serving-api's own ``ModelServerConfig``. The
monitoring and batching messages are not shipped in that package, so their
descriptors are declared here, field for field as TF Serving 2.18.0 defines them
(``tensorflow_serving/config/monitoring_config.proto``,
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``): text
format then refuses an unknown field exactly as TF Serving would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401 - registers the wrapper types in the pool
)
from tensorflow_serving.config import model_server_config_pb2

DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


class ConfigError(Exception):
    """A config file TF Serving would refuse; str() names the file."""


def _messages() -> tuple[type[Any], type[Any]]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="modeldeploy_test_double/serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    f = descriptor_pb2.FieldDescriptorProto
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=f.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=f.LABEL_OPTIONAL,
    )
    batching = proto.message_type.add(name="BatchingParameters")
    for name, number, wrapper in (
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
        ("enable_large_batch_splitting", 8, "BoolValue"),
        ("max_execution_batch_size", 9, "Int64Value"),
    ):
        batching.field.add(
            name=name,
            number=number,
            type=f.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
            label=f.LABEL_OPTIONAL,
        )
    batching.field.add(name="allowed_batch_sizes", number=6, type=f.TYPE_INT64, label=f.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()  # holds the wrapper types the fields refer to
    try:
        file = pool.FindFileByName(proto.name)
    except KeyError:  # first import in this process
        pool.Add(proto)
        file = pool.FindFileByName(proto.name)
    monitoring_cls = message_factory.GetMessageClass(file.message_types_by_name["MonitoringConfig"])
    batching_cls = message_factory.GetMessageClass(file.message_types_by_name["BatchingParameters"])
    return monitoring_cls, batching_cls


MonitoringConfig, BatchingParameters = _messages()


def _parse(path: Path, message: Any) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read '{path}': {exc.strerror}") from None
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(f"Invalid protobuf file: '{path}': {exc}") from None
    return message


def model_server_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    return _parse(path, model_server_config_pb2.ModelServerConfig())


def metrics_path(path: Path | None) -> str | None:
    """Where Prometheus metrics are served; None when monitoring is off (TF Serving's
    default without a monitoring config)."""
    if path is None:
        return None
    config = _parse(path, MonitoringConfig())
    if not config.prometheus_config.enable:
        return None
    return str(config.prometheus_config.path or DEFAULT_METRICS_PATH)


def batching_parameters(path: Path) -> Any:
    return _parse(path, BatchingParameters())
