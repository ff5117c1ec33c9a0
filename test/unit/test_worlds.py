"""Generated Gazebo worlds: valid SDF (``ign sdf -k``), walls, road and line where the circuit file
puts them, the f1_renault interface, and the committed files up to date with their generator."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import ROOT
from scipy.spatial import cKDTree

from pilotnet_brains import topics
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.sim.render import AMBIENT, SUN_DIRECTION
from pilotnet_brains.worlds import (
    CAR_MODEL,
    LINE_TOLERANCE,
    LINE_Z,
    ROAD_Z,
    WALL_THICKNESS,
    WALL_TOLERANCE,
    circuit_model_name,
    read_stl,
    road_meshes,
    road_model_name,
    road_model_sdf,
    stl_bytes,
    world_sdf,
    write_world,
)

WORLDS = os.path.join(ROOT, "worlds")
needs_ign = pytest.mark.skipif(shutil.which("ign") is None, reason="ignition-tools (ign sdf) not installed")


def ign_check(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ign", "sdf", "-k", path], capture_output=True, text=True, timeout=120)


def world_root(name: str) -> ET.Element:
    return ET.parse(os.path.join(WORLDS, f"{name}.world")).getroot().find("world")


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def rgb(element: ET.Element, tag: str) -> list[float]:
    return floats(element.findtext(f"material/{tag}"))[:3]


@needs_ign
@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_world_is_valid_sdf(name):
    model = os.path.join(WORLDS, "models", road_model_name(load_circuit(name)), "model.sdf")
    for path in (os.path.join(WORLDS, f"{name}.world"), model):
        proc = ign_check(path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Valid." in proc.stdout


@needs_ign
def test_ign_rejects_a_broken_world(tmp_path):
    text = open(os.path.join(WORLDS, "simple_circuit.world")).read()
    for broken in (text.replace("<max_step_size>0.001</max_step_size>", "<max_step_size>fast</max_step_size>"),
                   text.replace('<collision name="c1">', '<collision name="c0">', 1)):   # duplicate name
        assert broken != text
        bad = tmp_path / "bad.world"
        bad.write_text(broken)
        assert ign_check(str(bad)).returncode != 0


def wall_boxes_of(name: str) -> list[tuple[str, ET.Element, ET.Element]]:
    model = world_root(name).find(f"model[@name='{circuit_model_name(load_circuit(name))}']")
    assert model.findtext("static") == "true"
    out = []
    for link in model.findall("link"):
        if link.get("name").startswith("wall_"):
            visuals = {v.findtext("pose"): v for v in link.findall("visual")}
            for col in link.findall("collision"):
                out.append((link.get("name"), col, visuals.get(col.findtext("pose"))))
    return out


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_walls_stand_at_the_asphalt_edge_all_the_way_round(name):
    c = load_circuit(name)
    boxes = wall_boxes_of(name)
    assert {side for side, _, _ in boxes} == {"wall_left", "wall_right"}
    centres, axes, halves = [], [], []
    for _, col, vis in boxes:
        # Every collision box has the same box as visual, in the circuit's wall colour.
        assert vis is not None and vis.find("geometry/box/size").text == col.find("geometry/box/size").text
        assert rgb(vis, "ambient") == pytest.approx([v / 255 for v in c.style["wall"]], abs=1e-3)
        assert rgb(vis, "diffuse") == pytest.approx([v / 255 for v in c.style["wall"]], abs=1e-3)
        length, thick, height = floats(col.findtext("geometry/box/size"))
        x, y, z, roll, pitch, yaw = floats(col.findtext("pose"))
        assert (thick, height, z, roll, pitch) == (WALL_THICKNESS, c.wall_height, c.wall_height / 2, 0, 0)
        assert 0 < length <= 2.2
        centres.append((x, y))
        axes.append((math.cos(yaw), math.sin(yaw)))
        halves.append(length / 2)
    centres, axes, halves = np.array(centres), np.array(axes), np.array(halves)
    normals = np.stack([-axes[:, 1], axes[:, 0]], axis=1)
    # Both long faces of each box: the one nearer the line is at wall_offset (the asphalt edge),
    # the other one WALL_THICKNESS behind it (checked along the middle 80 % of each face).
    for t in (-0.4, 0.0, 0.4):
        along = centres + axes * (2 * t * halves)[:, None]
        _, lat_a = c.project(along + normals * WALL_THICKNESS / 2)
        _, lat_b = c.project(along - normals * WALL_THICKNESS / 2)
        inner = np.minimum(np.abs(lat_a), np.abs(lat_b))
        outer = np.maximum(np.abs(lat_a), np.abs(lat_b))
        assert np.abs(inner - c.wall_offset).max() <= WALL_TOLERANCE + 1e-3
        assert np.abs(outer - c.wall_offset - WALL_THICKNESS).max() <= WALL_TOLERANCE + 1e-3

    def inside_a_box(points):
        _, near = cKDTree(centres).query(points, k=24)   # short boxes crowd the inside of hairpins
        d = points[:, None, :] - centres[near]
        u = np.einsum("nkj,nkj->nk", d, axes[near])
        v = np.einsum("nkj,nkj->nk", d, normals[near])
        # 1 mm: the world's poses are rounded to the millimetre
        return np.any((np.abs(u) <= halves[near] + 1e-3) & (np.abs(v) <= WALL_THICKNESS / 2 + 1e-3), axis=1)

    s = np.arange(0.0, c.length, 0.05)
    p = c.point_at(s)
    h = c.heading_at(s)
    n = np.stack([-np.sin(h), np.cos(h)], axis=1)
    for side in (1.0, -1.0):
        # No gap: every point just behind the asphalt edge, all the way round, is inside a wall...
        assert inside_a_box(p + side * (c.wall_offset + 0.02) * n).all()
        # ... and the walls leave the asphalt free.
        assert not inside_a_box(p + side * (c.wall_offset - 0.015) * n).any()


def cross2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def in_triangles(tri: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Which points (N,2) lie in any of the triangles (M,3,>=2) (all of them are tried: long thin
    ones defeat a nearest-centroid search)."""
    a, b, d = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    hits = np.zeros(len(pts), bool)
    for i in range(0, len(pts), 256):
        q = pts[i:i + 256, None, :]
        w0, w1, w2 = cross2(b - a, q - a), cross2(d - b, q - b), cross2(a - d, q - d)
        hits[i:i + 256] = ((w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)).any(axis=1)
    return hits


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_road_and_line_meshes_cover_the_road_and_the_red_line(name):
    c = load_circuit(name)
    mdir = os.path.join(WORLDS, "models", road_model_name(c), "meshes")
    for part, half, z, tol in (("road", c.wall_offset, ROAD_Z, WALL_TOLERANCE),
                               ("line", c.line_width / 2, LINE_Z, LINE_TOLERANCE)):
        tri = read_stl(os.path.join(mdir, f"{part}.stl")).astype(np.float64)
        assert np.allclose(tri[:, :, 2], z)
        cross = cross2(tri[:, 1, :2] - tri[:, 0, :2], tri[:, 2, :2] - tri[:, 0, :2])
        assert (cross > 0).all()                               # counter-clockwise: facing up
        # Vertices on the edges, the strip's area = width x lap (the edges are offset curves).
        _, lat = c.project(tri[:, :, :2].reshape(-1, 2))
        assert np.abs(np.abs(lat) - half).max() < 3e-3   # projection onto the 0.2 m polyline
        area = cross.sum() / 2
        assert area == pytest.approx(2 * half * c.length, rel=2e-3)
        # Points of the strip's midline are inside it, points beyond its edges are not.
        s = np.arange(0.0, c.length, 0.5)
        h = c.heading_at(s)
        normal = np.stack([-np.sin(h), np.cos(h)], axis=1)
        for side in (1.0, -1.0):
            assert in_triangles(tri, c.point_at(s) + side * (half - tol - 0.002) * normal).all()
            assert not in_triangles(tri, c.point_at(s) + side * (half + tol + 0.002) * normal).any()


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_world_spawns_f1_renault_with_its_camera_and_the_f1_interface(name):
    c = load_circuit(name)
    world = world_root(name)
    f1 = world.find(f"model[@name='{CAR_MODEL}']")
    assert floats(f1.findtext("pose")) == pytest.approx([c.start_pose[0], c.start_pose[1], 0, 0, 0, c.start_pose[2]])
    link = f1.find("link")
    assert link.get("name") == topics.BASE_FRAME
    # Body: 1.0 x 0.36 x 0.21 m, 0.543 m behind to 0.457 m ahead of the origin, on the ground.
    body = link.find("visual[@name='body_visual']")
    size = floats(body.findtext("geometry/box/size"))
    bx, by, bz = floats(body.findtext("pose"))[:3]
    assert size == pytest.approx([1.0, 0.36, 0.21])
    assert (bx - size[0] / 2, bx + size[0] / 2, by, bz - size[2] / 2) == pytest.approx((-0.543, 0.457, 0, 0))
    col = link.find("collision/geometry/box/size")
    assert col is not None and floats(col.text)[:2] == pytest.approx([1.0, 0.36])
    # Kinematics: planar move on the F1 topics.
    plugins = {p.get("filename"): p for p in f1.iter("plugin")}
    move = plugins["libgazebo_ros_planar_move.so"]
    assert move.findtext("robotNamespace") + "/" + move.findtext("commandTopic") == topics.CMD_VEL
    assert move.findtext("robotNamespace") + "/" + move.findtext("odometryTopic") == topics.ODOM
    assert (move.findtext("odometryFrame"), move.findtext("robotBaseFrame")) == (topics.ODOM_FRAME, topics.BASE_FRAME)
    assert float(move.findtext("odometryRate")) == 20.0
    # Camera cam_f1_left: (0.45, 0.04, camera_height) m, no tilt, 640x480 R8G8B8, hfov 1.57, 0.1-15 m, 20 Hz.
    cam = plugins["libgazebo_ros_camera.so"]
    assert "/" + cam.findtext("cameraName") + "/" + cam.findtext("imageTopicName") == topics.CAMERA_IMAGE
    assert "/" + cam.findtext("cameraName") + "/" + cam.findtext("cameraInfoTopicName") == topics.CAMERA_INFO
    sensor = link.find("sensor[@type='camera']")
    assert sensor.get("name") == "cam_f1_left"
    assert floats(sensor.findtext("pose")) == pytest.approx([0.45, 0.04, c.camera_height, 0, 0, 0])
    assert float(sensor.findtext("update_rate")) == 20.0
    assert float(sensor.findtext("camera/horizontal_fov")) == 1.57
    assert [sensor.findtext(f"camera/image/{k}") for k in ("width", "height", "format")] == ["640", "480", "R8G8B8"]
    assert (float(sensor.findtext("camera/clip/near")), float(sensor.findtext("camera/clip/far"))) == (0.1, 15.0)


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_world_colours_and_light_are_the_renderers(name):
    c = load_circuit(name)
    world = world_root(name)
    assert floats(world.findtext("scene/ambient"))[:3] == [AMBIENT] * 3
    assert floats(world.findtext("scene/background"))[:3] == pytest.approx([v / 255 for v in c.style["sky"]], abs=1e-3)
    assert floats(world.findtext("light[@name='sun']/direction")) == list(SUN_DIRECTION)
    ground = world.find(f"model[@name='{circuit_model_name(c)}']/link[@name='ground']")
    visuals = {v.get("name"): v for v in ground.findall("visual")}
    for part, key in (("grass", "ground"), ("road", "road"), ("line", "line")):
        assert rgb(visuals[part], "diffuse") == pytest.approx([v / 255 for v in c.style[key]], abs=1e-3)
    assert visuals["road"].findtext("geometry/mesh/uri") == f"model://{road_model_name(c)}/meshes/road.stl"
    assert ground.find("collision/geometry/plane") is not None


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_committed_worlds_are_up_to_date_with_the_circuit_files(name):
    c = load_circuit(name)
    assert open(os.path.join(WORLDS, f"{name}.world")).read() == world_sdf(c)
    mdir = os.path.join(WORLDS, "models", road_model_name(c))
    assert open(os.path.join(mdir, "model.sdf")).read() == road_model_sdf(c)
    for part, tri in road_meshes(c).items():
        assert open(os.path.join(mdir, "meshes", f"{part}.stl"), "rb").read() == stl_bytes(tri, f"{name} {part}")


def test_worlds_folder_holds_only_generated_files():
    expected = set()
    for name in EVALUATION_CIRCUITS:
        model = os.path.join("models", road_model_name(load_circuit(name)))
        expected |= {f"{name}.world", os.path.join(model, "model.config"), os.path.join(model, "model.sdf"),
                     os.path.join(model, "meshes", "road.stl"), os.path.join(model, "meshes", "line.stl")}
    found = {os.path.relpath(os.path.join(d, f), WORLDS) for d, _, files in os.walk(WORLDS) for f in files}
    assert found == expected
    for name in EVALUATION_CIRCUITS:    # binary STL: a header Gazebo will not mistake for ASCII
        head = open(os.path.join(WORLDS, "models", road_model_name(load_circuit(name)), "meshes", "road.stl"),
                    "rb").read(5)
        assert head != b"solid"


def resolve_world_arg(monkeypatch, cwd: str, **args) -> str:
    """sim.launch's Gazebo world file for these launch arguments, evaluated by roslaunch itself."""
    substitution_args = pytest.importorskip("roslaunch.substitution_args")
    path = os.path.join(ROOT, "launch", "include", "sim.launch")
    launch = ET.parse(path).getroot()
    defaults = {a.get("name"): a.get("default") for a in launch.findall("arg") if a.get("default") is not None}
    expr = launch.find("arg[@name='_world_file']").get("value")
    monkeypatch.setenv("PWD", cwd)
    context = {"arg": {**defaults, **args}, "filename": path, "anon": {}}
    return substitution_args.resolve_args(expr, context=context)


def test_world_argument_takes_a_generated_world_name_or_any_world_file(monkeypatch, tmp_path):
    def same(a, b):
        return os.path.realpath(a) == os.path.realpath(b)

    # Default: the circuit's generated world (also for a circuit given as a .yaml path).
    assert same(resolve_world_arg(monkeypatch, str(tmp_path), circuit="montreal"), os.path.join(WORLDS, "montreal.world"))
    yaml_path = os.path.join(ROOT, "config", "circuits", "montmelo.yaml")
    assert same(resolve_world_arg(monkeypatch, str(tmp_path), circuit=yaml_path), os.path.join(WORLDS, "montmelo.world"))
    # A name: a generated world, whatever the circuit.
    assert same(resolve_world_arg(monkeypatch, str(tmp_path), circuit="montreal", world="simple_circuit"),
                os.path.join(WORLDS, "simple_circuit.world"))
    # A path: used as is (absolute) or from the current directory (relative), e.g. CustomRobots' worlds.
    custom = "/opt/jderobot/share/jderobot/gazebo/worlds/simple_circuit.world"
    assert resolve_world_arg(monkeypatch, str(tmp_path), world=custom) == custom
    assert resolve_world_arg(monkeypatch, str(tmp_path), world="f1/worlds/montreal_line.world") == \
        os.path.join(str(tmp_path), "f1/worlds/montreal_line.world")
    # sim.launch hands that file to gazebo_ros; circuit.launch declares world (it passes all its args on).
    sim = ET.parse(os.path.join(ROOT, "launch", "include", "sim.launch")).getroot()
    include = sim.find("group/include[@file='$(find gazebo_ros)/launch/empty_world.launch']")
    assert include.find("arg[@name='world_name']").get("value") == "$(arg _world_file)"
    circuit = ET.parse(os.path.join(ROOT, "launch", "circuit.launch")).getroot()
    assert circuit.find("arg[@name='world']").get("default") == ""


def test_a_reversed_circuit_gets_its_own_world(tmp_path):
    c = load_circuit("simple_circuit_reverse")
    info = write_world(c, str(tmp_path))
    assert info["world"] == str(tmp_path / "simple_circuit_reverse.world")
    world = ET.parse(info["world"]).getroot().find("world")
    assert world.get("name") == "simple_circuit_reverse"
    pose = floats(world.find(f"model[@name='{CAR_MODEL}']").findtext("pose"))
    forward = load_circuit("simple_circuit").start_pose
    assert pose[:2] == pytest.approx(forward[:2])
    assert math.cos(pose[5] - forward[2]) == pytest.approx(-1.0)          # facing the other way
    mdir = tmp_path / "models" / "pilotnet_simple_circuit_reverse_road"
    assert info["model_dir"] == str(mdir)
    for part in ("road", "line"):                                        # still facing up
        tri = read_stl(str(mdir / "meshes" / f"{part}.stl")).astype(np.float64)
        assert (cross2(tri[:, 1, :2] - tri[:, 0, :2], tri[:, 2, :2] - tri[:, 0, :2]) > 0).all()
    if shutil.which("ign"):
        assert ign_check(info["world"]).returncode == 0
