"""Simulator core: kinematics, camera rendering, time keeping, determinism; expert laps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pilotnet_brains.circuits import EVALUATION_CIRCUITS, Circuit, load_circuit
from pilotnet_brains.expert import PurePursuitExpert, expert_lap
from pilotnet_brains.sim import CameraConfig, Renderer, SimConfig, Simulator, integrate, render_top_view


@pytest.fixture(scope="module")
def simple():
    return load_circuit("simple_circuit")


@pytest.fixture(scope="module")
def sim(simple):
    return Simulator(simple)


@pytest.fixture(scope="module")
def open_field():
    """A wide circle without walls: room for the kinematics to drive free."""
    a = np.linspace(0, 2 * np.pi, 41)
    pts = np.stack([60 * np.cos(a), 60 * np.sin(a)], axis=1)
    pts[-1] = pts[0]
    return Circuit("open_field", pts, 40.0, 0.3, (60.0, 0.0, math.pi / 2))


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


def test_simulator_time_and_kinematics(open_field):
    simple = open_field
    sim = Simulator(simple)
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
def pinhole_ground(circuit, pose, row, cols, cam):
    """World points (N,2) of the ground seen at image ``row`` by ``cols``: the pinhole projection
    of f1_renault's camera (at (forward, left, height) in the car frame, no tilt), computed here
    from the camera's facts, independently of the renderer."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    cx, cy = x + cam.mount_forward * c - cam.mount_left * s, y + cam.mount_forward * s + cam.mount_left * c
    z = cam.mount_height * cam.fx / (row - cam.cy)
    lat = -(np.asarray(cols, float) - cam.cx) / cam.fx * z
    return np.stack([cx + z * c - lat * s, cy + z * s + lat * c], axis=1)


def red_columns_expected(circuit, pose, row, cam):
    cols = np.arange(0, cam.width, 0.05)
    _, lat = circuit.project(pinhole_ground(circuit, pose, row, cols, cam))
    inside = cols[np.abs(lat) <= circuit.line_width / 2]
    return inside.min(), inside.max()


def wall_base_row_expected(circuit, pose, col, cam):
    """Row where the wall's foot meets image column ``col``: march the column's ground ray."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    px, py = x + cam.mount_forward * c - cam.mount_left * s, y + cam.mount_forward * s + cam.mount_left * c
    lat = -(col - cam.cx) / cam.fx
    z = np.arange(cam.near_clip, cam.far_clip, 0.001)
    pts = np.stack([px + z * c - lat * z * s, py + z * s + lat * z * c], axis=1)
    _, d = circuit.project(pts)
    hit = np.nonzero(np.abs(d) >= circuit.wall_offset)[0]
    assert len(hit), "no wall within the far clip"
    return cam.cy + cam.mount_height * cam.fx / z[hit[0]]


def test_camera_is_f1_renaults():
    cam = CameraConfig()
    assert (cam.width, cam.height, cam.hfov) == (640, 480, 1.57)
    assert cam.fx == pytest.approx(320.26, abs=0.01) and (cam.near_clip, cam.far_clip) == (0.1, 15.0)
    assert (cam.mount_forward, cam.mount_left, cam.mount_height) == (0.45, 0.04, 0.10)


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_camera_view_at_the_spawn_matches_the_pinhole_projection(name):
    """At the spawn pose: the red line's left/right columns at rows 300, 400 and 479, and the row
    where the wall's foot meets the image's left and right borders, within 2 px of the pinhole
    projection of the camera and circuit facts; sky above the walls, asphalt beside the line."""
    circuit = load_circuit(name)
    r = Renderer(circuit)
    cam = r.camera
    pose = circuit.start_pose
    img = r.render(pose)
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
    for row in (300, 400, 479):
        red = np.nonzero(is_red(img[row]))[0]
        lo, hi = red_columns_expected(circuit, pose, row, cam)
        assert abs(red.min() - lo) <= 2 and abs(red.max() - hi) <= 2, (row, red.min(), red.max(), lo, hi)
    for col in (0, cam.width - 1):
        expected = wall_base_row_expected(circuit, pose, col, cam)
        column = img[:, col]
        # the wall: one flat colour down the column from the horizon; the first row below it
        wall = np.nonzero((column == column[240]).all(axis=1))[0]
        first_ground = wall[wall >= 240].max() + 1
        assert abs(first_ground - math.ceil(expected)) <= 2, (col, first_ground, expected)
    assert (img[0] == np.asarray(circuit.style["sky"], np.uint8)).all()      # the sky above the walls
    road = img[470, 5].astype(float)                                           # asphalt at the bottom left
    assert np.abs(road - circuit.style["road"]).max() < 40


def test_line_moves_right_when_the_car_is_left_of_it(sim, simple):
    x, y, yaw = simple.start_pose
    left = (x - 0.2 * math.sin(yaw), y + 0.2 * math.cos(yaw), yaw)   # 0.2 m further left
    cam = sim.renderer.camera
    a = np.nonzero(is_red(sim.renderer.render(simple.start_pose)[300]))[0]
    b = np.nonzero(is_red(sim.renderer.render(left)[300]))[0]
    depth = cam.mount_height * cam.fx / (300 - cam.cy)   # ground distance seen by row 300
    assert (b.mean() - a.mean()) == pytest.approx(0.2 / depth * cam.fx, abs=3)


def test_walls_hide_what_is_behind_them(simple):
    """Standing in a straight and looking straight at the right wall: the wall fills the view
    from its foot past the horizon (it is 0.5 m high, the camera 0.10 m), ground below."""
    r = Renderer(simple)
    s = simple.start_s + 10.0
    x, y = simple.point_at(s)[0]
    h = simple.heading_at(s)[0] - math.pi / 2          # facing the right wall, 1.55 m away
    img = r.render((x, y, h))
    cam = r.camera
    z = simple.wall_offset - cam.mount_forward         # the wall's distance from the camera
    base = cam.cy + cam.mount_height * cam.fx / z
    top = cam.cy - (simple.wall_height - cam.mount_height) * cam.fx / z
    col = img[:, 320].astype(int)
    assert col[int(base) - 3].sum() > 3 * 100 and col[int(top) + 3].sum() > 3 * 100   # lit wall
    assert (col[int(base) + 3] < 120).all()                                           # asphalt below
    assert (img[int(top) - 3, 320] == simple.style["sky"]).all()                      # sky above


def _reference_frame(r: Renderer, pose) -> np.ndarray:
    """The frame computed the plain way, whole arrays in numpy: every ground pixel's distance and
    texture sampled, the walls marched per column over all depths at once, their colours from
    cv2.remap samples of the field, then each pixel's ground, wall or sky; the same arithmetic
    (operation order, float32/float64) as the renderer's kernels."""
    import cv2

    from pilotnet_brains.sim import render as rd

    cam, look = r.camera, r.look
    field, (x0, y0), texel = rd.distance_field(r.circuit)
    x, y = cam.position(pose)
    cs, sn = math.cos(pose[2]), math.sin(pose[2])
    rows = np.arange(r.row0, cam.height, dtype=np.float64)
    depth = cam.mount_height * cam.fx / (rows - cam.cy)
    lateral = -(np.arange(cam.width, dtype=np.float64) - cam.cx) / cam.fx

    def sample(z, lat):  # bilinear, unsigned, FIELD_CLAMP outside; z, lat broadcast
        lz = lat * z
        wx, wy = x + z * cs - lz * sn, y + z * sn + lz * cs
        gx, gy = (wx - x0) * (1.0 / texel), (wy - y0) * (1.0 / texel)
        ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        ok = (ix >= 0) & (iy >= 0) & (ix < field.shape[1] - 1) & (iy < field.shape[0] - 1)
        jx, jy = np.clip(ix, 0, field.shape[1] - 2), np.clip(iy, 0, field.shape[0] - 2)
        f = [field[jy + a, jx + b].astype(np.float64) for a in (0, 1) for b in (0, 1)]
        tx, ty = gx - ix, gy - iy
        a, b = f[0] + (f[1] - f[0]) * tx, f[2] + (f[3] - f[2]) * tx
        return np.where(ok, np.abs(a + (b - a) * ty), float(rd.FIELD_CLAMP)), wx, wy

    d64, wx, wy = sample(depth[:, None], lateral[None, :])
    dist = d64.astype(np.float32)
    foot = np.sqrt((depth / cam.fx) * (depth ** 2 / (cam.mount_height * cam.fx)))
    levels = rd.gravel_texture()
    level = np.round(np.log2(np.maximum(foot / (rd.TEXTURE_REPEAT / rd.TEXTURE_SIZE), 1.0))).astype(int)
    tex = np.zeros_like(dist)
    for i, lvl in enumerate(level):
        if lvl < len(levels):
            t = levels[lvl]
            n = t.shape[0]
            u, v = wx[i] * (n / rd.TEXTURE_REPEAT) - 0.5, wy[i] * (n / rd.TEXTURE_REPEAT) - 0.5
            iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
            tu, tv = u - iu, v - iv
            t00, t01 = t[iv & (n - 1), iu & (n - 1)], t[iv & (n - 1), (iu + 1) & (n - 1)]
            t10, t11 = t[(iv + 1) & (n - 1), iu & (n - 1)], t[(iv + 1) & (n - 1), (iu + 1) & (n - 1)]
            a, b = t00 + (t01 - t00) * tu, t10 + (t11 - t10) * tu
            tex[i] = a + (b - a) * tv
    # Walls: the first sample depth whose distance reaches the wall offset, interpolated.
    wall_depth = np.full(cam.width, np.inf)
    if look.wall_height > 0:
        zs = np.geomspace(cam.near_clip, cam.far_clip, rd.WALL_SAMPLES)
        d, _, _ = sample(zs[:, None], lateral[None, :])
        thr = look.road_half / rd.FIELD_UNIT
        for c in range(cam.width):
            k = np.nonzero(d[:, c] >= thr)[0]
            if len(k):
                k = k[0]
                wall_depth[c] = zs[0] if k == 0 else zs[k - 1] + (thr - d[k - 1, c]) / max(
                    d[k, c] - d[k - 1, c], 1e-9) * (zs[k] - zs[k - 1])
    hit = np.isfinite(wall_depth)
    wall_rgb = np.zeros((cam.width, 3), np.uint8)
    if hit.any():
        z = wall_depth[hit]
        lat = lateral[hit] * z
        p = np.stack([x + z * cs - lat * sn, y + z * sn + lat * cs], axis=1)

        def mm(q):
            m = ((q - (x0, y0)) / texel).astype(np.float32)
            v = cv2.remap(field, m[None, :, 0], m[None, :, 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=rd.FIELD_CLAMP)[0]
            return np.abs(v.astype(np.float64)) * rd.FIELD_UNIT * 1000.0
        gx, gy = mm(p + (texel, 0)) - mm(p - (texel, 0)), mm(p + (0, texel)) - mm(p - (0, texel))
        norm = np.hypot(gx, gy)
        norm[norm == 0] = 1.0
        sx, sy, sz = look.sun
        cos = (gx * sx + gy * sy) / norm / (math.sqrt(sx * sx + sy * sy + sz * sz) or 1.0)
        light = np.minimum(1.0, look.ambient + look.diffuse * np.maximum(cos, 0.0))
        wall_rgb[hit] = np.clip(np.round(np.asarray(look.wall, np.float64)[None, :] * light[:, None]), 0, 255)
    # Ground colours: each edge blended over the largest change to a neighbouring pixel.
    g = np.zeros_like(dist)
    g[:, 1:] = np.abs(dist[:, 1:] - dist[:, :-1])
    g[:, 0] = np.abs(dist[:, 1] - dist[:, 0])
    g[1:] = np.maximum(g[1:], np.abs(dist[1:] - dist[:-1]))
    g[:-1] = np.maximum(g[:-1], np.abs(dist[1:] - dist[:-1]))
    g = np.maximum(g, np.float32(1.0))
    road_e, line_e = np.float32(look.road_half / rd.FIELD_UNIT), np.float32(look.line_half / rd.FIELD_UNIT)
    cr = np.clip((road_e - dist) / g + np.float32(0.5), np.float32(0), np.float32(1))
    cl = np.clip((line_e - dist) / g + np.float32(0.5), np.float32(0), np.float32(1))
    colours = np.array([look.ground, look.road, look.line], np.float32) * np.float32(look.light((0.0, 0.0, 1.0)))
    noise = tex * np.float32(look.texture * look.light((0.0, 0.0, 1.0))) * (cr - cl) + np.float32(0.5)
    ground = np.empty(dist.shape + (3,), np.uint8)
    for k in range(3):
        v = colours[0, k] + (colours[1, k] - colours[0, k]) * cr
        v = v + (colours[2, k] - v) * cl + noise
        ground[..., k] = np.clip(v, np.float32(0), np.float32(255)).astype(np.uint8)
    with np.errstate(divide="ignore"):
        base = np.where(hit, cam.cy + cam.mount_height * cam.fx / wall_depth, -np.inf)
        top = np.where(hit, cam.cy - (look.wall_height - cam.mount_height) * cam.fx / wall_depth, np.inf)
    r_img = np.arange(cam.height)[:, None]
    out = np.where((r_img >= top[None, :])[..., None], wall_rgb[None], np.asarray(look.sky, np.uint8))
    shown = (r_img[r.row0:] >= base[None, :])[..., None]
    out[r.row0:] = np.where(shown, ground, out[r.row0:])
    return out


def test_frames_match_a_plain_reference_computation(simple):
    """The fused kernels (walls first, ground sampled one row ahead and shaded in the same pass)
    give exactly the frame of a plain whole-array computation: in a straight, at the wall (the
    ground right below a near wall's base), looking along a wall at an angle, with a varied look
    and without walls."""
    from dataclasses import replace

    r = Renderer(simple)
    s = simple.start_s + 10.0
    x, y = simple.point_at(s)[0]
    h = simple.heading_at(s)[0]
    n = np.array([-math.sin(h), math.cos(h)])
    poses = [simple.start_pose, (x, y, h - math.pi / 2), (*(np.array([x, y]) - 1.2 * n), h - 0.6),
             (*(np.array([x, y]) + 0.9 * n), h + 0.25)]
    looks = [r.base_look, r.base_look.varied(np.random.default_rng(3)), replace(r.base_look, wall_height=0.0)]
    for look in looks:
        r.set_look(look)
        for pose in poses:
            img = r.render(pose)
            ref = _reference_frame(r, pose)
            assert np.array_equal(img, ref), (look, pose, int((img != ref).any(axis=2).sum()))


def test_far_red_line_is_antialiased_not_aliased(simple):
    # Looking along the line: the frame changes little for a 1 cm move (no shimmer).
    r = Renderer(simple)
    s = simple.start_s + 30.0
    x, y = simple.point_at(s)[0]
    h = simple.heading_at(s)[0]
    a = r.render((x, y, h)).astype(int)
    b = r.render((x + 0.01 * math.cos(h), y + 0.01 * math.sin(h), h)).astype(int)
    assert np.abs(a - b).mean() < 3.0


def test_render_is_deterministic(simple):
    r = Renderer(simple)
    pose = (simple.start_pose[0] + 0.1, simple.start_pose[1] - 3.0, simple.start_pose[2] + 0.05)
    assert (r.render(pose) == r.render(pose)).all()
    assert (Renderer(simple).render(pose) == r.render(pose)).all()


def test_seeded_variation_and_noise_are_deterministic(simple):
    cfg = SimConfig(seed=7, variation=True, noise_std=5.0)
    a, b = Simulator(simple, cfg), Simulator(simple, cfg)
    c = Simulator(simple, SimConfig(seed=8, variation=True, noise_std=5.0))
    plain = Simulator(simple).render()
    fa, fb, fc = (s.step_to_next_frame()[1] for s in (a, b, c))
    assert (fa == fb).all() and not (fa == fc).all() and not (fa == plain).all()


def test_camera_config_changes_the_view(simple):
    low = Renderer(simple, CameraConfig(mount_height=0.08)).render(simple.start_pose)
    high = Renderer(simple, CameraConfig(mount_height=0.3)).render(simple.start_pose)
    assert is_red(low[479]).sum() > is_red(high[479]).sum()


def test_top_view_shows_the_circuit(simple):
    img = render_top_view(simple, px_per_m=2.0)
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 100
    assert is_red(img).any()
    assert (np.abs(img.astype(int) - (0, 200, 0)).sum(axis=2) < 10).any()   # the start arrow


# ----------------------------------------------------------------------------- walls
def test_walls_stop_a_car_driving_into_them_head_on(simple):
    sim = Simulator(simple)
    x, y, yaw = simple.start_pose
    sim.reset((x, y, yaw - math.pi / 2))          # facing the right wall, 1.55 m away
    sim.set_command(5.0, 0.0)
    for _ in range(20):
        sim.step_to_next_frame()
    assert sim.in_contact and sim.wall_contacts == 1
    _, lat = simple.project(np.array([sim.pose[:2]]))
    # stopped with its nose (0.457 m ahead) at the wall's face
    assert abs(lat[0]) == pytest.approx(simple.wall_offset - 0.457, abs=0.02)


def test_walls_let_a_car_scrape_along_at_an_angle(simple):
    sim = Simulator(simple)
    s0 = simple.start_s + 5.0
    x, y = simple.point_at(s0)[0]
    h = simple.heading_at(s0)[0]
    sim.reset((x, y, h - 0.3))                     # 17 degrees towards the right wall
    sim.set_command(5.0, 0.0)
    s_before = simple.project(np.array([sim.pose[:2]]))[0][0]
    for _ in range(40):                            # 2 s: 10 m if it were free
        sim.step_to_next_frame()
    s_after, lat = simple.project(np.array([sim.pose[:2]]))
    assert sim.in_contact and abs(lat[0]) < simple.wall_offset      # against the wall, not through it
    assert 3.0 < s_after[0] - s_before < 10.0                       # slid along it


# ----------------------------------------------------------------------------- expert
@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_expert_drives_a_full_lap(name):
    lap = expert_lap(name)
    assert lap["completed"], lap
    assert lap["deviation_mae"] < 0.05 and lap["deviation_max"] < 0.3, lap
    assert 10.0 <= lap["average_speed"] <= 20.0, lap   # m/s: between the corner speeds and v_max


def test_expert_commands_stay_in_the_label_ranges():
    c = load_circuit("montreal")
    expert = PurePursuitExpert(c)
    s = np.arange(0.0, c.length, 2.0)
    for x, y, yaw in zip(*c.point_at(s).T, c.heading_at(s)):
        for dy, dyaw in ((0.0, 0.0), (1.2, 0.3), (-1.2, -0.3)):
            v, w = expert((x - dy * np.sin(yaw), y + dy * np.cos(yaw), yaw + dyaw))
            assert 6.5 <= v <= 24.0 and abs(w) <= 7.1
