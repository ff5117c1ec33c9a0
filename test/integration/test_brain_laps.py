"""The explicit brain drives a full lap of every evaluation circuit through ROS: circuit.launch with
the embedded simulator in lockstep, the brain node and the lap metrics node (slow: ~1-3 min each)."""
from __future__ import annotations

import threading
import time

import pytest

from pilotnet_brains import topics
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit


@pytest.mark.slow
@pytest.mark.timeout(1800)   # one full lap of a circuit, on a loaded runner
@pytest.mark.parametrize("circuit", EVALUATION_CIRCUITS)
def test_explicit_brain_completes_a_lap_through_ros(roslaunch_files, tmp_path, circuit):
    import rospy
    from nav_msgs.msg import Odometry
    from pilotnet_brains.msg import BrainStats, LapResult

    laps, odom, stats = [], [], []
    lock = threading.Lock()

    def keep(store):
        def cb(m):
            with lock:
                store.append(m)
        return cb

    subs = [rospy.Subscriber(topics.LAP_RESULTS, LapResult, keep(laps)),
            rospy.Subscriber(topics.ODOM, Odometry, keep(odom)),
            rospy.Subscriber(topics.BRAIN_STATS, BrainStats, keep(stats))]
    try:
        roslaunch_files("launch/circuit.launch", circuit=circuit, brain="explicit", mode="lockstep",
                        results_dir=str(tmp_path), run_id=f"explicit_{circuit}")
        length = load_circuit(circuit).length
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not laps:
            time.sleep(0.5)
        assert laps, f"no lap result on {topics.LAP_RESULTS} within 600 s ({len(odom)} odom messages)"
        lap = laps[0]
        assert lap.completed, (lap.dnf_reason, lap.json)
        assert lap.percentage == pytest.approx(100.0, abs=1.0) and lap.distance == pytest.approx(length, rel=0.02)
        assert lap.deviation_mae < 0.3
        assert 8.0 <= lap.average_speed <= 12.5
        # Independent check from the odometry: the car stayed near the red line.
        with lock:
            xy = [(m.pose.pose.position.x, m.pose.pose.position.y) for m in odom]
            last = stats[-1]
        _, lateral = load_circuit(circuit).project(xy)
        assert abs(lateral).max() < 1.0
        assert last.backend == "explicit" and last.bad_frames == 0 and last.bad_outputs == 0
        print(f"{circuit}: lap {lap.lap_time:.2f} s, {lap.average_speed:.2f} m/s, "
              f"mean |lateral| {lap.deviation_mae:.3f} m, max {abs(lateral).max():.3f} m")
    finally:
        for s in subs:
            s.unregister()
