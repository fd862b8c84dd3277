"""The TF Serving-compatible model server (testbed/modelserver) on its own: no cluster, real
TensorFlow, real sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modeldeploy.children import tfconfig
from testbed.cluster.localcluster import free_ports
from testbed.modelserver.export import ensure_exported
from testbed.modelserver.flags import parse
from testbed.modelserver.process import ServingEndpoints
from testbed.modelserver.servable import Registry
from testbed.modelserver.server import ModelServer, PathMap
from testbed.modelserver.store import make_store

ADDRESS = "127.0.0.1"


@pytest.fixture(scope="session")
def exports() -> Path:
    return ensure_exported()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, exports: Path) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), exports)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry()


StartServer = Callable[..., tuple[ServingEndpoints, int, int]]


@pytest.fixture
def start_server(tmp_path: Path, store: Path, registry: Registry) -> Iterator[StartServer]:
    """A server started from the command line the operator builds, for ``versions`` of mnist."""
    started: list[ServingEndpoints] = []

    def start(
        *versions: int, extra_args: tuple[str, ...] = (), load_seconds: float = 0.0, grpc: bool = True
    ) -> tuple[ServingEndpoints, int, int]:
        config = tmp_path / f"config-{len(started)}"
        config.mkdir()
        model_config = tfconfig.model_server_config("mnist", versions[0])
        model_config.model_config_list.config[0].model_version_policy.specific.versions.extend(versions[1:])
        from google.protobuf import text_format

        (config / tfconfig.MODEL_CONFIG_FILE).write_text(text_format.MessageToString(model_config))
        (config / tfconfig.MONITORING_CONFIG_FILE).write_text(
            tfconfig.monitoring_config_text(tfconfig.MonitoringConfig())
        )
        grpc_port, rest_port = free_ports(2)
        args = [
            a.replace(f"--port={tfconfig.GRPC_PORT}", f"--port={grpc_port}").replace(
                f"--rest_api_port={tfconfig.REST_PORT}", f"--rest_api_port={rest_port}"
            )
            for a in tfconfig.server_args(None, list(extra_args))
        ]
        paths = PathMap(((tfconfig.CONFIG_DIR, config), (f"{tfconfig.MODELS_DIR}/mnist", store / "mnist")))
        server = ModelServer(parse(args), registry, paths, lambda model, version: load_seconds)
        endpoints = ServingEndpoints.start(server, ADDRESS, grpc_enabled=grpc)
        started.append(endpoints)
        return endpoints, rest_port, grpc_port

    yield start
    for endpoints in started:
        endpoints.stop()
