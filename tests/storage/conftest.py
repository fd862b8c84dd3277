"""Real storage servers on 127.0.0.1 and a real SavedModel, for the fetcher's tests."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testbed.support.s3server import start_moto


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real TensorFlow SavedModel (y = 2x + 1) in <dir>/saved_model.pb and variables/."""
    out = tmp_path_factory.mktemp("savedmodel") / "model"
    script = f"""
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
class Linear(tf.Module):
    def __init__(self):
        self.w = tf.Variable(2.0)
        self.b = tf.Variable(1.0)
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x):
        return {{"y": self.w * x + self.b}}
m = Linear()
tf.saved_model.save(m, {str(out)!r}, signatures={{"serving_default": m.__call__}})
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=240)
    assert (out / "saved_model.pb").is_file()
    assert (out / "variables").is_dir()
    return out


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a process of its own: real HTTP, real S3 protocol."""
    proc, endpoint = start_moto({})
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint_with_auth() -> Iterator[str]:
    """A moto S3 server that checks credentials (no IAM user exists, so every key is refused)."""
    proc, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server on 127.0.0.1 serving a fresh folder: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Script:
    """What the scripted server answers for one path: ``body``, announced as
    ``declared_length`` bytes, and then ``then``: "close" the connection, "stall" (send
    nothing more, hold it open) or "trickle" (a byte every few hundredths of a second)."""

    body: bytes
    declared_length: int | None = None
    then: str = "close"


@dataclass
class ScriptedServer:
    """A loopback HTTP server that misbehaves on purpose, as real storage servers and proxies
    do: it announces lengths it never sends, stalls and trickles."""

    base: str = ""
    scripts: dict[str, Script] = field(default_factory=dict)
    authorizations: list[str | None] = field(default_factory=list)
    requested: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)


def _scripted_handler(server: ScriptedServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            server.authorizations.append(self.headers.get("Authorization"))
            server.requested.set()
            self.close_connection = True
            script = server.scripts.get(self.path)
            if script is None:
                self.send_error(404)
                return
            self.send_response(200)
            length = len(script.body) if script.declared_length is None else script.declared_length
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(script.body)
            self.wfile.flush()
            if script.then == "stall":
                server.stopping.wait(timeout=120)
            while script.then == "trickle" and not server.stopping.wait(timeout=0.05):
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    return

    return Handler


@pytest.fixture
def scripted_http() -> Iterator[ScriptedServer]:
    """A ScriptedServer on 127.0.0.1; its ``scripts`` are filled in by the test."""
    scripted = ScriptedServer()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _scripted_handler(scripted))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scripted.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield scripted
    scripted.stopping.set()
    server.shutdown()
    server.server_close()
