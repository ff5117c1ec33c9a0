"""The lap_metrics node and the recorder against scripted inputs of known geometry (fake_run.py):
a car on the centerline at a fixed offset (MAE = the offset), one that drifts off the road, a brain
killed mid-lap, Ctrl-C to the launch; the bag opens with rosbag and rosbags; offline = live."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, open_circuit, run_tool

from pilotnet_brains import results

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_run.py")
METRICS_LAUNCH = "launch/include/metrics.launch"


def fake(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, FAKE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for_status(folder: str, statuses, timeout: float, min_distance: float = 0.0) -> dict:
    """Poll laps.json until its status is one of ``statuses`` (and, with ``min_distance``, the lap
    in progress has driven that many metres)."""
    path = os.path.join(folder, "laps.json")
    deadline = time.monotonic() + timeout
    doc: dict = {}
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                doc = json.load(f)          # always complete: written atomically
            far = (doc.get("in_progress") or {}).get("distance", 0.0) >= min_distance
            if doc.get("status") in statuses and (min_distance <= 0 or far):
                return doc
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {statuses}; last: {doc.get('status')}")


def wait_closed(path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and not os.path.exists(path + ".active"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} not closed within {timeout} s")


@pytest.fixture
def sim_time(ros_master):
    import rospy

    rospy.set_param("/use_sim_time", True)
    yield
    rospy.set_param("/use_sim_time", False)


def check_bag_readable(bag: str) -> dict:
    """rosbag info (the ROS tool) and rosbags (independent pure-Python reader) both open it."""
    info = subprocess.run(["rosbag", "info", "--yaml", bag], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "indexed: True" in info.stdout
    from rosbags.rosbag1 import Reader

    counts: dict = {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            assert raw
    return counts


def metrics_ready(folder: str, timeout: float = 60.0) -> None:
    """Wait until the metrics node is up (its run folder says waiting) and the master lists it as a
    subscriber of every topic it reads, so a run started now loses no message."""
    import rosgraph

    from pilotnet_brains import topics

    deadline = time.monotonic() + timeout
    wait_for_status(folder, ("waiting", "running"), timeout=timeout)
    wanted = {topics.ODOM, topics.BRAIN_STATS, topics.CMD_VEL, topics.CAMERA_INFO}
    while True:
        _, subs, _ = rosgraph.Master("/pytest").getSystemState()
        if wanted <= {topic for topic, nodes in subs if "/lap_metrics" in nodes}:
            return
        assert time.monotonic() < deadline, f"lap_metrics did not subscribe {sorted(wanted)} within {timeout} s"
        time.sleep(0.1)


def fake_lap(roslaunch_files, tmp_path, run_id: str, **launch_args: str):
    """metrics.launch on simple_circuit, then a fake brain and simulator at 10 m/s, 4x real time:
    (run folder, brain process, simulator process)."""
    roslaunch_files(METRICS_LAUNCH, circuit="simple_circuit", results_dir=str(tmp_path), run_id=run_id,
                    brain="fake", backend="fake", **launch_args)
    folder = str(tmp_path / run_id)
    metrics_ready(folder)
    return folder, fake("--role", "brain", "--speed", "10"), fake("--role", "sim", "--speed", "10", "--rtf", "4")


def test_full_lap_at_known_offset_with_bag_and_offline_recompute(roslaunch_files, sim_time, tmp_path):
    """simple_circuit at 20 m/s, 0.7 m left of the line, 8x real time: completed, MAE 0.7 m."""
    run = tmp_path / "lap"
    roslaunch_files(METRICS_LAUNCH, circuit="simple_circuit", results_dir=str(tmp_path), run_id="lap",
                    brain="fake", backend="fake", record="true", record_camera_every="0")
    metrics_ready(str(tmp_path / "lap"))
    brain = fake("--role", "brain", "--speed", "20")
    sim = fake("--role", "sim", "--speed", "20", "--offset", "0.7", "--rtf", "8")
    try:
        doc = wait_for_status(str(run), ("done",), timeout=60)
    finally:
        stop(sim, brain)
    (lap,) = doc["laps"]
    assert lap["completed"] and lap["dnf_reason"] == ""
    assert lap["lap_time"] == pytest.approx(428.73 / 20.0, rel=2e-3)      # the circuit length at 20 m/s
    assert lap["deviation_mae"] == pytest.approx(0.7, abs=0.005)
    assert lap["deviation_max"] == pytest.approx(0.7, abs=0.01)
    assert lap["percentage"] == 100.0
    assert 19.5 < lap["average_speed"] < 21.0
    assert lap["brain_frequency_sim"] == pytest.approx(20.0, rel=0.05)
    assert lap["camera_fps_sim"] == pytest.approx(20.0, rel=0.05)
    assert lap["inference_time_mean"] == pytest.approx(0.002)
    assert lap["suddenness"] == pytest.approx(0.2, rel=0.01)               # w alternates +-0.1
    # wall clock, as the node reads each odometry message: how fast the fake run went on this machine
    # (and how late a starved node read it) is a speed figure, printed; its source is exact
    print(f"live real time factor of the 8x fake run: {lap['real_time_factor']:.2f}")
    assert math.isfinite(lap["real_time_factor"]) and lap["real_time_factor"] > 0
    assert lap["rtf_source"] == "wall clock"
    assert doc["identity"]["circuit"] == "simple_circuit" and doc["environment"]["cpu"]
    for name in ("laps.csv", "table.md", "trajectory.png", "profile.png", "track.csv"):
        assert os.path.getsize(run / name) > 0, name
    table = (run / "table.md").read_text()
    assert "| " + " | ".join(results.TABLE_HEADER) + " |" in table and "| fake |" in table
    with open(run / "trajectory.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    bag = str(run / "run.bag")
    wait_closed(bag)
    counts = check_bag_readable(bag)
    # the fake sim runs at 8x and does not wait for the recorder: on a starved runner the recorder may
    # connect a few sim seconds late (356 of ~430 odometry messages seen), so most of the lap, not all
    assert counts["/F1ROS/odom"] > 0.6 * lap["odom_samples"] and counts["/lap_metrics/laps"] == 1
    assert counts["/brain/stats"] > 0.6 * lap["brain_iterations"] and counts["/clock"] > 200

    out = run_tool("metrics_from_bag", bag, "--json", "--no-progress", "--out", str(tmp_path / "offline"))
    offline = json.loads(out.stdout)
    (olap,) = offline["laps"]
    for key in ("lap_time", "distance", "percentage", "average_speed", "deviation_mae", "deviation_max",
                "deviation_bm_1000pow", "brain_iterations", "inference_time_mean", "inference_time_p99",
                "camera_frames", "brain_frequency_wall", "skipped_frames"):
        assert olap[key] == pytest.approx(lap[key], rel=1e-6), key
    assert olap["completed"] is True
    assert olap["suddenness"] == pytest.approx(lap["suddenness"], rel=0.02)
    # the wall clock is not in the bag: the RTF comes from the brain's periods there, which follow the
    # fake simulator's pacing: at most 8x (it sleeps to keep the schedule and never runs ahead of
    # it; the margin is for the brain reading its first frames late), slower on a loaded machine, but
    # faster than real time. Not compared with the live node's figure: that one is taken when the
    # metrics node reads each odometry message, and a starved metrics node on a loaded machine reads
    # them late (2.6 measured beside two training jobs while the brain saw 8.0).
    assert olap["rtf_source"] == "brain periods"
    print(f"offline real time factor (brain periods) of the 8x fake run: {olap['real_time_factor']:.2f}")
    assert 1.0 < olap["real_time_factor"] <= 8.0 * 1.35
    assert os.path.exists(tmp_path / "offline" / "laps.csv")


def test_drifting_off_the_road_is_dnf_off_track(roslaunch_files, sim_time, tmp_path):
    circuit = open_circuit(tmp_path)     # 8 m of road and no walls: the car can leave it
    roslaunch_files(METRICS_LAUNCH, circuit=circuit, results_dir=str(tmp_path), run_id="off",
                    brain="fake", backend="fake")
    metrics_ready(str(tmp_path / "off"))
    brain = fake("--role", "brain", "--speed", "20")
    sim = fake("--role", "sim", "--speed", "20", "--drift-after", "60", "--rtf", "8", "--circuit", circuit)
    try:
        doc = wait_for_status(str(tmp_path / "off"), ("done",), timeout=60)
    finally:
        stop(sim, brain)
    (lap,) = doc["laps"]
    assert not lap["completed"] and lap["dnf_reason"] == "off_track"
    # drifting 2 m/s sideways from 60 m on: 5 m (4 m half-width + 1 m margin) after 2.5 s = 50 m more
    assert lap["distance"] == pytest.approx(110.0, abs=3.0)
    assert lap["deviation_max"] > 5.0
    assert 23 < lap["percentage"] < 28                            # of 428.7 m


def test_brain_killed_mid_lap_is_dnf_brain_died_and_files_are_intact(roslaunch_files, sim_time, tmp_path):
    folder, brain, sim = fake_lap(roslaunch_files, tmp_path, "died")
    try:
        running = wait_for_status(folder, ("running",), timeout=90, min_distance=20.0)
        assert running["in_progress"]["in_progress"] and running["laps"] == []
        brain.send_signal(signal.SIGKILL)
        doc = wait_for_status(folder, ("done",), timeout=90)
    finally:
        stop(sim, brain)
    (lap,) = doc["laps"]
    assert lap["dnf_reason"] == "brain_died" and not lap["completed"]
    assert "gone" in lap["dnf_detail"]
    assert 0 < lap["percentage"] < 100 and lap["lap_time"] > 1.0
    with open(tmp_path / "died" / "laps.csv") as f:
        rows = f.read().splitlines()
    assert len(rows) == 2 and "brain_died" in rows[1]
    assert (tmp_path / "died" / "trajectory.png").stat().st_size > 0


def ctrl_c_mid_lap(ros_master, tmp_path, run_id: str, *args: str) -> tuple[dict, str]:
    """metrics.launch as roslaunch (fake brain and simulator at 10 m/s, 4x, recorded), sent SIGINT
    (what Ctrl-C does) once the lap has 20 m: (laps.json once it says interrupted, roslaunch's output)."""
    folder = str(tmp_path / run_id)
    launch = subprocess.Popen(
        ["roslaunch", os.path.join(ROOT, METRICS_LAUNCH), "circuit:=simple_circuit", f"results_dir:={tmp_path}",
         f"run_id:={run_id}", "brain:=fake", "backend:=fake", "record:=true", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, ROS_MASTER_URI=ros_master))
    brain = sim = None
    try:
        metrics_ready(folder)
        brain = fake("--role", "brain", "--speed", "10")
        sim = fake("--role", "sim", "--speed", "10", "--rtf", "4")
        wait_for_status(folder, ("running",), timeout=90, min_distance=20.0)
        launch.send_signal(signal.SIGINT)
        out, _ = launch.communicate(timeout=60)
    finally:
        if launch.poll() is None:
            launch.kill()
        stop(*(p for p in (sim, brain) if p is not None))
    return wait_for_status(folder, ("interrupted",), timeout=5), out


def test_ctrl_c_records_the_lap_as_interrupted_and_closes_the_bag(ros_master, sim_time, tmp_path):
    """SIGINT to a roslaunch process (what Ctrl-C does): lap DNF interrupted, bag closed and indexed."""
    doc, out = ctrl_c_mid_lap(ros_master, tmp_path, "ctrlc")
    (lap,) = doc["laps"]
    assert lap["dnf_reason"] == "interrupted" and lap["distance"] > 20.0
    assert "| Method |" in out                                     # the table is printed at the end
    bag = str(tmp_path / "ctrlc" / "run.bag")
    assert os.path.exists(bag), out
    counts = check_bag_readable(bag)
    assert counts["/F1ROS/odom"] > 20


def test_a_crashed_metrics_node_leaves_a_readable_partial_record(roslaunch_files, sim_time, tmp_path):
    """SIGKILL to lap_metrics mid-lap (no shutdown hook runs): laps.json is whole, says running, and
    holds the lap in progress as of the last periodic write (every 2 s wall)."""
    import rosgraph

    folder, brain, sim = fake_lap(roslaunch_files, tmp_path, "crash")
    try:
        wait_for_status(folder, ("running",), timeout=90, min_distance=30.0)
        import xmlrpc.client

        uri = rosgraph.Master("/pytest").lookupNode("/lap_metrics")
        _, _, pid = xmlrpc.client.ServerProxy(uri).getPid("/pytest")
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
    finally:
        stop(sim, brain)
    with open(tmp_path / "crash" / "laps.json") as f:
        doc = json.load(f)
    assert doc["status"] == "running" and doc["laps"] == []
    partial = doc["in_progress"]
    assert partial["in_progress"] and partial["distance"] >= 30.0 and partial["deviation_mae"] < 0.01
    assert [p for p in os.listdir(tmp_path / "crash") if p.endswith(".tmp")] == []


def test_a_hung_brain_is_dnf_brain_died_after_the_brain_timeout(roslaunch_files, sim_time, tmp_path):
    """SIGSTOP: the brain process lives but answers nothing; after brain_timeout wall s -> brain_died."""
    folder, brain, sim = fake_lap(roslaunch_files, tmp_path, "hung", brain_timeout="2.0")
    try:
        wait_for_status(folder, ("running",), timeout=90, min_distance=20.0)
        brain.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        doc = wait_for_status(folder, ("done",), timeout=90)
        waited = time.monotonic() - t0
    finally:
        brain.send_signal(signal.SIGCONT)
        stop(sim, brain)
    (lap,) = doc["laps"]
    assert lap["dnf_reason"] == "brain_died" and "no brain stats" in lap["dnf_detail"], lap
    # not before the 2 s timeout; the upper bound only says it does come (a starved 2-core runner
    # took 10.3 s to write the record)
    assert 2.0 <= waited < 25.0


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_simulator_that_dies_or_stops_is_dnf_sim_died_not_the_brain(roslaunch_files, sim_time, tmp_path, how):
    """The brain answers every frame; when the simulator is killed (or frozen) the brain falls
    silent because no frame comes: the lap names the simulator, not the brain."""
    run = f"sim_{how.lower()}"
    folder, brain, sim = fake_lap(roslaunch_files, tmp_path, run, brain_timeout="2.0", sim_node="/fake_sim")
    try:
        wait_for_status(folder, ("running",), timeout=90, min_distance=20.0)
        sim.send_signal(getattr(signal, how))
        doc = wait_for_status(folder, ("done",), timeout=90)
    finally:
        sim.send_signal(signal.SIGCONT)
        stop(sim, brain)
    (lap,) = doc["laps"]
    assert lap["dnf_reason"] == "sim_died", lap
    assert "simulator" in lap["dnf_detail"]


def test_the_bag_of_a_ctrl_c_run_replays_alone_and_says_interrupted_as_live(ros_master, sim_time, tmp_path):
    """Ctrl-C mid-lap: metrics_from_bag needs no --circuit (the bag names its run) and labels the
    lap as the live node did (DNF interrupted), not 'in progress'."""
    doc, _ = ctrl_c_mid_lap(ros_master, tmp_path, "ctrlc_bag", "record_camera_every:=0")
    live = doc["laps"][-1]
    bag = str(tmp_path / "ctrlc_bag" / "run.bag")
    wait_closed(bag)
    proc = run_tool("metrics_from_bag", bag, "--json", "--no-progress", check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    offline = json.loads(proc.stdout)
    assert offline["identity"]["circuit"] == "simple_circuit"
    assert offline["laps"][-1]["dnf_reason"] == live["dnf_reason"] == "interrupted"
