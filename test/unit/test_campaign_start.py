"""The simulator's start pose (Simulator(start_pose=...), f1_sim ~start_s): what benchmark
campaigns use for seeded random starts along the lap, in either direction."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.metrics import wrap_signed
from pilotnet_brains.sim import Simulator


def test_default_start_is_the_circuits():
    c = load_circuit("simple_circuit")
    sim = Simulator(c)
    assert sim.start_pose == pytest.approx(c.start_pose)
    assert sim.pose == pytest.approx(c.start_pose)


@pytest.mark.parametrize("reverse", [False, True])
def test_given_start_pose_holds_across_resets_and_drives_along_the_lap(reverse):
    c = load_circuit("simple_circuit", reverse=reverse)
    s0 = 0.37 * c.length
    pose = (*c.point_at(s0)[0], float(c.heading_at(s0)[0]))
    sim = Simulator(c, start_pose=pose)
    assert sim.pose == pytest.approx(pose)
    sim.set_command(5.0, 0.0)
    sim.step(1.0)
    s1, lat = c.project(np.array(sim.pose[:2]))
    assert float(wrap_signed(s1[0] - s0, c.length)) == pytest.approx(5.0, abs=0.3)   # forward along the lap
    assert abs(float(lat[0])) < 2.0                                      # still on the road (curves bend away)
    sim.reset()
    assert sim.pose == pytest.approx(pose) and sim.command == (0.0, 0.0)
    assert sim.pose != pytest.approx(c.start_pose)


def test_reverse_start_heads_the_other_way():
    fwd, rev = load_circuit("simple_circuit"), load_circuit("simple_circuit", reverse=True)
    x, y = fwd.point_at(100.0)[0]
    s_rev, _ = rev.project(np.array([[x, y]]))
    d = math.remainder(float(rev.heading_at(s_rev)[0]) - float(fwd.heading_at(100.0)[0]), 2 * math.pi)
    assert abs(abs(d) - math.pi) < 0.05
