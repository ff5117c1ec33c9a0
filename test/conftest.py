"""Shared fixtures: a private ROS master per test session and a launcher for the package's launch files.

Unit tests (test/unit) never touch these fixtures and run without a master.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ros_master():
    """Start a private roscore on a free port; init this process's rospy node against it.

    Yields the master URI. rospy can be initialised once per process, so one master serves the
    whole session; launches in tests set every parameter they rely on (use_sim_time included).
    """
    import rosgraph
    import roslaunch.parent

    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    os.environ["ROS_MASTER_URI"] = uri
    os.environ.setdefault("ROS_HOSTNAME", "127.0.0.1")
    os.environ.setdefault("ROS_LOG_DIR", os.path.join(ROOT, ".build", "ros_log"))
    core = roslaunch.parent.ROSLaunchParent("pytest_core", [], is_core=True, port=port)
    core.start()
    deadline = time.monotonic() + 20
    while not rosgraph.Master("/pytest").is_online():
        if time.monotonic() > deadline:
            core.shutdown()
            pytest.fail("the private ROS master did not come up within 20 s")
        time.sleep(0.1)
    import rospy

    rospy.init_node("pytest", anonymous=True, disable_signals=True)
    yield uri
    rospy.signal_shutdown("pytest session over")
    core.shutdown()


@pytest.fixture
def roslaunch_files(ros_master):
    """Factory: start launch files (absolute paths or 'launch/x.launch' relative to the package)
    with ``name:=value`` args; every launch is shut down at test teardown."""
    import roslaunch.parent
    import roslaunch.rlutil

    started = []

    def start(path: str, **args):
        if not os.path.isabs(path):
            path = os.path.join(ROOT, path)
        argv = [f"{k}:={v}" for k, v in args.items()]
        uuid = roslaunch.rlutil.get_or_generate_uuid(None, False)
        parent = roslaunch.parent.ROSLaunchParent(uuid, [(path, argv)], is_core=False,
                                                  force_required=False)
        parent.start()
        started.append(parent)
        return parent

    yield start
    for parent in reversed(started):
        parent.shutdown()


def run_tool(*argv: str, timeout: float = 300, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run one of the package's executables (scripts/ or brains/) with this interpreter."""
    exe = argv[0]
    for folder in ("scripts", "brains"):
        candidate = os.path.join(ROOT, folder, exe)
        if os.path.exists(candidate):
            exe = candidate
            break
    proc = subprocess.run([sys.executable, exe, *argv[1:]], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
