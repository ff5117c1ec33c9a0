"""The explicit brain on frames from the simulator's renderer: it finds the red line at known offsets
with the right sign, steers back, and drives laps (pure Python, no ROS)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pilotnet_brains.brain import Pipeline, make_brain
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.explicit import CameraGeometry, ExplicitBrain, ExplicitParams, drive
from pilotnet_brains.preprocess import V_RANGE, W_RANGE
from pilotnet_brains.sim import Renderer


@pytest.fixture(scope="module")
def straight():
    """simple_circuit, a renderer, and the arc length of its straightest stretch."""
    c = load_circuit("simple_circuit")
    s = np.arange(0.0, c.length, 1.0)
    # the point whose next 20 m are the straightest
    k = np.array([np.abs(c.curvature_at((si + np.arange(0, 20, 1.0)) % c.length)).max() for si in s])
    return c, Renderer(c), float(s[int(np.argmin(k))])


def _pose(c, s, lateral=0.0, dyaw=0.0):
    """World pose at arc length s, ``lateral`` m left of the line, heading + dyaw (rad)."""
    x, y = c.point_at(s).reshape(2)
    yaw = float(c.heading_at(s).reshape(-1)[0])
    return (float(x - lateral * math.sin(yaw)), float(y + lateral * math.cos(yaw)), yaw + dyaw)


@pytest.mark.parametrize("lateral", [-1.0, -0.6, -0.3, 0.0, 0.3, 0.6, 1.0])   # walls at 1.55 m
def test_finds_the_line_at_known_offsets_with_the_right_sign(straight, lateral):
    c, renderer, s = straight
    brain = ExplicitBrain()
    obs = brain.preprocess(renderer.render(_pose(c, s, lateral)))
    assert len(obs.x) >= 8, "the line should be seen over most scan rows on a straight"
    # (1 m to the side, the line enters the 90 degree view from 1 m ahead on: rows for 1-5 m)
    # The car is `lateral` m left of the line, so the line is `lateral` m to the car's right.
    assert obs.lateral_offset() == pytest.approx(-lateral, abs=0.06)
    v, w = brain.control(obs)
    if abs(lateral) >= 0.3:
        assert math.copysign(1, w) == -math.copysign(1, lateral), "must steer back towards the line"
    assert V_RANGE[0] <= v <= V_RANGE[1] and W_RANGE[0] <= w <= W_RANGE[1]


@pytest.mark.parametrize("dyaw", [-0.3, 0.3])
def test_heading_error_turns_back(straight, dyaw):
    c, renderer, s = straight
    brain = ExplicitBrain()
    brain.preprocess(renderer.render(_pose(c, s, 0.0, dyaw)))
    _, w = brain(renderer.render(_pose(c, s, 0.0, dyaw)))
    assert math.copysign(1, w) == -math.copysign(1, dyaw)
    assert abs(brain.last_state["heading"] + dyaw) < 0.05


def test_curve_ahead_slows_down_and_turns_its_way():
    c = load_circuit("simple_circuit")
    renderer = Renderer(c)
    s = np.arange(0.0, c.length, 0.5)
    k = c.curvature_at(s)
    i = int(np.argmax(np.abs(k)))
    brain_curve, brain_straight = ExplicitBrain(), ExplicitBrain()
    v_curve, w_curve = brain_curve(renderer.render(_pose(c, float(s[i]) - 1.5)))
    j = int(np.argmin([np.abs(c.curvature_at((si + np.arange(0, 25, 1.0)) % c.length)).max() for si in s]))
    v_straight, _ = brain_straight(renderer.render(_pose(c, float(s[j]))))
    assert v_curve < v_straight
    assert math.copysign(1, w_curve) == math.copysign(1, float(k[i]))


def test_no_line_is_handled_and_commands_the_lowest_speed():
    brain = ExplicitBrain()
    grass = np.zeros((480, 640, 3), np.uint8)
    grass[:] = (96, 128, 72)
    v, w = brain(grass)
    assert not brain.last_state["found"] and v == pytest.approx(V_RANGE[0]) and math.isfinite(w)


def test_rows_follow_the_simulator_camera():
    from pilotnet_brains.sim.render import CameraConfig

    cam = CameraGeometry(CameraConfig(mount_height=0.6))
    x, _ = cam.ground(np.array([cam.cx]), np.array([cam.row_at(5.0)]))
    assert x[0] == pytest.approx(5.0 + cam.mount_forward)
    assert ExplicitBrain().finder.rows.min() > cam.cy


def test_the_explicit_brain_plugs_into_the_pipeline(straight):
    c, renderer, s = straight
    pipe = Pipeline(make_brain("explicit"))
    step = pipe.process(renderer.render(_pose(c, s, 0.5)))
    assert step.ok and step.w < 0 and step.preprocess_time > 0


def test_completes_a_lap_of_simple_circuit():
    r = drive("simple_circuit", ExplicitBrain(params=ExplicitParams()))
    assert r["completed"], r
    assert r["mean_abs_lateral"] < 0.3 and r["max_abs_lateral"] < 1.0
    assert 9.0 <= r["average_speed"] <= 16.0


@pytest.mark.slow
@pytest.mark.parametrize("circuit", EVALUATION_CIRCUITS)
def test_completes_a_lap_of_every_evaluation_circuit_even_with_noise_and_delay(circuit):
    from pilotnet_brains.sim import SimConfig

    r = drive(circuit, sim_config=SimConfig(variation=True, noise_std=6.0, seed=1))
    assert r["completed"], r
    assert r["mean_abs_lateral"] < 0.3 and 8.0 <= r["average_speed"] <= 12.5
