"""A private ROS master: a roscore on a free loopback port for one process (the benchmarks, the test
session), so nothing it does reaches the user's master at ROS_MASTER_URI."""
from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from pilotnet_brains import package_root
from pilotnet_brains.util import free_port


@contextlib.contextmanager
def private_master(node_name: str, timeout: float = 20.0) -> Iterator[str]:
    """Start a roscore on a free 127.0.0.1 port, point this process at it (ROS_MASTER_URI; ROS_HOSTNAME
    and ROS_LOG_DIR unless set: 127.0.0.1 and <package>/.build/ros_log) and init this process's rospy
    node ``node_name`` (anonymous, no signal handlers) against it. Yields the master URI; on exit
    rospy and the master shut down. rospy can be initialised once per process, so one private master
    per process. RuntimeError when the master is not up within ``timeout`` s."""
    import rosgraph
    import roslaunch.parent

    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    os.environ["ROS_MASTER_URI"] = uri
    os.environ.setdefault("ROS_HOSTNAME", "127.0.0.1")
    os.environ.setdefault("ROS_LOG_DIR", os.path.join(package_root(), ".build", "ros_log"))
    core = roslaunch.parent.ROSLaunchParent(f"{node_name}_core", [], is_core=True, port=port)
    core.start()
    try:
        deadline = time.monotonic() + timeout
        while not rosgraph.Master(f"/{node_name}").is_online():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the private ROS master did not come up within {timeout:g} s")
            time.sleep(0.1)
        import rospy

        rospy.init_node(node_name, anonymous=True, disable_signals=True)
        try:
            yield uri
        finally:
            rospy.signal_shutdown(f"{node_name} over")
    finally:
        core.shutdown()
