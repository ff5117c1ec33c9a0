"""Ports for private ROS masters: free, and never ones the kernel hands out to sockets that bind port 0
(every ROS node's XML-RPC and TCPROS servers), so a node beside a starting run cannot take its master's port."""
from __future__ import annotations

import contextlib
import socket

from pilotnet_brains.util import ephemeral_ports, free_port


def test_free_ports_lie_below_the_ephemeral_range_and_can_be_bound():
    first, last = ephemeral_ports()
    assert 1024 <= first <= last
    for _ in range(20):
        port = free_port()
        assert 1024 <= port < first
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_sockets_binding_port_0_never_get_a_chosen_master_port():
    port = free_port()
    with contextlib.ExitStack() as stack:
        got = set()
        for _ in range(200):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            got.add(s.getsockname()[1])
    assert port not in got
    assert min(got) >= ephemeral_ports()[0]


def test_taken_ports_and_bound_ports_are_not_returned():
    taken: set[int] = set()
    for _ in range(30):
        port = free_port(taken)
        assert port not in taken
        taken.add(port)
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        busy = held.getsockname()[1]
        held.listen()
        assert all(free_port() != busy for _ in range(200))
