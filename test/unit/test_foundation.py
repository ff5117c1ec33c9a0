"""The package itself: it builds, imports on Python 3.8 syntax, and its files agree with each other."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_package_xml_is_format_3_and_names_the_package():
    tree = ET.parse(os.path.join(ROOT, "package.xml")).getroot()
    assert tree.get("format") == "3"
    assert tree.findtext("name") == "pilotnet_brains"


@pytest.mark.ros
def test_messages_are_generated_by_the_build():
    from pilotnet_brains.msg import BrainStats, LapResult

    stats = BrainStats(backend="x", inference_time=0.001)
    assert stats.inference_time == 0.001
    assert "completed" in LapResult.__slots__


def test_executables_are_executable_and_use_the_python_on_path():
    """``scripts/NAME`` runs in the environment of ``tools/env.sh`` (the venv's python first on PATH);
    catkin_install_python rewrites these shebangs and the devel relays use the venv's python."""
    for folder in ("brains", "scripts"):
        path = os.path.join(ROOT, folder)
        for name in os.listdir(path):
            exe = os.path.join(path, name)
            assert os.access(exe, os.X_OK), f"{folder}/{name} is not executable"
            with open(exe) as f:
                assert f.readline().strip() == "#!/usr/bin/env python3", f"{folder}/{name} shebang"
            assert name != "pilotnet_brains", "an executable named like the package shadows it"


def test_scripts_run_as_typed():
    """What the docs tell users to type after ``source tools/env.sh``: the script itself, no python."""
    out = subprocess.run([os.path.join(ROOT, "scripts", "collect_dataset"), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: collect_dataset" in out.stdout


@pytest.mark.ros
def test_ros_tools_find_the_package():
    out = subprocess.run(["rospack", "find", "pilotnet_brains"], capture_output=True, text=True, check=True)
    assert os.path.realpath(out.stdout.strip()) == os.path.realpath(ROOT)


def test_ruff_clean_for_python38():
    """ruff with target-version py38 (pyproject.toml): no 3.9+ syntax sneaks in."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", ROOT],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
