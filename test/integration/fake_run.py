#!/usr/bin/python3
"""Scripted inputs with known geometry for the metrics node's integration tests.

``--role sim``: a car that follows the circuit's centerline at a fixed lateral offset and speed,
publishing /clock, odometry and camera_info every 0.05 s of sim time, paced at ``--rtf`` x wall
time (it is the stand-in for a simulator whose answer we know exactly: MAE = the offset).
``--drift-after M``: after M metres it drifts off the road at 2 m/s sideways.

``--role brain``: node ``brain``; answers every camera_info with a Twist and a BrainStats
(inference_time 2 ms, stamp = the frame's), like a real brain does per frame. With ``--turn W``
it commands (speed, W) whatever it sees: a brain that drives off the road.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from pilotnet_brains.msg import BrainStats
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo

from pilotnet_brains import topics
from pilotnet_brains.circuits import load_circuit

DT = 0.05


def run_sim(a) -> None:
    rospy.init_node("fake_sim")
    c = load_circuit(a.circuit)
    clock = rospy.Publisher(topics.CLOCK, Clock, queue_size=10)
    odom = rospy.Publisher(topics.ODOM, Odometry, queue_size=50)
    info = rospy.Publisher(topics.CAMERA_INFO, CameraInfo, queue_size=50)
    time.sleep(1.0)                                   # let subscribers connect
    s0 = c.start_s
    k = 0
    t_wall0 = time.monotonic()
    while not rospy.is_shutdown():
        t = 1.0 + k * DT
        travelled = max(0.0, (t - 1.0 - a.wait) * a.speed)
        lateral = a.offset
        if a.drift_after >= 0 and travelled > a.drift_after:
            lateral += 2.0 * (travelled - a.drift_after) / a.speed
        s = s0 + travelled
        p = c.point_at(s)[0]
        h = float(c.heading_at(s)[0])
        xy = p + lateral * np.array([-math.sin(h), math.cos(h)])
        stamp = rospy.Time.from_sec(t)
        clock.publish(Clock(clock=stamp))
        m = Odometry()
        m.header.stamp = stamp
        m.header.frame_id = topics.ODOM_FRAME
        m.child_frame_id = topics.BASE_FRAME
        m.pose.pose.position.x, m.pose.pose.position.y = float(xy[0]), float(xy[1])
        m.pose.pose.orientation.z, m.pose.pose.orientation.w = math.sin(h / 2), math.cos(h / 2)
        odom.publish(m)
        ci = CameraInfo()
        ci.header.stamp = stamp
        ci.width, ci.height = 640, 480
        info.publish(ci)
        k += 1
        delay = t_wall0 + k * DT / a.rtf - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def run_brain(a) -> None:
    rospy.init_node("brain")
    cmd = rospy.Publisher(topics.CMD_VEL, Twist, queue_size=10)
    stats = rospy.Publisher(topics.BRAIN_STATS, BrainStats, queue_size=50)
    state = {"n": 0, "last": None}

    def on_frame(msg: CameraInfo) -> None:
        now = time.monotonic()
        state["n"] += 1
        tw = Twist()
        tw.linear.x = a.speed
        tw.angular.z = a.turn if a.turn else (0.1 if state["n"] % 2 else -0.1)
        cmd.publish(tw)
        st = BrainStats()
        st.header.stamp = msg.header.stamp
        st.backend = "fake"
        st.iteration = state["n"]
        st.inference_time = 0.002
        st.iteration_time = 0.003
        st.period = 0.0 if state["last"] is None else now - state["last"]
        st.v, st.w = tw.linear.x, tw.angular.z
        stats.publish(st)
        state["last"] = now

    rospy.Subscriber(topics.CAMERA_INFO, CameraInfo, on_frame, queue_size=10)
    # a camera subscriber, as a real brain has (f1_sim in lockstep waits for one before it starts)
    rospy.Subscriber(topics.CAMERA_IMAGE, rospy.AnyMsg, lambda _msg: None, queue_size=1, buff_size=2 ** 24)
    rospy.spin()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=("sim", "brain"), required=True)
    ap.add_argument("--circuit", default="simple_circuit")
    ap.add_argument("--speed", type=float, default=10.0, help="m/s")
    ap.add_argument("--offset", type=float, default=0.0, help="lateral offset, m (left +)")
    ap.add_argument("--wait", type=float, default=0.0, help="sim s standing before driving")
    ap.add_argument("--drift-after", type=float, default=-1.0, help="m driven before drifting off the road")
    ap.add_argument("--turn", type=float, default=0.0, help="brain: constant angular speed, rad/s")
    ap.add_argument("--rtf", type=float, default=4.0, help="sim seconds per wall second")
    a = ap.parse_args(rospy.myargv(argv if argv is not None else sys.argv)[1:])
    (run_sim if a.role == "sim" else run_brain)(a)


if __name__ == "__main__":
    main()
