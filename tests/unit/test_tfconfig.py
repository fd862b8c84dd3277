"""TF Serving's config files: built from messages and typed functions, parsed back here."""

from __future__ import annotations

import re

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from modeldeploy.api.spec import Batching
from modeldeploy.children import tfconfig


def test_model_config_parses_back_with_the_proto_and_pins_the_version() -> None:
    text = tfconfig.model_config_text("mnist", 7)
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = parsed.model_config_list.config
    assert model.name == "mnist"
    assert model.base_path == "/models/mnist"
    assert model.model_platform == "tensorflow"
    assert list(model.model_version_policy.specific.versions) == [7]


def test_monitoring_config_uses_tf_serving_field_names() -> None:
    # MonitoringConfig { PrometheusConfig prometheus_config { bool enable; string path } }
    text = tfconfig.monitoring_config_text(tfconfig.MonitoringConfig())
    assert re.fullmatch(
        r'prometheus_config \{\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n\}\n', text
    )


def test_batching_parameters_use_wrapper_values() -> None:
    text = tfconfig.batching_parameters_text(Batching(max_batch_size=8, batch_timeout_micros=500))
    assert text.splitlines() == [
        "max_batch_size { value: 8 }",
        "batch_timeout_micros { value: 500 }",
        "max_enqueued_batches { value: 100 }",
        "num_batch_threads { value: 4 }",
    ]


def test_server_args_turn_on_monitoring_and_batching() -> None:
    args = tfconfig.server_args(Batching(), ["--grpc_max_threads=8"])
    assert "--port=8500" in args
    assert "--rest_api_port=8501" in args
    assert "--monitoring_config_file=/config/monitoring.config" in args
    assert "--enable_batching=true" in args
    assert args[-1] == "--grpc_max_threads=8"
    assert not any(a.startswith("--enable_batching") for a in tfconfig.server_args(None, []))


def test_reserved_flags_are_found() -> None:
    assert tfconfig.reserved_flags_in(["--port=9000", "--foo=1", "--model_config_file=/x"]) == [
        "--port=9000",
        "--model_config_file=/x",
    ]


def test_config_import_path_has_no_tensorflow() -> None:
    """The operator image installs tensorflow-serving-api without TensorFlow."""
    import subprocess
    import sys

    code = "import sys, modeldeploy.control.handlers; sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
