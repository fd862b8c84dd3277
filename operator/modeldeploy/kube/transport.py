"""HTTP to the API server: a urllib3 connection pool with the loaded credentials, raw
JSON in and out (the client builds the paths and bodies)."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3

from .credentials import Credentials, Identity


class ApiError(Exception):
    """An answer with an error status; ``body`` is the server's (a Status, as JSON)."""

    def __init__(
        self, status: int, reason: str, body: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.body = body
        self.headers: Mapping[str, str] = headers or {}

    @property
    def message(self) -> str:
        """The message of the Status the server answered with, else the reason."""
        try:
            return str(json.loads(self.body or "{}").get("message") or self.reason)
        except (TypeError, ValueError, AttributeError):
            return self.reason

    def __str__(self) -> str:
        return f"({self.status}) {self.reason}: {self.message}"


class Interrupter:
    """Ends a stream's blocked read from another thread, for good: a stopped watch lets go
    of its thread and its connection now, not at the server's next event or timeout."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answer: urllib3.BaseHTTPResponse | None = None
        self.interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            self._shut(self._answer)

    def attach(self, answer: urllib3.BaseHTTPResponse) -> None:
        with self._lock:
            self._answer = answer
            if self.interrupted:  # interrupted while the request was on its way
                self._shut(answer)

    def detach(self) -> None:
        with self._lock:
            self._answer = None

    @staticmethod
    def _shut(answer: urllib3.BaseHTTPResponse | None) -> None:
        # Shutting the socket's reading side wakes the read waiting on it, which then
        # sees the stream end; the connection is closed, never put back into the pool.
        # One already released or closed has nothing blocked on it.
        if answer is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                answer.shutdown()


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: bytes


class ApiClient:
    """Thread-safe: urllib3's pool is, and the pool is swapped only under a lock."""

    def __init__(self, credentials: Credentials, connections: int = 4) -> None:
        self.credentials = credentials
        self.connections = connections
        parsed = urllib.parse.urlsplit(credentials.server)
        self._scheme = parsed.scheme
        self._host = parsed.hostname or ""
        self._port = parsed.port
        # A server URL may carry a path (an API proxy's prefix); every request goes under it.
        self._prefix = parsed.path.rstrip("/")
        self._lock = threading.Lock()
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._pool_certificate: bytes | None = None
        # urllib3 would otherwise repeat a GET whose read timed out three times, making one
        # request's bound four of its reads. A refused or reset connection (an API server
        # restarting, a kept-alive connection it closed) is still tried again.
        self.retries = urllib3.util.Retry(total=2, read=0, redirect=0, status=0)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float],
        accept: str = "application/json",
    ) -> Response:
        """One request; an error status raises ApiError, a transport failure urllib3's error."""
        answer = self._open(method, path, query, body, content_type, timeout, preload=True, accept=accept)
        return Response(answer.status, dict(answer.headers), answer.data)

    def stream_lines(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        timeout: tuple[float, float],
        interrupter: Interrupter | None = None,
    ) -> Iterator[bytes]:
        """GET an answer that streams (a watch), one non-empty line at a time as it arrives.

        The read timeout bounds each wait for bytes, not the whole answer. An error status
        raises ApiError before the first line; a connection left before the end is closed,
        never put back into the pool half read. ``interrupter`` ends the stream early."""
        answer = self._open("GET", path, query, None, None, timeout, preload=False)
        if interrupter is not None:
            interrupter.attach(answer)
        finished = False
        try:
            pending = b""
            for chunk in answer.stream(64 * 1024):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line for line in lines if line.strip())
            if pending.strip():
                yield pending
            finished = not (interrupter and interrupter.interrupted)
        finally:
            if interrupter is not None:
                interrupter.detach()
            if not finished:
                answer.close()
            answer.release_conn()

    def _open(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, Any]],
        body: bytes | None,
        content_type: str | None,
        timeout: tuple[float, float],
        *,
        preload: bool,
        accept: str = "application/json",
    ) -> urllib3.BaseHTTPResponse:
        """The answer once its status is not an error; with ``preload`` False its body is
        still to be read. A 401 is asked again once with renewed credentials."""
        url = self._url(path, query)
        for attempt in range(2):
            identity = self.credentials.identity()
            answer = self._pool_for(identity).urlopen(
                method,
                url,
                body=body,
                headers=_headers(identity, content_type, accept),
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                retries=self.retries,
                redirect=False,
                preload_content=preload,
            )
            if answer.status < 400:
                return answer
            text = answer.data.decode("utf-8", "replace")  # read whole, so the connection can go back
            answer.release_conn()
            if answer.status == 401 and attempt == 0 and self.credentials.source is not None:
                # A rotated token or an expired plugin credential: ask once more.
                self.credentials.renew()
                continue
            raise ApiError(answer.status, answer.reason or "", text, dict(answer.headers))
        raise AssertionError("unreachable")  # pragma: no cover

    def _url(self, path: str, query: Sequence[tuple[str, Any]]) -> str:
        return self._prefix + path + (f"?{urllib.parse.urlencode(list(query))}" if query else "")

    def _pool_for(self, identity: Identity) -> urllib3.HTTPConnectionPool:
        with self._lock:
            if self._pool is None or identity.certificate != self._pool_certificate:
                if self._pool is not None:
                    self._pool.close()
                self._pool = self._new_pool(identity)
                self._pool_certificate = identity.certificate
            return self._pool

    def _new_pool(self, identity: Identity) -> urllib3.HTTPConnectionPool:
        # One kept-alive connection per worker thread: a connection the pool cannot keep
        # is closed, and the next request pays a new TLS handshake on both sides.
        if self._scheme == "http":
            return urllib3.HTTPConnectionPool(self._host, self._port or 80, maxsize=self.connections)
        return urllib3.HTTPSConnectionPool(
            self._host,
            self._port or 443,
            maxsize=self.connections,
            ssl_context=tls_context(self.credentials, identity),
            assert_hostname=False if self.credentials.insecure else None,
        )


def _headers(
    identity: Identity, content_type: str | None = None, accept: str = "application/json"
) -> dict[str, str]:
    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    if identity.token:
        headers["Authorization"] = f"Bearer {identity.token}"
    return headers


def tls_context(credentials: Credentials, identity: Identity) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=credentials.ca.decode() if credentials.ca else None)
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if identity.certificate and identity.key:
        # The ssl module loads a certificate chain only from files: written to a private
        # directory, loaded into the context, and removed at once.
        with tempfile.TemporaryDirectory(prefix="modeldeploy-tls-") as private:
            certificate = os.path.join(private, "client.crt")
            key = os.path.join(private, "client.key")
            for name, data in ((certificate, identity.certificate), (key, identity.key)):
                descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
            context.load_cert_chain(certificate, key)
    return context
