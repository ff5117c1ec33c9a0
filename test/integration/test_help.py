"""Every executable answers --help (what it does, its options or ~params with defaults, plain text)
and exits 0 without starting a node: with a master up, no node appears on it."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import ROOT

EXECUTABLES = sorted(f"{folder}/{name}" for folder in ("scripts", "brains")
                     for name in os.listdir(os.path.join(ROOT, folder)))
NODES = {"scripts/f1_sim", "scripts/lap_metrics", "scripts/record_run", "scripts/live_view", "brains/pilotnet_brain",
         "brains/explicit_brain"}


def test_the_list_of_nodes_is_complete():
    """A node's module calls rospy.init_node; every such executable is in NODES (so it gets ~params help)."""
    assert NODES <= set(EXECUTABLES)


@pytest.mark.parametrize("exe", EXECUTABLES)
def test_help_exits_without_starting_a_node(ros_master, exe):
    import rosgraph

    master = rosgraph.Master("/test_help")
    nodes_before = _nodes(master)
    out = subprocess.run([os.path.join(ROOT, exe), "--help"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ROS_MASTER_URI": ros_master})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage:"), text[:200]
    for markup in ("``", ":func:", ":class:", ":mod:", "DESIGN", "§"):
        assert markup not in text, f"{exe} --help shows {markup!r}"
    if exe in NODES:
        assert f"rosrun pilotnet_brains {os.path.basename(exe)}" in text \
            and re.search(r"^\s*~\w+ \(", text, re.M)
    assert _nodes(master) <= nodes_before, f"{exe} --help started a node"


def _nodes(master) -> set[str]:
    return {n for kind in master.getSystemState() for _, names in kind for n in names}


@pytest.mark.parametrize("exe", ["scripts/train", "scripts/benchmark_brain"])
def test_help_shows_the_defaults(exe):
    text = subprocess.run([os.path.join(ROOT, exe), "--help"], capture_output=True, text=True, timeout=120,
                          check=True).stdout
    entries, current = [], None
    for line in text.split("options:", 1)[1].splitlines():
        if line.startswith("  -"):
            current = [line]
            entries.append(current)
        elif current is not None:
            current.append(line)
    with_value = [" ".join(e) for e in entries if re.match(r"\s+--[\w-]+ [A-Z_=]+", e[0])]
    assert with_value, text
    for entry in with_value:
        assert "default" in entry, f"{exe} --help: no default shown in {entry!r}"
