"""The benchmark reads which addresses a process listens on from /proc (to hold the peer's
controller to loopback): checked on this process's own sockets."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from testbed.bench.measure import kernel_address, listening_addresses

pytestmark = pytest.mark.timeout(30)


def test_every_listening_socket_of_a_process_is_found_with_its_address() -> None:
    # Loopback only, as every server a test starts: two IPv4 addresses, and one IPv6 socket
    # (bound to an IPv4-mapped loopback address) to read the tcp6 table too.
    mapped = "::ffff:127.0.0.1"
    with (
        socket.socket() as first,
        socket.socket() as second,
        socket.socket(socket.AF_INET6) as ipv6,
        socket.socket() as unlistened,
    ):
        for sock, address in ((first, "127.0.0.1"), (second, "127.0.0.2"), (ipv6, mapped)):
            sock.bind((address, 0))
            sock.listen()
        unlistened.bind(("127.0.0.1", 0))  # bound, never listening: not reported
        found = listening_addresses(os.getpid())
        assert f"127.0.0.1:{first.getsockname()[1]}" in found
        assert f"127.0.0.2:{second.getsockname()[1]}" in found
        assert f"{ipaddress.ip_address(mapped)}:{ipv6.getsockname()[1]}" in found
        assert not any(a.endswith(f":{unlistened.getsockname()[1]}") for a in found)


def test_the_kernels_hex_addresses_read_as_written() -> None:
    assert kernel_address("0100007F", 8) == "127.0.0.1"
    assert kernel_address("00000000", 8) == "0.0.0.0"
    assert kernel_address("00000000000000000000000001000000", 32) == "::1"
