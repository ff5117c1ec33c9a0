"""Simulator core: kinematics, camera rendering, time keeping, determinism; expert laps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.expert import PurePursuitExpert, expert_lap
from pilotnet_brains.sim import CameraConfig, Renderer, SimConfig, Simulator, integrate, render_top_view


@pytest.fixture(scope="module")
def simple():
    return load_circuit("simple_circuit")


@pytest.fixture(scope="module")
def sim(simple):
    return Simulator(simple)


def is_red(px):
    px = np.asarray(px, dtype=int)
    return (px[..., 0] > 150) & (px[..., 1] < 80) & (px[..., 2] < 80)


# ----------------------------------------------------------------------------- kinematics
def test_constant_command_drives_a_circle_of_radius_v_over_w():
    v, w = 6.0, 0.4
    pose = (1.0, 2.0, 0.3)
    center = np.array([1.0 - v / w * math.sin(0.3), 2.0 + v / w * math.cos(0.3)])
    pts = []
    p = pose
    for _ in range(int(2 * math.pi / w / 0.001)):
        p = integrate(p, v, w, 0.001)
        pts.append(p[:2])
    r = np.hypot(*(np.array(pts) - center).T)
    assert r == pytest.approx(np.full(len(r), v / w), abs=1e-6)
    # Straight line when w = 0.
    assert integrate((0.0, 0.0, math.pi / 2), 3.0, 0.0, 2.0) == pytest.approx((0.0, 6.0, math.pi / 2))


def test_simulator_time_and_kinematics(sim, simple):
    sim.reset()
    assert sim.pose == pytest.approx(simple.start_pose) and sim.time == 0.0 and sim.command == (0.0, 0.0)
    sim.set_command(5.0, 0.5)
    poses = []
    for _ in range(40):
        t, _ = sim.step_to_next_frame()
        poses.append(sim.pose)
    assert t == pytest.approx(2.0, abs=1e-12) and sim.time_ns == 2_000_000_000 and sim.frame_index == 40
    x0, y0, yaw0 = simple.start_pose
    center = np.array([x0 - 10 * math.sin(yaw0), y0 + 10 * math.cos(yaw0)])
    r = np.hypot(*(np.array(poses)[:, :2] - center).T)
    assert r == pytest.approx(np.full(40, 10.0), abs=1e-6)
    assert poses[-1][2] == pytest.approx(math.remainder(yaw0 + 1.0, 2 * math.pi), abs=1e-9)
    sim.reset()
    assert sim.pose == pytest.approx(simple.start_pose) and sim.time_ns == 0 and sim.command == (0.0, 0.0)
    with pytest.raises(RuntimeError, match="next frame is due"):
        sim.take_frame()


def test_config_is_validated():
    with pytest.raises(ValueError, match="physics_rate"):
        SimConfig(physics_rate=50)
    with pytest.raises(ValueError, match="camera_rate"):
        SimConfig(camera_rate=0)


# ----------------------------------------------------------------------------- camera
def test_frame_shape_sky_and_red_line_at_the_centre(sim, simple):
    sim.reset()
    img = sim.render()
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    cam = sim.config.camera
    assert cam.fx == pytest.approx(320.25, abs=0.01) and cam.far_clip == 15.0
    # Above the horizon: sky only.
    assert (img[:240] == np.array(simple.style["sky"], np.uint8)).all()
    # The brain's half (rows 240:480): the red line centred on column 319.5 when on the centerline.
    for row in (300, 400, 479):
        red = np.nonzero(is_red(img[row]))[0]
        assert len(red) > 3
        assert (red.min() + red.max()) / 2 == pytest.approx(319.5, abs=1.5)
        assert not is_red(img[row, :red.min() - 3]).any() and not is_red(img[row, red.max() + 3:]).any()
    # Asphalt either side of the line at the bottom.
    assert img[470, 100] == pytest.approx(np.array(simple.style["road"]), abs=2)
    # Width of the 0.3 m line at the bottom row: 0.3 m seen at depth h*f/(479-239.5).
    depth = cam.mount_height * cam.fx / (479 - cam.cy)
    assert len(np.nonzero(is_red(img[479]))[0]) == pytest.approx(0.3 / depth * cam.fx, abs=3)


def test_line_moves_right_when_the_car_is_left_of_it(sim, simple):
    x, y, yaw = simple.start_pose
    left = (x - math.sin(yaw), y + math.cos(yaw), yaw)   # 1 m to the left of the line
    img = sim.renderer.render(left)
    cam = sim.config.camera
    depth = cam.mount_height * cam.fx / (300 - cam.cy)   # ground distance seen by row 300
    red = np.nonzero(is_red(img[300]))[0]
    assert (red.min() + red.max()) / 2 == pytest.approx(cam.cx + 1.0 / depth * cam.fx, abs=3)


def test_far_red_line_is_antialiased_not_aliased(simple):
    # Looking across the red line far away: partial coverage gives intermediate colours, and the
    # frame changes little for a 1 cm move (no shimmer).
    r = Renderer(simple)
    s = simple.start_s + 30.0
    x, y = simple.point_at(s)[0]
    h = simple.heading_at(s)[0]
    pose = (x - 12 * math.cos(h + 1.2), y - 12 * math.sin(h + 1.2), h + 1.2)
    a = r.render(pose).astype(int)
    b = r.render((pose[0] + 0.01 * math.cos(h), pose[1] + 0.01 * math.sin(h), pose[2])).astype(int)
    assert np.abs(a - b).mean() < 1.0


def test_seeded_variation_and_noise_are_deterministic(simple):
    cfg = SimConfig(seed=7, variation=True, noise_std=5.0)
    a, b = Simulator(simple, cfg), Simulator(simple, cfg)
    c = Simulator(simple, SimConfig(seed=8, variation=True, noise_std=5.0))
    plain = Simulator(simple).render()
    fa, fb, fc = (s.step_to_next_frame()[1] for s in (a, b, c))
    assert (fa == fb).all() and not (fa == fc).all() and not (fa == plain).all()


def test_camera_config_changes_the_view(simple):
    low = Renderer(simple, CameraConfig(mount_height=0.3)).render(simple.start_pose)
    high = Renderer(simple, CameraConfig(mount_height=1.0)).render(simple.start_pose)
    assert is_red(low[479]).sum() > is_red(high[479]).sum()


def test_top_view_shows_the_circuit(simple):
    img = render_top_view(simple, px_per_m=1.0)
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 100
    assert is_red(img).any()
    assert (np.abs(img.astype(int) - (0, 200, 0)).sum(axis=2) < 10).any()   # the start arrow


# ----------------------------------------------------------------------------- expert
@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_expert_drives_a_full_lap(name):
    lap = expert_lap(name)
    assert lap["completed"], lap
    assert lap["deviation_mae"] < 0.1 and lap["deviation_max"] < 0.3, lap
    assert 8.0 <= lap["average_speed"] <= 20.0, lap   # m/s: between the corner speeds and v_max


def test_expert_commands_stay_in_the_label_ranges():
    c = load_circuit("montreal")
    expert = PurePursuitExpert(c)
    s = np.arange(0.0, c.length, 2.0)
    for x, y, yaw in zip(*c.point_at(s).T, c.heading_at(s)):
        for dy, dyaw in ((0.0, 0.0), (1.5, 0.3), (-1.5, -0.3)):
            v, w = expert((x - dy * np.sin(yaw), y + dy * np.cos(yaw), yaw + dyaw))
            assert 6.5 <= v <= 24.0 and abs(w) <= 7.1
