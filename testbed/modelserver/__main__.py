"""``python -m testbed.modelserver [tensorflow_model_server flags]``: one model server.

Takes exactly TF Serving's command line (see ``flags``). Listens on
``$MODELSERVER_ADDRESS``: 127.0.0.1 unless set (TF Serving itself listens on 0.0.0.0;
a container image of this server sets that, inside the pod's own network).
``$MODELSERVER_LOAD_SECONDS`` holds every version in LOADING that long first, as a larger
model would be (its status endpoint answers meanwhile, as TF Serving's does).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from .config import ConfigError
from .flags import TF_SERVING_2_18_FLAGS, UsageError, parse
from .process import ServingEndpoints
from .servable import Registry
from .server import ModelServer


def usage() -> str:
    return "usage: tensorflow_model_server\nFlags:\n" + "".join(
        f"\t--{name}={default!r}\t{kind.__name__}\n"
        for name, (kind, default) in TF_SERVING_2_18_FLAGS.items()
    )


def main(argv: list[str]) -> int:
    try:
        flags = parse(argv)
    except UsageError as exc:
        print(f"{exc}\n{usage()}", file=sys.stderr)
        return 255  # main.cc returns -1
    if flags["version"]:
        print("TensorFlow ModelServer: 2.18.0 (modeldeploy test double)")
        return 0
    try:
        load_seconds = float(os.environ.get("MODELSERVER_LOAD_SECONDS", "0"))
        server = ModelServer(flags, Registry(), load_delay=lambda model, version: load_seconds)
    except ConfigError as exc:
        print(f"Failed to start server. Error: {exc}", file=sys.stderr)
        return 255
    endpoints = ServingEndpoints.start(server, os.environ.get("MODELSERVER_ADDRESS", "127.0.0.1"))
    print(f"Running gRPC ModelServer at {flags['port']}, REST at {flags['rest_api_port']} ...", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    endpoints.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
