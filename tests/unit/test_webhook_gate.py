"""Asking a webhook gate, against real loopback receivers: a 2xx is a yes, a refusal carries
its first line, a hanging gate is cut at its timeout, and a URL the admin did not allow is
refused before any request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modeldeploy.probes.webhook_gate import WEBHOOK_NOT_ALLOWED, GateAnswer, ask, webhook_refusal

pytestmark = pytest.mark.timeout(30)


class Gate:
    """A loopback gate answering ``status`` with ``reply``, or never answering when ``hang``."""

    def __init__(self, status: int, reply: bytes = b"", hang: bool = False) -> None:
        self.bodies: list[bytes] = []
        self.released = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                gate.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if hang:
                    gate.released.wait()
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/gate"

    def stop(self) -> None:
        self.released.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def gates() -> Iterator[list[Gate]]:
    started: list[Gate] = []
    yield started
    for gate in started:
        gate.stop()


def test_a_2xx_is_a_yes_and_the_gate_gets_the_payload(gates: list[Gate]) -> None:
    gates.append(Gate(204))
    assert ask(gates[0].url, b'{"version":3}', 5) == GateAnswer(True)
    assert gates[0].bodies == [b'{"version":3}']


def test_a_refusal_carries_its_status_and_first_line(gates: list[Gate]) -> None:
    gates.append(Gate(500, b"\n  load test failed: p99 900ms\nstack trace ...\n"))
    assert ask(gates[0].url, b"{}", 5) == GateAnswer(False, "HTTP 500: load test failed: p99 900ms")


def test_a_hanging_gate_is_cut_at_its_timeout(gates: list[Gate]) -> None:
    gates.append(Gate(200, hang=True))
    started = time.monotonic()
    answer = ask(gates[0].url, b"{}", 0.5)
    took = time.monotonic() - started
    assert not answer.allowed
    assert "0.5s" in answer.detail
    # the receiver never answers: any bound well under its hang proves the cut, even on a busy machine
    assert took < 10, f"the call took {took:.1f}s past a 0.5 s timeout"


def test_a_url_the_admin_did_not_allow_is_refused_by_name() -> None:
    allowed = ["http://127.0.0.1:8080/hooks"]
    assert webhook_refusal("http://127.0.0.1:8080/hooks/load-test", allowed) is None
    for url in ("http://169.254.169.254/latest", "http://127.0.0.1:8081/hooks", "http://127.0.0.1:8080/"):
        refusal = webhook_refusal(url, allowed)
        assert refusal is not None
        assert refusal.startswith(WEBHOOK_NOT_ALLOWED)
    assert webhook_refusal("http://127.0.0.1:8080/hooks", []) is not None  # none allowed by default
