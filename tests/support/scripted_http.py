"""A loopback HTTP server answering each path with a scripted body, at a scripted pace:
the broken peers (metrics pages, Prometheus) of the fault tests."""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ScriptedServer:
    def __init__(self, bodies: dict[str, bytes] | None = None, default: bytes = b"") -> None:
        self.bodies: dict[str, bytes] = dict(bodies or {})
        self.default = default
        # Query-string fragment -> body, before ``bodies``: Prometheus queries share one path.
        self.queries: dict[str, bytes] = {}
        self.drip_seconds = 0.0  # > 0: four bytes at a time, this long apart
        self.status = 200  # every answer's HTTP status
        # Called with each request's decoded query before it is answered, until it returns
        # True once: a fault that must strike one chosen request (pause the caller), not all.
        self.on_request: Callable[[str], bool] | None = None
        self._hook_lock = threading.Lock()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.unquote_plus(self.path.partition("?")[2])
                scripted._run_hook(query)
                matched = [b for fragment, b in scripted.queries.items() if fragment in query]
                body = (
                    matched[0] if matched else scripted.bodies.get(self.path.split("?")[0], scripted.default)
                )
                self.send_response(scripted.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(0, len(body), 4):
                    self.wfile.write(body[i : i + 4])
                    self.wfile.flush()
                    if scripted.drip_seconds:
                        time.sleep(scripted.drip_seconds)  # the fault itself: a slow drip

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        # shutdown() waits for the loop's next poll: a short one keeps each test's teardown
        # from costing half a second (the mutation run repeats these tests per mutant).
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def _run_hook(self, query: str) -> None:
        # Under a lock: of requests arriving together, one alone may see the hook fire.
        with self._hook_lock:
            if self.on_request is not None and self.on_request(query):
                self.on_request = None

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
