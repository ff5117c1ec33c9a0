"""Every refusal ends roslaunch with a non-zero exit and one message, and leaves one record: the run
folder's laps.json says refused, with the refusing part's message (when the folder itself is fine)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import ROOT

CIRCUIT_LAUNCH = os.path.join(ROOT, "launch", "circuit.launch")


def roslaunch(ros_master, launch: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run a launch to its end; past ``timeout`` its whole process group (nodes included) is killed."""
    env = dict(os.environ, ROS_MASTER_URI=ros_master)
    argv = ["roslaunch", "--wait", "--no-summary", launch, *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        err += f"\n(roslaunch still running after {timeout} s: stopped)"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _refusals(tmp_path):
    (tmp_path / "a_file").write_text("")
    return [
        (["mode:=foo"], "f1_sim", ["mode", "foo", "realtime", "lockstep"]),
        (["rtf:=-1"], "f1_sim", ["rtf", "must be > 0"]),
        (["laps:=0"], "lap_metrics", ["laps must be >= 1"]),
        (["circuit:=no_such_circuit"], "circuit", ["no_such_circuit", "known:"]),
        (["start_s:=9999"], "circuit", ["start_s 9999", "428.7"]),
        (["brain:=pilotnet", "backend:=no_such_backend"], "brain", ["no_such_backend", "valid backends"]),
        (["brain:=pilotnet", "backend:=tftrt_fp16"], "brain", ["tftrt_fp16", "GPU"]),
        (["brain:=pilotnet", "backend:=tflite_int8", f"model:={tmp_path / 'a_file'}"], "brain", ["a_file"]),
        (["brain:=no_such_brain"], "brain", ["no_such_brain", "explicit"]),
        ([f"results_dir:={tmp_path / 'a_file' / 'results'}"], "run folder", ["results_dir", "results_dir:="]),
        (["run_id:=../../escaped"], "run folder", ["run_id", "plain folder name"]),
    ]


def test_every_refusal_exits_non_zero_with_its_message_and_one_record(ros_master, tmp_path):
    failures = []
    for i, (args, by, words) in enumerate(_refusals(tmp_path)):
        results = tmp_path / f"results{i}"
        argv = ["brain:=explicit", f"results_dir:={results}", f"run_id:=refused{i}"] + args
        proc = roslaunch(ros_master, CIRCUIT_LAUNCH, *argv)
        out = proc.stdout + proc.stderr
        if proc.returncode == 0:
            failures.append(f"{args}: roslaunch exited 0")
            continue
        fatal = [line for line in out.splitlines() if "[FATAL]" in line]
        if not fatal or not all(w in fatal[0] for w in words):
            failures.append(f"{args}: no FATAL line with {words}: {fatal or out[-600:]}")
            continue
        laps = results / f"refused{i}" / "laps.json"
        if by == "run folder":
            if any(os.scandir(results)) if results.exists() else False:
                failures.append(f"{args}: a refused run folder wrote {os.listdir(results)}")
            continue
        if not laps.exists():
            failures.append(f"{args}: no {laps}")
            continue
        doc = json.loads(laps.read_text())
        if doc["status"] != "refused" or doc["refusal"]["by"] != by or doc["laps"] or \
                not all(w in doc["refusal"]["message"] for w in words):
            failures.append(f"{args}: record {doc['status']} {doc.get('refusal')}")
    assert not failures, "\n".join(failures)


def test_a_node_refusing_at_run_time_is_recorded_as_refused_with_its_message(ros_master, tmp_path):
    """No check_run in front (a launch of the nodes): the brain refuses when it loads, and the
    metrics node of the same launch records the refusal instead of a DNF or an interrupted run,
    even when it starts after the refusal (here 6 s late, as on a loaded machine): the refusing
    node, whose exit ends the launch, waits for the record."""
    launch = tmp_path / "brain_and_metrics.launch"
    launch.write_text(f"""<launch>
  <param name="/use_sim_time" value="true"/>
  <include file="{ROOT}/launch/include/brain.launch">
    <arg name="brain" value="pilotnet"/> <arg name="backend" value="no_such_backend"/>
    <arg name="run_token" value="tok_rt"/>
  </include>
  <node name="lap_metrics" pkg="pilotnet_brains" type="lap_metrics" required="true" output="screen"
        launch-prefix="bash -c 'sleep 6; exec $0 $@'">
    <param name="results_dir" value="{tmp_path}"/> <param name="run_id" value="rt"/>
    <param name="run_token" value="tok_rt"/> <param name="sim_node" value=""/>
  </node>
</launch>""")
    t0 = time.monotonic()
    proc = roslaunch(ros_master, str(launch))
    assert time.monotonic() - t0 > 6.0   # the metrics node did start after the brain's refusal
    laps = tmp_path / "rt" / "laps.json"
    assert laps.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(laps.read_text())
    assert doc["status"] == "refused", (doc["status"], proc.stdout[-2000:])
    assert doc["refusal"]["by"] == "/brain" and "no_such_backend" in doc["refusal"]["message"]
    assert doc["laps"] == []


def test_a_node_stopped_while_it_starts_exits_at_once_and_quietly(ros_master):
    """SIGINT while the brain is still starting (here: waiting for a stats subscriber that never
    comes): it exits at once, without a traceback, instead of starting on until killed."""
    env = dict(os.environ, ROS_MASTER_URI=ros_master)
    proc = subprocess.Popen([os.path.join(ROOT, "brains", "explicit_brain"), "__name:=brain_starting",
                             "_wait_for_stats_subscriber:=120", "_camera_topic:=/nowhere"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8.0)                              # imports done, waiting for the subscriber
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        waited = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    assert waited < 10.0, f"took {waited:.1f} s to stop"
    assert proc.returncode != 0
