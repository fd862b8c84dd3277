"""HTTP requests to pods and Prometheus with a bound on the whole request, not per socket read,
and on the size of the reply: a slow or huge answer can never hold a reconcile worker."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from urllib.parse import urlsplit


class FetchError(Exception):
    """The reply did not arrive whole, in time, within the size limit; str() is one line."""


def get(url: str, timeout: float, max_bytes: int) -> tuple[int, bytes]:
    """(HTTP status, body) of ``url``; FetchError past ``timeout`` seconds or ``max_bytes``."""
    return request("GET", url, timeout, max_bytes)


def post_json(url: str, body: bytes, timeout: float, max_bytes: int) -> tuple[int, bytes]:
    """(HTTP status, body) of a JSON POST to ``url``, bounded as ``get`` is."""
    return request("POST", url, timeout, max_bytes, body)


def request(
    method: str,
    url: str,
    timeout: float,
    max_bytes: int,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """(HTTP status, body); ``headers`` add to (and may replace) the defaults."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"not an http(s) URL: {url[:200]}")
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    deadline = time.monotonic() + timeout
    expired = threading.Event()

    def cut() -> None:
        # Wakes a read blocked on a peer that drips its reply slower than any socket timeout.
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        sent = {"Accept-Encoding": "identity"}
        if body is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"reply larger than {max_bytes} bytes")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise FetchError(f"no whole reply within {timeout:g}s")
        if expired.is_set():
            raise FetchError(f"no whole reply within {timeout:g}s")
        return response.status, b"".join(chunks)
    except (OSError, http.client.HTTPException) as exc:
        # The socket's own timeout (the same length) may fire a moment before the timer.
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise FetchError(f"no whole reply within {timeout:g}s") from None
        raise FetchError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        timer.cancel()
        connection.close()
