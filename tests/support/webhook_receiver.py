"""A loopback webhook receiver for the notification tests: records every POST (headers and
body), answers with scripted statuses, or hangs (never answers) until stopped."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    def cloud_event(self) -> BaseCloudEvent:
        """Parsed by the CloudEvents SDK, as a real receiver would."""
        return from_http_event(HTTPMessage(headers=self.headers, body=self.body))

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return data


class WebhookReceiver:
    def __init__(self, statuses: list[int] | None = None, hang: bool = False) -> None:
        self.statuses = list(statuses or [])  # answered in turn; 200 once used up
        self.hang = hang
        self.received: list[Received] = []
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hang:
                    receiver.released.wait()  # the fault itself: never answer
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"

    def events(self) -> list[str]:
        return [r.data["event"] for r in self.received]

    def stop(self) -> None:
        self.released.set()
        self.http.shutdown()
        self.http.server_close()
