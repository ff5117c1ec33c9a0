"""How a node process starts and refuses to start (brain, f1_sim, lap_metrics, record_run, live_view).

- :func:`init_node` (instead of ``rospy.init_node``): until :func:`started`, SIGINT/SIGTERM end the
  process at once, quietly (a node still loading a model has nothing to save, and rospy's own
  handler would only flag the shutdown and let the loading run on until roslaunch kills it); after
  it, they shut rospy down from a thread of their own, so the shutdown hooks run.
  rospy's own handler runs the whole shutdown inside the signal handler, in the main thread: a
  signal that lands while the main thread waits for the master (registering a subscriber, reading
  a parameter) sends the unregistration down the same XML-RPC connection, which deadlocks, and the
  node never exits.
- :func:`refuse`: the FATAL message, exit non-zero, and, when the launch gave the node a
  ``~run_token``, the message in the parameter ``/run_refusals/<token>`` = {node, message}, where
  the metrics node of the same launch finds it and records the run as ``refused``. The refusing
  node waits (up to :data:`RECORD_WAIT` s) until that record is written: it is ``required``, so its
  exit ends the launch, and a metrics node still starting on a loaded machine would be killed
  before it wrote anything.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, NoReturn

#: Parameter namespace of refusals, keyed by the launch's run token.
REFUSALS = "/run_refusals"
#: Wall s a refusing node waits for the metrics node to record its refusal.
RECORD_WAIT = 30.0

_starting = False


def keep_large_buffers_on_the_heap() -> None:
    """For a node that sends or receives camera frames: rospy serializes each message into one
    buffer it truncates afterwards, and reads each into buffers it grows and copies. With glibc's
    defaults a buffer of a frame (~1 MB) is mmapped afresh for every message and its pages faulted
    in again (~0.4 ms a frame on the sending side); kept on the heap (not trimmed back) it is
    reused. No-op without glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 8 << 20)    # M_MMAP_THRESHOLD: blocks below 8 MB come from the heap
    mallopt(-1, 16 << 20)   # M_TRIM_THRESHOLD: keep up to 16 MB of free heap top


def _on_signal(sig: int, _frame: Any) -> None:
    if _starting:
        sys.stderr.write(f"{os.path.basename(sys.argv[0])}: stopped by signal {sig} while starting\n")
        sys.stderr.flush()
        os._exit(128 + sig)
    import rospy

    # not daemon: the interpreter waits for the hooks (a bag to close, results to write) at exit
    threading.Thread(target=rospy.signal_shutdown, args=(f"signal-{sig}",), name="signal_shutdown").start()


def init_node(name: str, **kwargs: Any) -> None:
    """``rospy.init_node`` with this module's SIGINT/SIGTERM handling; the node is starting until
    :func:`started`."""
    import rospy

    global _starting
    _starting = True
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    rospy.init_node(name, disable_signals=True, **kwargs)


def started() -> None:
    """The node is up: signals now only shut it down through rospy (its hooks run)."""
    global _starting
    _starting = False


def refusal_param(token: str) -> str:
    return f"{REFUSALS}/{token}"


def refuse(message: str, code: int = 1, wait_recorded: bool = True) -> NoReturn:
    """Log ``message`` as FATAL, leave it for the launch's metrics node (and, with
    ``wait_recorded``, wait until it is recorded), exit with ``code``."""
    import time

    import rospy

    rospy.logfatal(message)
    try:
        token = str(rospy.get_param("~run_token", "") or "")
        if token:
            rospy.set_param(refusal_param(token), {"node": rospy.get_name(), "message": message})
            deadline = time.monotonic() + RECORD_WAIT
            while wait_recorded and time.monotonic() < deadline and not recorded(token):
                time.sleep(0.1)
    except Exception:   # no master: the FATAL line and the exit code still say it
        pass
    rospy.signal_shutdown("refused to start")
    sys.exit(code)


def recorded(token: str) -> bool:
    """Whether the metrics node of the launch ``token`` has recorded its refusal."""
    import rospy

    return bool(rospy.get_param(refusal_param(token) + "/recorded", False))


def mark_recorded(token: str) -> None:
    import rospy

    rospy.set_param(refusal_param(token) + "/recorded", True)
