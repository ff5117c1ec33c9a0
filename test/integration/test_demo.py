"""make demo's launch: a private ROS master on a free port (a master already at ROS_MASTER_URI, another
user's, is left alone), and a finished run ends cleanly: "run finished: results in ..." and exit 0,
without roslaunch's red REQUIRED-process banner; a real failure is loud (non-zero exit, its FATAL line)."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import ROOT

LAUNCHER = os.path.join(ROOT, "tools", "private_roslaunch")


def _launch(master_uri: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LAUNCHER, "pilotnet_brains", "simple_circuit.launch", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "ROS_MASTER_URI": master_uri})


def test_make_demo_uses_the_private_launcher():
    with open(os.path.join(ROOT, "Makefile")) as f:
        recipe = re.search(r"^demo:.*?\n((?:\t.*\n)+)", f.read(), re.M).group(1)
    assert "tools/private_roslaunch pilotnet_brains simple_circuit.launch" in recipe


@pytest.mark.timeout(900)   # a whole lap in lockstep; the launch itself may take up to 600 s
def test_a_finished_run_ends_cleanly_on_its_own_master(ros_master, tmp_path):
    import rosgraph

    master = rosgraph.Master("/test_demo")
    for name in ("/lap_metrics/run", "/f1_sim/circuit"):   # left by earlier launches on the shared master
        if master.hasParam(name):
            master.deleteParam(name)
    out = _launch(ros_master, "brain:=explicit", "mode:=lockstep", f"results_dir:={tmp_path}", "run_id:=demo")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert f"run finished: results in {tmp_path}/demo" in out.stdout, text[-3000:]
    assert "REQUIRED process" not in text and "has died" not in text, text[-3000:]
    with open(tmp_path / "demo" / "laps.json") as f:
        assert json.load(f)["status"] == "done"
    # the run never touched the master at ROS_MASTER_URI: its parameters were set on its own
    assert not master.hasParam("/lap_metrics/run") and not master.hasParam("/f1_sim/circuit")
    assert "private ROS master: http://127.0.0.1:" in out.stdout and ros_master not in out.stdout


def test_a_real_failure_is_loud(ros_master, tmp_path):
    """A brain that cannot start: refused before any node starts (scripts/check_run), non-zero exit,
    its FATAL line, no "run finished"."""
    out = _launch(ros_master, "brain:=pilotnet", "backend:=no_such_backend", f"results_dir:={tmp_path}",
                  "run_id:=broken")
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert "[FATAL]" in text and "no_such_backend" in text, text[-3000:]
    assert "run finished" not in text
