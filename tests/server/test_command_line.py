"""TF Serving's command line: the operator's is accepted, anything else refused at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modeldeploy.api.spec import Batching
from modeldeploy.children import tfconfig
from testbed.modelserver.flags import UsageError, parse
from testbed.modelserver.servable import Registry
from testbed.modelserver.server import ModelServer, PathMap

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def test_the_operators_command_line_parses_with_every_value_typed() -> None:
    args = tfconfig.server_args(
        Batching(), ["--tensorflow_intra_op_parallelism=2", "--enable_model_warmup=false"]
    )
    flags = parse(args)
    assert flags["port"] == tfconfig.GRPC_PORT
    assert flags["rest_api_port"] == tfconfig.REST_PORT
    assert flags["enable_batching"] is True
    assert flags["tensorflow_intra_op_parallelism"] == 2
    assert flags["enable_model_warmup"] is False


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--model_config_path=/x", "unknown argument: --model_config_path=/x"),
        ("--port=eighty", "Couldn't interpret value eighty for flag port."),
        ("--enable_batching=yes", "Couldn't interpret value yes for flag enable_batching."),
        ("models.config", "unknown argument: models.config"),
    ],
)
def test_what_tf_serving_lacks_is_refused(arg: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(["--port=8500", arg])


def test_an_unknown_flag_stops_the_process_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testbed.modelserver", "--rest_api_port=8501", "--no_such_flag=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 255
    assert "unknown argument: --no_such_flag=1" in result.stderr


def test_config_files_are_parsed_as_tf_serving_parses_them(tmp_path: Path) -> None:
    (tmp_path / "models.config").write_text(
        "model_config_list { config { name: 'm' base_path: '/x' nme: 1 } }"
    )
    flags = parse(["--model_config_file=/config/models.config"])
    with pytest.raises(Exception, match="Invalid protobuf file"):
        ModelServer(flags, Registry(), PathMap((("/config", tmp_path),)))
    (tmp_path / "monitoring.config").write_text("prometheus_config { enable: true path: '/m' }\n")
    (tmp_path / "models.config").write_text("model_config_list { config { name: 'm' base_path: '/none' } }")
    server = ModelServer(
        parse(
            [
                "--model_config_file=/config/models.config",
                "--monitoring_config_file=/config/monitoring.config",
            ]
        ),
        Registry(),
        PathMap((("/config", tmp_path),)),
    )
    assert server.metrics_path == "/m"
    assert list(server.models) == ["m"]
