"""The walls as solid bodies: the car's footprint cannot cross them.

Every Gazebo F1 world has 0.5 m walls at the asphalt edge, ``wall_offset`` m either side of the
red line. The car (f1_renault) is a 1.0 x 0.36 m box; its origin (the odometry pose) sits 0.37 m
ahead of the rear axle, and with the 0.654 m wheelbase centred in the body the box spans
``FOOTPRINT_BACK`` m behind to ``FOOTPRINT_FRONT`` m ahead of the origin.

Contact (what Gazebo's planar-move car does against a static wall): the pose after a physics
step is pushed back along the wall's normal by the deepest penetration of the footprint, so the
motion into the wall is cancelled and the motion along it kept: the car scrapes along a wall it
meets at an angle and stops against one it meets head-on (it keeps its commanded yaw rate, so it
may turn itself free). A point's distance to the wall comes from the renderer's distance field
(distance from the red line, bilinear), the same geometry the camera shows.
"""
from __future__ import annotations

import math

import numpy as np

from pilotnet_brains.circuits import Circuit
from pilotnet_brains.sim.render import FIELD_UNIT, distance_field

#: Footprint of the car (m, car frame: x forward from the origin, y left).
FOOTPRINT_FRONT = 0.457
FOOTPRINT_BACK = 0.543
FOOTPRINT_HALF_WIDTH = 0.18
#: Points of the footprint checked against the walls: corners, side and end midpoints.
FOOTPRINT_POINTS: tuple[tuple[float, float], ...] = tuple(
    (x, y) for x in (FOOTPRINT_FRONT, (FOOTPRINT_FRONT - FOOTPRINT_BACK) / 2, -FOOTPRINT_BACK)
    for y in (FOOTPRINT_HALF_WIDTH, 0.0, -FOOTPRINT_HALF_WIDTH) if (x, y) != ((FOOTPRINT_FRONT - FOOTPRINT_BACK) / 2, 0.0))
#: Farthest footprint point from the origin (m).
FOOTPRINT_RADIUS = max(math.hypot(x, y) for x, y in FOOTPRINT_POINTS)
#: A footprint point this close (m) to a wall counts as touching it.
CONTACT_TOLERANCE = 0.005


class Walls:
    """Wall contact for a circuit. ``field``: the renderer's distance field as
    :func:`pilotnet_brains.sim.render.distance_field` returns it (computed when not given)."""

    def __init__(self, circuit: Circuit, field=None):
        self.present = circuit.wall_height > 0
        self.offset = circuit.wall_offset
        self._field, (self._x0, self._y0), self._texel = field if field is not None else distance_field(circuit)
        self._h, self._w = self._field.shape

    def distance(self, x: float, y: float) -> float:
        """Distance (m) of the world point (x, y) from the red line (bilinear in the field)."""
        fx = (x - self._x0) / self._texel
        fy = (y - self._y0) / self._texel
        c, r = int(math.floor(fx)), int(math.floor(fy))
        if not (0 <= c < self._w - 1 and 0 <= r < self._h - 1):
            return math.inf
        tx, ty = fx - c, fy - r
        f = self._field
        a = float(f[r, c]) + (float(f[r, c + 1]) - float(f[r, c])) * tx
        b = float(f[r + 1, c]) + (float(f[r + 1, c + 1]) - float(f[r + 1, c])) * tx
        return abs(a + (b - a) * ty) * FIELD_UNIT

    def clear_for(self, pose, travel: float) -> bool:
        """True when no footprint point can reach a wall while the origin moves ``travel`` m."""
        return self.distance(pose[0], pose[1]) + FOOTPRINT_RADIUS + travel + CONTACT_TOLERANCE < self.offset

    def penetration(self, pose) -> tuple[float, float, float]:
        """(depth m, x, y) of the footprint point deepest beyond the walls' face (depth <= 0: that
        far inside the road)."""
        x, y, yaw = (float(v) for v in pose)
        c, s = math.cos(yaw), math.sin(yaw)
        best = (-math.inf, x, y)
        for px, py in FOOTPRINT_POINTS:
            wx, wy = x + px * c - py * s, y + px * s + py * c
            depth = self.distance(wx, wy) - self.offset
            if depth > best[0]:
                best = (depth, wx, wy)
        return best

    def touching(self, pose) -> bool:
        """True when the car at ``pose`` touches a wall."""
        return self.present and self.penetration(pose)[0] >= -CONTACT_TOLERANCE

    def resolve(self, pose) -> tuple[tuple[float, float, float], bool]:
        """The pose pushed out of the walls (see the module docstring), and whether it touches."""
        x, y, yaw = pose
        for _ in range(4):
            depth, px, py = self.penetration((x, y, yaw))
            if depth < 0:
                break
            e = self._texel * 0.5
            gx = self.distance(px + e, py) - self.distance(px - e, py)
            gy = self.distance(px, py + e) - self.distance(px, py - e)
            n = math.hypot(gx, gy)
            if not math.isfinite(n) or n == 0:
                break
            push = depth + 1e-4
            x, y = x - gx / n * push, y - gy / n * push
        return (x, y, yaw), self.penetration((x, y, yaw))[0] >= -CONTACT_TOLERANCE


def contacts(walls: Walls, poses: np.ndarray) -> np.ndarray:
    """Per pose (N, 3), whether the car touches a wall there (bool array)."""
    return np.array([walls.touching(p) for p in np.asarray(poses, np.float64).reshape(-1, 3)], bool)
