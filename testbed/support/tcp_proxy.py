"""A loopback TCP proxy that can go silent: the network partition of a fault test.

While stalled, connections are still accepted (the kernel would complete the
handshake into the backlog anyway) but no byte moves in either direction, and
nothing is closed: to both ends it looks like packets being dropped. On resume the
held bytes flow again, as TCP's retransmissions would deliver them. TLS passes
through untouched, so clients keep verifying the real server's certificate.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field

CHUNK = 64 << 10


@dataclass
class TcpProxy:
    upstream: tuple[str, int]
    host: str = "127.0.0.1"
    port: int = 0
    _flowing: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _closed: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> TcpProxy:
        self._flowing.set()
        listener = socket.create_server((self.host, self.port))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stall(self) -> None:
        """From now on no byte moves, and no connection is made or closed."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()  # release the pumps so they see the close
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close_quietly(sock)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._flowing.wait()  # a partition: the connection goes nowhere until it heals
        if self._closed.is_set():
            _close_quietly(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close_quietly(client)  # the server is down: refused, as it would be without us
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                self._flowing.wait()  # held, not lost, while stalled
                target.sendall(data)
            self._flowing.wait()
            target.shutdown(socket.SHUT_WR)
        except OSError:
            _close_quietly(source)
            _close_quietly(target)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def main(argv: list[str]) -> int:
    """``python -m testbed.support.tcp_proxy LISTEN_HOST:PORT UPSTREAM_HOST:PORT``: forward
    until SIGTERM (the real node's pods reach the API server this way, see realnode)."""
    if len(argv) != 3:
        print(main.__doc__, file=sys.stderr)
        return 2
    (listen_host, listen_port), upstream = (_address(a) for a in argv[1:])
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # before any thread starts: they inherit it
    proxy = TcpProxy(upstream, host=listen_host, port=listen_port).start()
    signal.sigwait(stops)
    proxy.close()
    return 0


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
