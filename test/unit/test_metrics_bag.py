"""metrics_from_bag on bags written here (no master needed): an odometry-only bag, as Behavior
Metrics records, gives the lap of the drive it holds; bad input gets a clear message."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_tool

pytestmark = pytest.mark.ros


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
    from pilotnet_brains.circuits import load_circuit

    assert lap["lap_time"] == pytest.approx(load_circuit("simple_circuit").length / 12.0, rel=1e-3)
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


def test_a_recorder_that_connected_late_still_gives_the_live_lap(tmp_path):
    """The bag misses the first samples (the recorder subscribed after the run had started): the
    live LapResult's start (t_start + start pose) stands in, and the lap's geometry is identical."""
    import math

    import rosbag
    import rospy
    from nav_msgs.msg import Odometry
    from pilotnet_brains.msg import BrainStats, LapResult

    from pilotnet_brains.circuits import load_circuit
    from pilotnet_brains.metrics import LapLimits, RunTracker
    from pilotnet_brains.reporting import to_json

    c = load_circuit("simple_circuit")
    # stamps as the messages carry them (integer nanoseconds), live and offline alike
    stamps = [rospy.Time(k * 50_000_000 // 10 ** 9, k * 50_000_000 % 10 ** 9) for k in range(900)]
    t = np.array([st.to_sec() for st in stamps])
    s = c.start_s + 11.0 * np.clip(t - 0.05, 0.0, None) + 0.3 * np.sin(t)
    h = c.heading_at(s)
    xy = c.point_at(s) + (0.2 * np.sin(0.7 * t))[:, None] * np.stack([-np.sin(h), np.cos(h)], axis=1)
    live = RunTracker(c, LapLimits())
    for ti in t[1:]:
        live.add_stats(ti, inference_time=0.001, period=0.05)
    live.arm(0.05)
    for ti, (x, y) in zip(t, xy):
        live.add_odom(ti, x, y)
    (span,) = live.laps
    assert span.completed
    lap = live.lap_metrics(span)
    identity = {"circuit": "simple_circuit", "limits": {"laps": 1}}
    bag = str(tmp_path / "late.bag")
    with rosbag.Bag(bag, "w") as b:
        for stamp, ti, (x, y) in zip(stamps, t, xy):
            if ti < 0.07:                       # the recorder was not there yet (start sample 0.05 included)
                continue
            m = Odometry()
            m.header.stamp = stamp
            m.pose.pose.position.x, m.pose.pose.position.y = float(x), float(y)
            b.write("/F1ROS/odom", m, stamp)
            st = BrainStats()
            st.header.stamp = stamp
            st.inference_time, st.period = 0.001, 0.05
            b.write("/brain/stats", st, stamp)
        res = LapResult(lap=1, completed=True, json=to_json({**lap, "identity": identity}))
        b.write("/lap_metrics/laps", res, rospy.Time.from_sec(math.ceil(span.t_end)))
    out = run_tool("metrics_from_bag", bag, "--json", "--no-progress")
    (olap,) = json.loads(out.stdout)["laps"]
    for key in ("t_start", "t_end", "lap_time", "distance", "path_length", "average_speed", "deviation_mae",
                "deviation_max", "start_xy"):
        assert olap[key] == pytest.approx(lap[key], rel=1e-12), key
    assert olap["brain_iterations"] == lap["brain_iterations"] - 1       # the stats at 0.05 is not in the bag
