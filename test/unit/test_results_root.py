"""Where results go by default: the checkout's results/ when it is writable, else under ~/.ros."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pilotnet_brains import PACKAGE_ROOT, results_root

NOBODY = 65534


def test_a_writable_checkout_keeps_results_inside():
    assert os.access(PACKAGE_ROOT, os.W_OK)
    assert results_root() == os.path.join(PACKAGE_ROOT, "results")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to run as nobody")
def test_a_package_folder_the_user_cannot_write_sends_results_to_ros_home(tmp_path):
    """The package folder as a system install is to its users: readable, not writable (a user
    who does not own the checkout; root ignores permission bits, so the check runs as nobody)."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    code = "from pilotnet_brains import results_root; print(results_root())"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": os.path.join(PACKAGE_ROOT, "src")}
    out = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(home / ".ros" / "pilotnet_brains" / "results")
    env["ROS_HOME"] = str(home / "roshome")
    out = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == str(home / "roshome" / "pilotnet_brains" / "results"), out.stderr


@pytest.mark.ros   # the check builds the brain, whose modules import rospy's message classes
def test_the_launch_check_takes_an_empty_results_dir_as_the_default_folder():
    """circuit.launch passes results_dir:='' by default: the pre-launch check must resolve it as
    the metrics node does, not refuse it (make demo launches with the defaults)."""
    from pilotnet_brains.preflight import RunRefused, check_run

    args = {"results_dir": "", "run_id": "", "circuit": "simple_circuit", "sim": "builtin", "mode": "lockstep",
            "rtf": "1.0", "start_s": "-1", "laps": "1", "timeout": "0", "brain": "explicit"}
    check_run(args)
    with pytest.raises(RunRefused, match="results_dir"):
        check_run({**args, "results_dir": "/proc/not_a_folder"})
