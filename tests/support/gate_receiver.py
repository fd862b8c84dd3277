"""A loopback webhook gate: answers each POST with the status and body scripted for its path,
or never answers; keeps the JSON bodies it was sent, in order."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GateReceiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.answers: dict[str, tuple[int, bytes]] = {}  # path -> (status, body); default 200
        self.hanging: set[str] = set()  # paths that never answer
        self.received: list[tuple[str, dict[str, Any]]] = []  # (path, body) in order
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                with receiver._lock:
                    receiver.received.append((self.path, body))
                    hang = self.path in receiver.hanging
                    status, reply = receiver.answers.get(self.path, (200, b"ok\n"))
                if hang:
                    receiver._released.wait()
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.host = host
        self.http = ThreadingHTTPServer((host, 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.http.server_port}{path}"

    def answer(self, path: str, status: int, reply: bytes = b"") -> None:
        with self._lock:
            self.answers[path] = (status, reply)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for p, body in self.received if p == path]

    def stop(self) -> None:
        self._released.set()
        self.http.shutdown()
        self.http.server_close()
