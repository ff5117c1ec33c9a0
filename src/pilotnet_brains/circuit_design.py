"""Procedural training circuits at the scale of the Gazebo F1 worlds (``scripts/make_circuits``).

The real circuits (SimpleCircuit, Montreal, Montmelo, Nurburgring, ManyCurves) are measured data
(``config/circuits/centerlines/``); these add seeded random layouts for training: star-shaped
loops of a few hundred metres with 2.5-3.3 m of asphalt between 0.5 m walls, 0.10 m red line and
bends down to about 1.5-2.5 m radius, as tight as the real ones; and technical loops made of
S-chicanes and omegas of 1.8-2.6 m radius. Every file is validated before it is written.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pilotnet_brains.circuits import Circuit, CircuitError


def _fit(name, loop, start_pose, length, road_width, line_width, role, description,
         style: dict[str, list[int]]) -> dict[str, object]:
    """Scale (to ``length`` m; None keeps the loop's size), rotate and translate a closed loop
    (first point = start) onto the start pose."""
    def build(p):
        return Circuit(name, p, road_width, line_width, (p[0, 0], p[0, 1], 0.0), source=f"<{name}>",
                       validate=False)

    c = build(loop)
    loop = (loop - loop[0]) * (length / c.length if length else 1.0)
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


def _turtle(elements, step: float = 0.5) -> np.ndarray:
    """Points every ``step`` m along straights ("S", length m) and arcs (sign +1 left / -1 right,
    radius m, angle rad), from (0, 0) heading +x; the last point is where the path ends."""
    x = y = h = 0.0
    pts = [(x, y)]
    for e in elements:
        if e[0] == "S":
            n = max(1, int(round(e[1] / step)))
            for _ in range(n):
                x, y = x + e[1] / n * math.cos(h), y + e[1] / n * math.sin(h)
                pts.append((x, y))
        else:
            sign, radius, angle = e
            n = max(2, int(round(radius * angle / step)))
            for _ in range(n):
                h0, h = h, h + sign * angle / n
                # exact chord of the arc step
                x += 2 * radius * math.sin(angle / n / 2) * math.cos((h0 + h) / 2)
                y += 2 * radius * math.sin(angle / n / 2) * math.sin((h0 + h) / 2)
                pts.append((x, y))
    return np.array(pts)


def technical_circuit_dict(name: str, seed: int, road_width: float, line_width: float,
                           style: dict | None = None, tries: int = 500) -> dict[str, object]:
    """A random technical circuit (seeded): four sides joined by 90-degree corners of 2-6 m
    radius, each side a string of straights, S-chicanes (two opposite arcs of 50-90 degrees) and
    omegas (a 100-160 degree bend between two half-as-long opposite ones), every arc of 1.8-2.6 m
    radius, as tight as Montmelo's chicane and Nurburgring's hairpins. Straights on the four sides
    close the loop. Rejected and redrawn until it validates."""
    rng = np.random.default_rng(seed)
    last: Exception | None = None

    def tight() -> float:
        return float(rng.uniform(1.8, 2.6))

    for _ in range(tries):
        sides = []
        for _side in range(4):
            side = []
            for _ in range(int(rng.integers(3, 6))):
                side.append(("S", float(rng.uniform(4.0, 20.0))))
                sign = float(rng.choice([-1.0, 1.0]))
                if rng.uniform() < 0.5:
                    theta = math.radians(rng.uniform(50, 90))
                    side += [(sign, tight(), theta), ("S", float(rng.uniform(0.5, 3.0))), (-sign, tight(), theta)]
                else:
                    theta = math.radians(rng.uniform(50, 80))
                    r = tight()
                    side += [(sign, r, theta), (-sign, tight(), 2 * theta), (sign, r, theta)]
            side.append(("S", float(rng.uniform(4.0, 20.0))))
            sides.append(side)
        corners = [(1.0, float(rng.uniform(2.0, 6.0)), math.pi / 2) for _ in range(4)]
        # Closing straights: side k runs along heading k * 90 degrees.
        open_end = _turtle([e for side, corner in zip(sides, corners) for e in side + [corner]])[-1]
        ex, ey = float(open_end[0]), float(open_end[1])
        margin = float(rng.uniform(5.0, 15.0))
        extra = [margin + max(0.0, -ex), margin + max(0.0, -ey), margin + max(0.0, ex), margin + max(0.0, ey)]
        loop = _turtle([e for side, corner, x in zip(sides, corners, extra) for e in [("S", x)] + side + [corner]])
        loop[-1] = loop[0]
        if rng.uniform() < 0.5:
            loop = loop[::-1].copy()
        x, y, yaw = float(rng.uniform(-50, 50)), float(rng.uniform(-50, 50)), float(rng.uniform(-np.pi, np.pi))
        try:
            return _fit(name, loop, (round(x, 3), round(y, 3), round(yaw, 3)), None, road_width, line_width,
                        "training", f"procedural technical training circuit (seed {seed}): S-chicanes and "
                        "omegas of 1.8-2.6 m radius", dict(style or {}))
        except CircuitError as e:
            last = e
    raise RuntimeError(f"no valid technical circuit for seed {seed} in {tries} tries (last: {last})")


#: Walls' height (m), as in every Gazebo F1 world.
WALL_HEIGHT = 0.5

#: Procedural training circuits: name -> the generator and its keywords. Road widths span the real
#: circuits' 2.4-3.3 m; ``star`` layouts are flowing, ``technical`` ones are all tight bends.
GENERATORS = {"star": generated_circuit_dict, "technical": technical_circuit_dict}
GENERATED: dict[str, dict[str, object]] = {
    "generated_1": dict(kind="star", seed=1, length=450.0, road_width=2.5, line_width=0.10, n_points=32,
                        style={"wall": [220, 220, 220]}),
    "generated_2": dict(kind="star", seed=2, length=600.0, road_width=2.9, line_width=0.12, n_points=40,
                        style={"wall": [255, 255, 255]}),
    "generated_3": dict(kind="star", seed=3, length=750.0, road_width=3.3, line_width=0.10, n_points=40,
                        style={"wall": [160, 160, 160]}),
    "generated_4": dict(kind="technical", seed=4, road_width=2.7, line_width=0.11, style={"wall": [240, 240, 240]}),
    "generated_5": dict(kind="technical", seed=5, road_width=3.1, line_width=0.12, style={"wall": [180, 180, 180]}),
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
    out = {}
    for name, spec in GENERATED.items():
        if not names or name in names:
            kw = {k: v for k, v in spec.items() if k != "kind"}
            out[name] = GENERATORS[str(spec["kind"])](name, **kw)
    return out
