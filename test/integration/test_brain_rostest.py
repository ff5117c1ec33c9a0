"""Run each test/rostest/brain*.test with ``rostest pilotnet_brains X.test`` and check its exit code
(never ``--text``: on ros_comm 1.15.15 it exits 0 on failure). rostest starts its own master."""
from __future__ import annotations

import glob
import os
import subprocess

import pytest
from conftest import ROOT

TESTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "test", "rostest", "brain*.test")))


@pytest.mark.parametrize("name", TESTS)
def test_brain_rostest_passes(name):
    env = dict(os.environ)
    env.setdefault("ROS_LOG_DIR", os.path.join(ROOT, ".build", "ros_log"))
    env.pop("ROS_MASTER_URI", None)  # rostest spawns its own master
    proc = subprocess.run(["rostest", "pilotnet_brains", name], capture_output=True, text=True, timeout=240,
                          env=env)
    assert proc.returncode == 0, f"rostest {name} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert "RESULT: SUCCESS" in proc.stdout
