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


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_processes_naming_finds_live_processes_by_command_line_and_leaves_zombies_out(tmp_path):
    import subprocess
    import sys
    import time

    from pilotnet_brains.util import processes_naming

    marker = str(tmp_path / "marker_folder")
    proc = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker])
    try:
        deadline = time.monotonic() + 10     # until the child has exec'd (its command line is then ours)
        while processes_naming(marker) != [proc.pid] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert processes_naming(marker) == [proc.pid]
        assert processes_naming(marker + "_other") == []
        proc.kill()                       # not reaped: it stays a zombie until wait()
        deadline = time.monotonic() + 10
        while _state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _state(proc.pid) == "Z"
        assert processes_naming(marker) == [], "a zombie was counted as a process of the marker"
    finally:
        proc.kill()
        proc.wait()
