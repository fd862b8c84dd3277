"""Ports handed to the parts a test starts: never one port to two parts."""

from __future__ import annotations

import socket

import pytest

from testbed.cluster.localcluster import free_ports

pytestmark = pytest.mark.timeout(30)


def test_ports_chosen_together_are_distinct_and_free() -> None:
    # A freed port is often the kernel's next answer, so ports chosen one by one can repeat;
    # a model server given one port for gRPC and REST serves gRPC alone.
    for _ in range(20):
        ports = free_ports(8)
        assert len(set(ports)) == len(ports)
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
