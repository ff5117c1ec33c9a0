"""metrics_from_bag on bags written here (no master needed): an odometry-only bag, as Behavior
Metrics records, gives the lap of the drive it holds; bad input gets a clear message."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_tool


def write_odom_bag(path: str, circuit_name: str, speed: float, offset: float, duration: float) -> None:
    """/F1ROS/odom + /clock at 20 Hz of a car following the circuit at a lateral offset (m)."""
    import math

    import rosbag
    import rospy
    from nav_msgs.msg import Odometry
    from rosgraph_msgs.msg import Clock

    from pilotnet_brains.circuits import load_circuit

    c = load_circuit(circuit_name)
    with rosbag.Bag(path, "w") as bag:
        for k, t in enumerate(np.arange(0.05, duration, 0.05)):
            s = c.start_s + speed * (t - 0.05)
            h = float(c.heading_at(s)[0])
            p = c.point_at(s)[0] + offset * np.array([-math.sin(h), math.cos(h)])
            stamp = rospy.Time.from_sec(float(t))
            bag.write("/clock", Clock(clock=stamp), stamp)
            m = Odometry()
            m.header.stamp = stamp
            m.header.seq = k
            m.pose.pose.position.x, m.pose.pose.position.y = float(p[0]), float(p[1])
            bag.write("/F1ROS/odom", m, stamp)


def test_an_odometry_only_bag_gives_its_lap(tmp_path):
    bag = str(tmp_path / "bm.bag")
    write_odom_bag(bag, "simple_circuit", speed=12.0, offset=-0.25, duration=45.0)
    out = run_tool("metrics_from_bag", bag, "--circuit", "simple_circuit", "--json", "--no-progress",
                   "--out", str(tmp_path / "out"))
    (lap,) = json.loads(out.stdout)["laps"]
    assert lap["completed"]
    assert lap["lap_time"] == pytest.approx(463.0 / 12.0, rel=1e-3)
    assert lap["deviation_mae"] == pytest.approx(0.25, abs=0.005)
    assert lap["deviation_bm_1000pow"] == pytest.approx(1000 ** 0.25, rel=0.02)
    assert lap["brain_iterations"] == 0 and lap["rtf_source"] == ""
    assert (tmp_path / "out" / "table.md").exists() and (tmp_path / "out" / "trajectory.png").exists()


def test_bad_input_is_a_clear_error(tmp_path):
    missing = run_tool("metrics_from_bag", str(tmp_path / "nope.bag"), check=False)
    assert missing.returncode != 0 and "no such file" in missing.stderr
    bag = str(tmp_path / "bm.bag")
    write_odom_bag(bag, "simple_circuit", speed=12.0, offset=0.0, duration=2.0)
    no_circuit = run_tool("metrics_from_bag", bag, "--no-progress", check=False)
    assert no_circuit.returncode == 2 and "--circuit" in no_circuit.stderr
    not_a_bag = tmp_path / "x.bag"
    not_a_bag.write_text("hello")
    bad = run_tool("metrics_from_bag", str(not_a_bag), "--circuit", "simple_circuit", check=False)
    assert bad.returncode == 2 and "cannot open the bag" in bad.stderr
