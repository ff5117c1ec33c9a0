"""benchmark_sim's ROS part: lockstep through ROS. A private master, launch/include/sim.launch in
lockstep mode, and an expert driver node in this process answering each camera frame (deserializing
the image and using the odometry stamped like it); sim s / wall s over the run. This is the speed-up
a brain as fast as the expert would see. Also the CPU time per frame of the simulator process and of
this one (the driver): what the loop costs, less swayed by other jobs than wall time.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np

from pilotnet_brains import package_root
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.expert import PurePursuitExpert
from pilotnet_brains.ros.master import private_master


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_ros_lockstep(name: str, sim_seconds: float) -> dict[str, object]:
    """Lockstep through ROS with an in-process expert driver; returns sim/wall speed-up, frames per
    wall s and the CPU ms per frame of f1_sim and of the driver."""
    import roslaunch.parent
    import roslaunch.rlutil
    import rospy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from pilotnet_brains import topics

    launch = None
    with private_master("benchmark_sim_driver"):
        try:
            c = load_circuit(name)
            expert = PurePursuitExpert(c)
            cond = threading.Condition()
            odom: dict[int, tuple] = {}
            frames: list[tuple] = []
            n = int(round(sim_seconds * 20))
            sim_pid: list[int] = []
            cpu_marks: list[tuple[float, float]] = []   # (f1_sim, driver) CPU s at the first and last frame
            pub = rospy.Publisher(topics.CMD_VEL, Twist, queue_size=10, tcp_nodelay=True)

            def on_odom(m):
                q = m.pose.pose.orientation
                with cond:
                    odom[m.header.stamp.to_nsec()] = (m.pose.pose.position.x, m.pose.pose.position.y,
                                                      2.0 * np.arctan2(q.z, q.w))
                    cond.notify_all()

            def on_image(m):
                t = m.header.stamp.to_nsec()
                np.frombuffer(m.data, np.uint8).reshape(m.height, m.width, 3)  # what a brain would do first
                with cond:
                    if not cond.wait_for(lambda: t in odom, timeout=2.0):
                        return
                    pose = odom.pop(t)
                    frames.append((time.perf_counter(), t))
                    if len(frames) in (10, n + 10):
                        own = os.times()
                        cpu_marks.append((_process_cpu_s(sim_pid[0]), own.user + own.system))
                    cond.notify_all()
                v, w = expert(pose)
                cmd = Twist()
                cmd.linear.x, cmd.angular.z = v, w
                pub.publish(cmd)

            subs = [rospy.Subscriber(topics.ODOM, Odometry, on_odom, queue_size=100, tcp_nodelay=True),
                    rospy.Subscriber(topics.CAMERA_IMAGE, Image, on_image, queue_size=1, buff_size=2 ** 24,
                                     tcp_nodelay=True)]
            uuid = roslaunch.rlutil.get_or_generate_uuid(None, False)
            path = os.path.join(package_root(), "launch", "include", "sim.launch")
            launch = roslaunch.parent.ROSLaunchParent(uuid, [(path, [f"circuit:={name}", "mode:=lockstep"])],
                                                      is_core=False)
            launch.start()
            sim_pid.extend(p.pid for p in launch.pm.procs if p.name.startswith("f1_sim"))
            with cond:
                if not cond.wait_for(lambda: len(frames) >= n + 10, timeout=600):
                    raise RuntimeError(f"lockstep run got {len(frames)} of {n + 10} frames in 600 s")
                sel = frames[9:n + 10]   # skip connection start-up: from the 10th frame to the (n + 10)th
            wall = sel[-1][0] - sel[0][0]
            sim_s = (sel[-1][1] - sel[0][1]) * 1e-9
            (sim0, own0), (sim1, own1) = cpu_marks
            for s_ in subs:
                s_.unregister()
            return {"circuit": name, "sim_s": sim_s, "wall_s": wall, "ros_lockstep_speedup": sim_s / wall,
                    "frames_per_s": n / wall, "sim_cpu_ms_per_frame": (sim1 - sim0) * 1e3 / n,
                    "driver_cpu_ms_per_frame": (own1 - own0) * 1e3 / n}
        finally:
            if launch is not None:
                launch.shutdown()
