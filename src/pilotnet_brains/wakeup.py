"""What this machine charges a sender for waking a process blocked on a socket.

A ROS publish is a ``send()`` on a TCP loopback connection; when the subscriber is blocked in
``recv()``, the kernel wakes it inside that call. Waking a process on another core needs an
inter-processor interrupt, which in a virtual machine whose idle vCPU has halted goes through the
hypervisor and can cost the sender tens of microseconds per send; on the same core it does not. The
brain node pays this once per frame on its command's publish, so its "own work" depends on the
machine as much as on the code. :func:`measure` times it the way the node meets it: a burst of
computation (like an inference), then one small send to a peer that has been idle for a while
(like the simulator between two frames), then the peer's one-byte answer.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

from pilotnet_brains.timing import summary

#: The peer: connect back, pin to the given CPU, answer every message with one byte until EOF.
_PEER = ("import os, socket, sys\n"
         "os.sched_setaffinity(0, {int(sys.argv[2])})\n"
         "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
         "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
         "while s.recv(64):\n"
         "    s.sendall(b'k')\n")
#: Bytes of one send: a serialized geometry_msgs/Twist with its 4-byte length.
MESSAGE_BYTES = 52


def _rounds(peer_cpu: int, count: int, busy_s: float, idle_s: float) -> list[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.1)
        peer = subprocess.Popen([sys.executable, "-c", _PEER, str(server.getsockname()[1]), str(peer_cpu)],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30.0
        while True:
            try:
                conn, _ = server.accept()
                break
            except socket.timeout:
                if peer.poll() is not None:
                    why = peer.stderr.read().strip().splitlines()[-1:] if peer.stderr else []
                    raise RuntimeError(f"the wake-up peer process (pinned to CPU {peer_cpu}) exited with "
                                       f"{peer.returncode}: {' '.join(why)}") from None
                if time.monotonic() > deadline:
                    peer.kill()
                    peer.wait()
                    raise RuntimeError("the wake-up peer process did not connect within 30 s") from None
    times = []
    payload = b"x" * MESSAGE_BYTES
    clock = time.perf_counter_ns
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            end = clock() + int(busy_s * 1e9)
            while clock() < end:       # the computation before the publish
                pass
            t0 = clock()
            conn.sendall(payload)
            times.append(clock() - t0)
            if not conn.recv(8):
                raise RuntimeError("the wake-up peer process ended early")
            time.sleep(idle_s)         # the peer goes back to sleep, as between two frames
    peer.wait(10)
    peer.stderr.close()
    return times


def measure(count: int = 1000, busy_s: float = 3e-4, idle_s: float = 2e-3) -> dict[str, Any]:
    """The sender's ``send()`` time (µs summaries) with the woken peer on the same core (``same_core``)
    and, when this process may use two CPUs, on another one (``other_core``). The calling thread is
    pinned to one CPU while it measures and gets its CPU set back after."""
    cpus = sorted(os.sched_getaffinity(0))
    here = cpus[0]
    out: dict[str, Any] = {"count": count, "busy_s": busy_s, "idle_s": idle_s, "message_bytes": MESSAGE_BYTES,
                           "cpus": [here] + cpus[1:2]}
    os.sched_setaffinity(0, {here})
    try:
        out["same_core"] = summary(_rounds(here, count, busy_s, idle_s), "us")
        if len(cpus) > 1:
            out["other_core"] = summary(_rounds(cpus[1], count, busy_s, idle_s), "us")
    finally:
        os.sched_setaffinity(0, cpus)
    return out


def text(result: dict[str, Any]) -> str:
    """One sentence for a report."""
    same = result["same_core"]["p50"]
    if "other_core" not in result:
        return f"a send() that wakes a process on the same core costs the sender {same:.1f} µs p50 here"
    other = result["other_core"]["p50"]
    return (f"a send() that wakes a process idle on another core costs the sender {other:.1f} µs p50 here "
            f"({same:.1f} µs on the same core; {result['count']} sends of {result['message_bytes']} bytes after "
            f"{result['busy_s'] * 1e6:.0f} µs of computation each)")
