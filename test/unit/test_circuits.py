"""Circuit files: validation messages and geometry."""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from pilotnet_brains.circuit_design import GENERATED
from pilotnet_brains.circuits import (
    EVALUATION_CIRCUITS,
    TRAINING_CIRCUITS,
    Circuit,
    CircuitError,
    circuit_names,
    load_circuit,
)
from pilotnet_brains.metrics import wrap_signed

REFERENCE = {  # Gazebo F1 worlds, measured from their meshes: spawn pose, red-line lap length (m),
    # road width (m), red line width (m), minimum radius of the line (m, circle through +-1 m)
    "simple_circuit": ((53.462, -10.734, -1.57), 428.73, 3.10, 0.10, 5.6),
    "montreal": ((-200.88, -90.72, -2.83), 1433.08, 3.02, 0.10, 3.7),
    "montmelo": ((27.18, -31.55, -3.12), 737.37, 2.98, 0.12, 2.1),
    "nurburgring": ((-74.29, 37.74, -0.51), 554.54, 3.30, 0.13, 2.5),
    "many_curves": ((0.01, -0.02, -1.73), 793.64, 2.40, 0.10, 3.2),
}


def circle_points(radius=30.0, n=24, ccw=True, center=(0.0, 0.0)):
    a = np.linspace(0, 2 * np.pi, n + 1)
    if not ccw:
        a = -a
    return [[center[0] + radius * math.cos(t), center[1] + radius * math.sin(t)] for t in a]


def circle_dict(radius=30.0, **over):
    d = {"road_width": 8.0, "line_width": 0.3, "start": {"x": radius, "y": 0.0, "yaw": math.pi / 2},
         "control_points": circle_points(radius)}
    d.update(over)
    return d


def write(tmp_path, data, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


# ----------------------------------------------------------------------------- packaged circuits
def test_packaged_circuits_exist_and_roles_are_disjoint():
    names = circuit_names()
    assert set(EVALUATION_CIRCUITS) <= set(names)
    assert len(TRAINING_CIRCUITS) >= 4 and set(TRAINING_CIRCUITS) <= set(names)
    assert not set(EVALUATION_CIRCUITS) & set(TRAINING_CIRCUITS)
    for n in EVALUATION_CIRCUITS:
        assert load_circuit(n).role == "evaluation"
    for n in TRAINING_CIRCUITS:
        assert load_circuit(n).role == "training"


@pytest.mark.parametrize("name", list(REFERENCE))
def test_real_circuits_match_the_gazebo_worlds(name):
    (x, y, yaw), length, road, line, radius = REFERENCE[name]
    c = load_circuit(name)
    assert c.length == pytest.approx(length, abs=0.1)
    assert c.start_pose == pytest.approx((x, y, yaw))
    assert (c.road_width, c.line_width, c.wall_height, c.camera_height) == (road, line, 0.5, 0.10)
    assert c.wall_offset == pytest.approx(road / 2)
    # The spawn pose lies within 0.1 m of the red line, facing along it.
    assert abs(c.start_lateral) < 0.1
    assert abs(math.remainder(c.heading_at(c.start_s)[0] - yaw, 2 * math.pi)) < 0.05
    # The tightest bend as measured, within the spline's smoothing of the 1 m control points.
    assert c.min_radius == pytest.approx(radius, rel=0.2)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_procedural_training_circuits_are_at_the_real_scale(name):
    c = load_circuit(name)
    assert 400 < c.length < 800 and 2.4 <= c.road_width <= 3.3 and c.wall_height == 0.5
    assert 1.4 < c.min_radius < 3.0 and abs(c.start_lateral) < 0.01


def _tight_metres(c, sign: float = 0.0) -> float:
    """Metres of the lap tighter than 2.5 m radius (left only with sign +1, right only with -1)."""
    k = c.curvature_at(np.arange(0.0, c.length, 0.5))
    k = np.abs(k) if sign == 0 else sign * k
    return 0.5 * float(np.sum(k > 0.4))


@pytest.mark.parametrize("name", [n for n, spec in GENERATED.items() if spec["kind"] == "technical"])
def test_technical_circuits_are_mostly_tight_bends(name):
    # Montmelo's chicane (two opposite 2 m bends, about 6 m of radius <= 2.5 m) is rare on the
    # flowing circuits; a technical one has many times more of it than all of them together.
    c = load_circuit(name)
    flowing = sum(_tight_metres(load_circuit(n)) for n in TRAINING_CIRCUITS
                  if GENERATED.get(n, {}).get("kind") != "technical")
    tight = _tight_metres(c)
    assert tight > 50 and tight > 3 * flowing
    # Left and right alike, so both driving directions see the same mix.
    assert 0.3 < _tight_metres(c, -1.0) / tight < 0.7


def test_path_works_like_a_name(tmp_path):
    by_name = load_circuit("montmelo")
    by_path = load_circuit(by_name.source)
    assert by_path.length == by_name.length and by_path.name == "montmelo"
    copy = tmp_path / "my_track.yaml"
    copy.write_text(open(by_name.source).read().replace("name: montmelo", "name: mine"))
    assert load_circuit(str(copy)).name == "mine"


def test_reverse_drives_the_other_way():
    c = load_circuit("simple_circuit")
    r = load_circuit("simple_circuit", reverse=True)
    assert r.reversed and r.length == pytest.approx(c.length, abs=1e-6)
    assert r.start_pose[:2] == c.start_pose[:2]
    assert abs(math.remainder(r.start_pose[2] - c.start_pose[2] - math.pi, 2 * math.pi)) < 1e-9
    # Increasing s is the driving direction: a point 2 m further lies ahead of the start yaw.
    for circ in (c, r):
        x, y, yaw = circ.start_pose
        ahead = circ.point_at(circ.start_s + 2.0)[0] - (x, y)
        assert ahead @ (math.cos(yaw), math.sin(yaw)) == pytest.approx(2.0, abs=0.01)


def test_reverse_suffix_in_the_name(tmp_path):
    r = load_circuit("montreal_reverse")
    assert r.reversed and r.name == "montreal" and r.length == pytest.approx(load_circuit("montreal").length)
    assert not load_circuit("montreal_reverse", reverse=True).reversed
    path = load_circuit("montmelo").source
    assert load_circuit(path + "_reverse").reversed
    with pytest.raises(CircuitError, match="unknown circuit 'nowhere_reverse'"):
        load_circuit("nowhere_reverse")


# ----------------------------------------------------------------------------- geometry
def test_circle_length_curvature_and_projection():
    c = Circuit.from_dict(circle_dict(30.0))
    assert c.length == pytest.approx(2 * math.pi * 30, rel=1e-3)
    # Counter-clockwise: a left turn, curvature +1/R everywhere.
    k = c.curvature_at(np.linspace(0, c.length, 50))
    assert np.allclose(k, 1 / 30, rtol=0.01)
    assert c.spacing <= 0.25 and c.polyline.shape[1] == 2
    # Start (30, 0) heading +y is s = 0; a quarter lap further is (0, 30) heading -x.
    assert c.start_s == pytest.approx(0.0, abs=1e-6) or c.start_s == pytest.approx(c.length, abs=1e-6)
    assert c.point_at(c.length / 4)[0] == pytest.approx([0, 30], abs=0.02)
    assert c.heading_at(c.length / 4)[0] == pytest.approx(math.pi, abs=1e-3) or \
        c.heading_at(c.length / 4)[0] == pytest.approx(-math.pi, abs=1e-3)
    # Projection: inside the circle is left of travel (positive), outside is right (negative).
    pts = np.array([[28.0, 0.0], [0.0, 33.0], [-31.0, 0.0], [0.0, -30.0]])
    s, lat = c.project(pts)
    assert lat == pytest.approx([2.0, -3.0, -1.0, 0.0], abs=0.01)
    assert wrap_signed(s - np.array([0.0, 0.25, 0.5, 0.75]) * c.length, c.length) == pytest.approx(np.zeros(4), abs=0.05)
    # s wraps modulo the length.
    assert c.point_at(c.length + 5.0)[0] == pytest.approx(c.point_at(5.0)[0])
    assert wrap_signed(1.0 - (c.length - 1.0), c.length) == pytest.approx(2.0)


def test_project_is_vectorized_and_agrees_with_point_at():
    c = load_circuit("montreal")
    s = np.random.default_rng(0).uniform(0, c.length, 2000)
    normal = c.heading_at(s) + math.pi / 2
    off = np.random.default_rng(1).uniform(-1.2, 1.2, len(s))   # on the road (3.02 m wide)
    xy = c.point_at(s) + off[:, None] * np.stack([np.cos(normal), np.sin(normal)], axis=1)
    s2, lat = c.project(xy)
    assert lat == pytest.approx(off, abs=0.01)
    assert np.abs(wrap_signed(s2 - s, c.length)).max() < 0.05


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["control_points"].pop(), "open loop"),
    (lambda d: d.update(control_points=[[30 * math.sin(2 * t), 30 * math.sin(t)]
                                        for t in np.linspace(0, 2 * np.pi, 41)]), "self-intersection"),
    (lambda d: d.update(control_points=circle_points(3.5), start={"x": 3.5, "y": 0.0, "yaw": 1.57}),
     "radius too tight"),
    (lambda d: d.update(start={"x": 40.0, "y": 0.0, "yaw": 1.57}), "start pose off the road"),
    (lambda d: d.update(start={"x": 30.0, "y": 0.0, "yaw": -1.57}), "against the driving direction"),
    (lambda d: d.update(colour="red"), "unknown keys ['colour']"),
    (lambda d: d.pop("road_width"), "missing required keys ['road_width']"),
    (lambda d: d.update(line_width=9.0), "line_width < road_width"),
    (lambda d: d.update(style={"road": [1, 2]}), "style.road"),
    (lambda d: d.update(start={"x": 30.0, "y": 0.0}), "start must be a mapping with exactly x, y, yaw"),
])
def test_validation_errors_name_file_and_problem(tmp_path, mutate, message):
    data = circle_dict(30.0)
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(CircuitError) as e:
        load_circuit(path)
    assert path in str(e.value)
    assert message in str(e.value)


def test_road_overlapping_itself_is_a_self_intersection(tmp_path):
    # A peanut whose waist brings the two sides 7 m apart: closer than the 8 m road width,
    # although every radius is wide enough and the centerline never crosses itself.
    t = np.linspace(0, 2 * np.pi, 41)
    pts = [[60 * math.cos(a), math.sin(a) * (3.5 + 25 * math.cos(a) ** 2)] for a in t]
    d = circle_dict(30.0, control_points=pts, start={"x": 60.0, "y": 0.0, "yaw": math.pi / 2})
    path = write(tmp_path, d)
    with pytest.raises(CircuitError, match="self-intersection"):
        load_circuit(path)
    pts = [[60 * math.cos(a), math.sin(a) * (5.0 + 25 * math.cos(a) ** 2)] for a in t]  # 10 m apart: fine
    assert Circuit.from_dict(circle_dict(30.0, control_points=pts, start={"x": 60.0, "y": 0.0, "yaw": 1.57}))


def test_unknown_name_lists_known_circuits():
    with pytest.raises(CircuitError, match="unknown circuit 'nowhere'.*simple_circuit"):
        load_circuit("nowhere")
    with pytest.raises(CircuitError, match="not found"):
        load_circuit("/no/such/file.yaml")


def test_not_a_mapping_and_bad_yaml(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(CircuitError, match="must be a YAML mapping"):
        load_circuit(str(p))
    p = tmp_path / "broken.yaml"
    p.write_text("road_width: [\n")
    with pytest.raises(CircuitError, match="not valid YAML"):
        load_circuit(str(p))
