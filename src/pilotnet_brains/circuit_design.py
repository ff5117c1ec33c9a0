"""Procedural training circuits at the scale of the Gazebo F1 worlds (``scripts/make_circuits``).

The real circuits (SimpleCircuit, Montreal, Montmelo, Nurburgring, ManyCurves) are measured data
(``config/circuits/centerlines/``); these add seeded random layouts for training: star-shaped
loops of a few hundred metres with 2.5-3.3 m of asphalt between 0.5 m walls, 0.10 m red line and
bends down to about 1.5-2.5 m radius, as tight as the real ones. Every file is validated before it
is written.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pilotnet_brains.circuits import Circuit, CircuitError


def _fit(name, loop, start_pose, length, road_width, line_width, role, description,
         style: dict[str, list[int]]) -> dict[str, object]:
    """Scale, rotate and translate a closed loop (first point = start) onto the start pose."""
    def build(p):
        return Circuit(name, p, road_width, line_width, (p[0, 0], p[0, 1], 0.0), source=f"<{name}>",
                       validate=False)

    c = build(loop)
    loop = (loop - loop[0]) * (length / c.length)
    c = build(loop)
    rot = float(start_pose[2]) - float(c.heading_at(0.0)[0])
    r = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    loop = loop @ r.T + np.asarray(start_pose[:2], dtype=np.float64)
    loop = np.round(loop, 3)
    loop[0] = np.round(start_pose[:2], 3)
    loop[-1] = loop[0]
    data = {
        "name": name,
        "role": role,
        "description": description,
        "road_width": float(road_width),
        "line_width": float(line_width),
        "walls": {"height": WALL_HEIGHT},
        "start": {"x": float(start_pose[0]), "y": float(start_pose[1]), "yaw": float(start_pose[2])},
        "style": style,
        "control_points": [[float(a), float(b)] for a, b in loop],
    }
    Circuit.from_dict(data, source=f"<{name}>")  # validates
    return data


def generated_circuit_dict(name: str, seed: int, length: float, road_width: float, line_width: float,
                           n_points: int = 40, roughness: float = 0.12, style: dict | None = None,
                           tries: int = 500) -> dict[str, object]:
    """A random star-shaped circuit (seeded), rejected and redrawn until it validates."""
    rng = np.random.default_rng(seed)
    last: Exception | None = None
    for _ in range(tries):
        ang = (np.arange(n_points) + rng.uniform(-0.3, 0.3, n_points)) * (2 * np.pi / n_points)
        rad = 1.0 + roughness * rng.uniform(-1, 1, n_points)
        loop = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1) * (length / (2 * np.pi))
        if rng.uniform() < 0.5:
            loop = loop[::-1]
        loop = np.concatenate([loop, loop[:1]])
        x, y, yaw = float(rng.uniform(-50, 50)), float(rng.uniform(-50, 50)), float(rng.uniform(-np.pi, np.pi))
        try:
            return _fit(name, loop, (round(x, 3), round(y, 3), round(yaw, 3)), length, road_width, line_width,
                        "training", f"procedural training circuit (seed {seed}) at the Gazebo worlds' scale",
                        dict(style or {}))
        except CircuitError as e:
            last = e
    raise RuntimeError(f"no valid circuit for seed {seed} in {tries} tries (last: {last})")


#: Road and red-line widths (m) of every packaged circuit. 8 m of asphalt leaves the car (about
#: 1.8 m wide) 3 m either side of the line; 0.3 m is a clearly visible line at 15 m distance.
ROAD_WIDTH = 8.0
LINE_WIDTH = 0.3

#: Turtle layouts of the packaged circuits (see the module docstring). Evaluation circuits match
#: the Gazebo worlds' start poses and red-line lap lengths; shapes have the real tracks' character.
LAYOUTS: dict[str, dict[str, object]] = {
    "simple_circuit": dict(
        role="evaluation", length=463.0, start_pose=(53.462, -10.734, -1.57),
        description="SimpleCircuit: a simple closed loop with a few bends (Gazebo F1 SimpleCircuit start pose "
                    "and lap length)",
        segments=[("S", 70), ("R", 90, 22), ("S", 40), ("R", 50, 25), ("L", 50, 25), ("S", 20), ("R", 90, 18),
                  ("S", 60), ("R", 40, 22), ("L", 40, 22), ("S", 15), ("R", 90, 22), ("S", 40), ("R", 40, 30),
                  ("L", 40, 30), ("S", 30), ("R", 90, 25), ("S", 20)],
        close_with=(0, 2), start_at=(0, 0.5)),
    "montreal": dict(
        role="evaluation", length=1513.0, start_pose=(-200.88, -90.72, -2.83),
        description="Montreal-like: a long thin island track, long straights, two hairpins, chicanes "
                    "(Gazebo F1 Montreal start pose and lap length)",
        segments=[("S", 150), ("L", 30, 15), ("R", 210, 12), ("S", 60), ("L", 40, 18), ("S", 10), ("R", 40, 18),
                  ("S", 120), ("L", 35, 20), ("R", 35, 20), ("S", 60), ("R", 30, 25), ("L", 30, 25), ("S", 220),
                  ("R", 180, 11), ("S", 100), ("L", 10, 60), ("S", 150), ("R", 40, 14), ("L", 30, 14), ("S", 40)],
        close_with=(0, 5), start_at=(0, 0.4)),
    "montmelo": dict(
        role="evaluation", length=764.0, start_pose=(27.18, -31.55, -3.12),
        description="Montmelo-like: the long main straight, fast and slow corners, a hairpin, a chicane and a "
                    "fast last corner (Gazebo F1 Montmelo start pose and lap length)",
        segments=[("S", 170), ("R", 90, 14), ("L", 40, 16), ("R", 130, 24), ("S", 30), ("R", 70, 14), ("S", 20),
                  ("L", 110, 14), ("S", 40), ("L", 50, 18), ("R", 60, 16), ("R", 30, 30), ("S", 10),
                  ("L", 180, 12), ("S", 30), ("R", 100, 18), ("R", 80, 15), ("S", 60), ("L", 40, 12),
                  ("R", 40, 12), ("R", 90, 20), ("S", 30), ("R", 90, 28)],
        close_with=(17, 21), start_at=(0, 0.6)),
}

LAYOUTS.update({
    "many_curves": dict(
        role="training", length=900.0, start_pose=(0.01, -0.02, -1.73),
        description="ManyCurves-like training circuit: four sides full of S-bends of different radii",
        segments=[("S", 40), ("L", 40, 15), ("R", 80, 15), ("L", 40, 15), ("S", 30), ("R", 90, 20),
                  ("S", 20), ("R", 50, 12), ("L", 100, 18), ("R", 50, 25), ("S", 35), ("R", 90, 16),
                  ("S", 65), ("L", 30, 30), ("R", 60, 14), ("L", 30, 12), ("S", 20), ("R", 90, 24),
                  ("L", 45, 16), ("R", 90, 20), ("L", 45, 13), ("S", 70), ("R", 90, 18)],
        close_with=(0, 6), start_at=(0, 0.5)),
    "nurburgring": dict(
        role="training", length=585.9, start_pose=(-74.29, 37.74, -0.51),
        description="Nurburgring-like training circuit: first-corner hairpin, an S, the Dunlop hairpin, "
                    "a fast kink and the last chicane (Gazebo F1 Nurburgring start pose and lap length)",
        segments=[("S", 120), ("R", 140, 16), ("L", 50, 15), ("S", 30), ("L", 60, 16), ("R", 60, 16),
                  ("S", 60), ("R", 90, 20), ("S", 160), ("R", 150, 16), ("S", 30), ("L", 50, 15),
                  ("R", 50, 15), ("S", 40), ("L", 40, 20), ("S", 30), ("R", 30, 14), ("L", 30, 14),
                  ("S", 40), ("R", 70, 20)],
        close_with=(0, 6), start_at=(0, 0.5)),
})

#: Generated training circuits: name -> (seed, lap length m).
GENERATED: dict[str, tuple[int, float]] = {
    "generated_1": (1, 600.0),
    "generated_2": (2, 800.0),
    "generated_3": (3, 1000.0),
}


#: Walls' height (m), as in every Gazebo F1 world.
WALL_HEIGHT = 0.5
#: Procedural training circuits: name -> (seed, lap length m, road width m, red line width m,
#: number of star points, wall colour). Road widths span the real circuits' 2.4-3.3 m.
GENERATED: dict[str, tuple[int, float, float, float, int, list[int]]] = {
    "generated_1": (1, 450.0, 2.5, 0.10, 32, [220, 220, 220]),
    "generated_2": (2, 600.0, 2.9, 0.12, 40, [255, 255, 255]),
    "generated_3": (3, 750.0, 3.3, 0.10, 40, [160, 160, 160]),
}


def circuit_yaml(data: dict[str, object]) -> str:
    """The text of a circuit file (one control point per line, with a header comment)."""
    lines = [
        f"# Circuit {data['name']} - generated by scripts/make_circuits (pilotnet_brains.circuit_design);",
        "# edit the generator there, or edit this file by hand: it is validated on load.",
        "# Metres and radians, world frame. Control points in driving order; the last repeats the first.",
        f"name: {data['name']}",
        f"role: {data['role']}",
        f"description: {yaml_str(data['description'])}",
        f"road_width: {data['road_width']}   # m, asphalt between the walls, centred on the red line",
        f"line_width: {data['line_width']}   # m, red centerline",
        f"walls: {{height: {data['walls']['height']}}}   # m, at the asphalt edge",
        "start: {{x: {!r}, y: {!r}, yaw: {!r}}}   # on the red line, yaw along the driving direction".format(
            data["start"]["x"], data["start"]["y"], data["start"]["yaw"]),
        f"style: {{wall: {data['style']['wall']}}}",
        "control_points:",
    ]
    lines += [f"  - [{x!r}, {y!r}]" for x, y in data["control_points"]]
    return "\n".join(lines) + "\n"


def yaml_str(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)


def build_all(names: Sequence[str] | None = None) -> dict[str, dict[str, object]]:
    """The circuit-file mappings of the procedural circuits (all, or ``names``)."""
    return {name: generated_circuit_dict(name, seed, length, road_width, line_width, n_points=n,
                                         style={"wall": wall})
            for name, (seed, length, road_width, line_width, n, wall) in GENERATED.items()
            if not names or name in names}


def main(argv: Sequence[str] | None = None) -> None:
    """Command line of scripts/make_circuits."""
    import argparse
    import os

    from pilotnet_brains.circuits import CIRCUITS_DIR
    from pilotnet_brains.util import atomic_write_text

    ap = argparse.ArgumentParser(
        prog="make_circuits",
        description="(Re)write the procedural training circuits config/circuits/generated_<n>.yaml (seeded "
                    "random layouts at the Gazebo F1 worlds' scale: 2.5-3.3 m roads between 0.5 m walls, bends "
                    "down to about 2 m radius). The real circuits are measured data and are not written here. "
                    "Every file is validated before it is written.")
    ap.add_argument("names", nargs="*", help="circuits to write (default: all)")
    ap.add_argument("--out", default=CIRCUITS_DIR, help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    known = set(GENERATED)
    bad = [n for n in args.names if n not in known]
    if bad:
        ap.error(f"unknown circuits {bad}; known: {sorted(known)}")
    os.makedirs(args.out, exist_ok=True)
    for name, data in build_all(args.names).items():
        path = os.path.join(args.out, name + ".yaml")
        atomic_write_text(path, circuit_yaml(data))
        c = Circuit.from_dict(data, source=path)
        print(f"{path}: {c.length:.1f} m, min radius {c.min_radius:.1f} m, {len(data['control_points'])} points")
