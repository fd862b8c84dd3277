"""One model server: TF Serving's APIs over a ``ModelServer``, on one address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rest import RestServer
from .server import ModelServer


@dataclass
class ServingEndpoints:
    server: ModelServer
    rest: RestServer | None
    grpc: Any | None

    @classmethod
    def start(cls, server: ModelServer, address: str, grpc_enabled: bool = True) -> ServingEndpoints:
        flags = server.flags
        rest_port = flags["rest_api_port"]
        if rest_port and rest_port == flags["port"]:
            rest_port = 0  # TF Serving logs "--rest_api_port cannot be same as --port" and skips REST
        grpc_server = None
        if grpc_enabled:
            from .grpc_api import serve

            grpc_server = serve(server, address, flags["port"])
        rest = RestServer(server, address, rest_port) if rest_port else None
        return cls(server, rest, grpc_server)

    def stop(self) -> None:
        self.server.stop()
        if self.rest is not None:
            self.rest.stop()
        if self.grpc is not None:
            self.grpc.stop(grace=None)
