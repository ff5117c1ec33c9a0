"""Circuits: load and validate a circuit file, and the geometry every other part uses.

A circuit file (``config/circuits/<name>.yaml``) holds the closed centerline (the red line) as
control points in metres, in driving order, smoothed into a periodic cubic spline (chord-length
parametrisation), plus the road width, the red-line width, the walls, the start pose and the
colours. It is the one source of truth for the simulator, the Gazebo worlds, the expert, the
metrics and the dataset tools.

File format (every length in metres, angles in radians, world frame = Gazebo world = odom)::

    name: simple_circuit          # optional, defaults to the file name
    role: evaluation              # evaluation | training (optional, default training)
    description: "..."            # optional
    road_width: 3.10              # asphalt width, centred on the red line
    line_width: 0.10              # red centerline width
    walls: {height: 0.5}          # optional: walls at the asphalt edge all the way round
    camera_height: 0.10           # optional: the car's camera above this circuit's road
    start: {x: 53.462, y: -10.734, yaw: -1.57}   # on the road, yaw along the driving direction
    control_points:               # driving order; the last point repeats the first (closed loop)
      - [53.462, -10.734]
      - ...
    # or, instead of control_points, a measured centerline (CSV "x,y", '#' comments allowed,
    # relative to this file), of which every ``centerline_step``-th point is a control point:
    centerline: centerlines/simple_circuit.csv
    centerline_step: 4
    style: {road: [66, 61, 62], wall: [255, 255, 255], ...}   # optional colours, see DEFAULT_STYLE

Conventions: arc length ``s`` (m) increases in the driving direction and wraps modulo
``length``; ``lateral`` (m) is signed, positive left of the driving direction; curvature (1/m)
is signed, positive for a left turn; headings are yaw angles (rad) in the world frame.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Sequence, Union

import numpy as np
import yaml

from pilotnet_brains import PACKAGE_ROOT
from pilotnet_brains.util import resolve_yaml, yaml_names

#: The circuits used for evaluation (never for training), as in the DLS/BM validation set.
EVALUATION_CIRCUITS: tuple[str, ...] = ("simple_circuit", "montreal", "montmelo")
#: The circuits a dataset may be collected on (disjoint from EVALUATION_CIRCUITS): the two real
#: training circuits and the procedural ones at the same scale.
TRAINING_CIRCUITS: tuple[str, ...] = (
    "many_curves", "nurburgring", "generated_1", "generated_2", "generated_3", "generated_4", "generated_5")

#: Folder of the packaged circuit files (override with $PILOTNET_CIRCUITS_DIR).
CIRCUITS_DIR = os.environ.get("PILOTNET_CIRCUITS_DIR") or os.path.join(PACKAGE_ROOT, "config", "circuits")

#: Resampled centerline spacing upper bound (m).
POLYLINE_SPACING = 0.2
#: Minimum allowed radius of the centerline, as a multiple of the road width: at 0.5 the inner
#: road edge (and wall) would fold into a point. Montmelo's tightest bend is 1.2 x its half-width.
MIN_RADIUS_PER_ROAD_WIDTH = 0.5
#: Tolerance (m) for the closing control point to repeat the first one.
CLOSE_TOLERANCE = 1e-3

#: Colours (RGB 0-255, albedo before lighting) of the Gazebo F1 worlds; a circuit's ``style``
#: overrides keys. Asphalt and grass are the mean colours of Gazebo's Asphalt_New and
#: Grass_Light_Green textures; the red line is flat diffuse (1, 0, 0); walls white unless the
#: circuit says otherwise; the sky is Gazebo's default background (0.7 grey).
DEFAULT_STYLE: dict[str, list[int]] = {
    "road": [66, 61, 62],        # asphalt (mean of a fine gravel texture)
    "line": [255, 0, 0],         # the red centerline
    "wall": [255, 255, 255],     # wall faces
    "ground": [138, 158, 68],    # grass behind the walls
    "sky": [179, 179, 179],      # background above the horizon and beyond the far clip
}
#: Camera height (m) above the road when a circuit does not say: f1_renault's camera.
DEFAULT_CAMERA_HEIGHT = 0.10
#: Control points taken from a measured centerline: every n-th point (0.25 m apart -> 1 m).
DEFAULT_CENTERLINE_STEP = 4

_REQUIRED_KEYS = ("road_width", "line_width", "start")
_OPTIONAL_KEYS = ("name", "role", "description", "style", "walls", "camera_height", "control_points",
                  "centerline", "centerline_step")
_ROLES = ("evaluation", "training")


class CircuitError(ValueError):
    """A circuit file is missing, malformed or geometrically invalid; the message names the file."""


def circuit_names() -> list[str]:
    """Names of the packaged circuits (the ``*.yaml`` files in CIRCUITS_DIR), sorted."""
    return yaml_names(CIRCUITS_DIR)


def circuit_path(name_or_path: str) -> str:
    """Resolve a circuit name (``montreal``) or a path to a ``.yaml`` file to an absolute path."""
    return resolve_yaml(name_or_path, CIRCUITS_DIR, "circuit", CircuitError)


def wrap_angle(a):
    """Wrap angle(s) (rad) to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


#: A circuit name or path ending like this means "the same circuit driven the other way round",
#: so one launch argument (``circuit:=montreal_reverse``) tells every node the direction.
REVERSE_SUFFIX = "_reverse"


def load_circuit(name_or_path: str, reverse: bool = False) -> Circuit:
    """Load and validate a circuit by name or path. ``reverse=True`` (or the name/path + ``_reverse``,
    e.g. ``montreal_reverse``) drives it the other way (control points reversed, start yaw turned by
    pi). Cached per (file, mtime, reverse)."""
    name = str(name_or_path)
    if name.endswith(REVERSE_SUFFIX) and not _resolves(name) and _resolves(name[:-len(REVERSE_SUFFIX)]):
        name, reverse = name[:-len(REVERSE_SUFFIX)], not reverse
    path = circuit_path(name)
    return _load_cached(path, os.path.getmtime(path), bool(reverse))


def _resolves(name: str) -> bool:
    try:
        circuit_path(name)
        return True
    except CircuitError:
        return False


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, _mtime: float, reverse: bool) -> Circuit:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise CircuitError(f"{path}: not valid YAML: {e}") from None
    return Circuit.from_dict(data, source=path, reverse=reverse)


def _control_points(data: dict, source: str) -> list[list[float]]:
    """The control points of a circuit mapping: listed, or every n-th point of a centerline file."""
    if ("control_points" in data) == ("centerline" in data):
        raise CircuitError(f"{source}: give either control_points (a list of [x, y] m) or centerline "
                           f"(a CSV file of x,y points), not {'both' if 'centerline' in data else 'neither'}")
    if "centerline" in data:
        # next to the circuit file, else among the packaged centerlines (a copied circuit file)
        base = os.path.dirname(source) if source != "<dict>" else os.getcwd()
        path = os.path.join(base, str(data["centerline"]))
        if not os.path.isfile(path) and os.path.isfile(os.path.join(CIRCUITS_DIR, str(data["centerline"]))):
            path = os.path.join(CIRCUITS_DIR, str(data["centerline"]))
        step = data.get("centerline_step", DEFAULT_CENTERLINE_STEP)
        if not isinstance(step, int) or step < 1:
            raise CircuitError(f"{source}: centerline_step must be a whole number >= 1, got {step!r}")
        try:
            xy = np.loadtxt(path, delimiter=",", comments="#", skiprows=0, dtype=str)
        except OSError as e:
            raise CircuitError(f"{source}: centerline file {path}: {e.strerror or e}") from None
        try:
            xy = xy[1:].astype(np.float64) if xy.ndim == 2 and xy[0, 0].strip() == "x" else xy.astype(np.float64)
        except ValueError:
            raise CircuitError(f"{path}: a centerline file holds a header 'x,y' and rows of two numbers (m)") from None
        if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
            raise CircuitError(f"{path}: a centerline file holds rows of two finite numbers x,y (m)")
        pts = xy[::step]
        return np.vstack([pts, pts[:1]]).tolist()
    cps = data["control_points"]
    if not isinstance(cps, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in cps):
        raise CircuitError(f"{source}: control_points must be a list of [x, y] pairs (m)")
    return [[_number(p[0], f"control_points[{i}].x", source), _number(p[1], f"control_points[{i}].y", source)]
            for i, p in enumerate(cps)]


def _number(value, what: str, source: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CircuitError(f"{source}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise CircuitError(f"{source}: {what} must be finite, got {value!r}")
    return x


class Circuit:
    """A validated circuit: a closed centerline with arc-length parametrisation.

    Attributes: ``name``, ``source`` (file path or ``<dict>``), ``role``, ``description``,
    ``reversed``, ``road_width`` / ``line_width`` (m), ``wall_height`` (m, 0 = no walls; walls stand
    at the asphalt edge, ``wall_offset`` m either side of the line), ``camera_height`` (m, the car's
    camera above this road), ``start_pose`` (x, y, yaw) in the world
    frame, ``start_s`` (m, arc length of the start pose's projection), ``length`` (m, red-line lap
    length), ``polyline`` (M,2) centerline resampled every ``spacing`` <= 0.2 m starting at s = 0
    (read-only), ``control_points`` (K,2) as used (after ``reverse``), ``style`` (dict, see
    DEFAULT_STYLE), ``min_radius`` (m).
    """

    def __init__(self, name: str, control_points, road_width: float, line_width: float,
                 start_pose: Sequence[float], role: str = "training", description: str = "",
                 style: dict[str, object] | None = None, source: str = "<dict>",
                 reverse: bool = False, validate: bool = True, wall_height: float = 0.0,
                 camera_height: float = DEFAULT_CAMERA_HEIGHT):
        self.name = str(name)
        self.source = source
        self.role = role
        self.description = description
        self.reversed = bool(reverse)
        self.road_width = float(road_width)
        self.line_width = float(line_width)
        #: walls' height (m) at the asphalt edge, 0 = no walls (the car can leave the road)
        self.wall_height = float(wall_height)
        self.camera_height = float(camera_height)
        self.style = dict(DEFAULT_STYLE)
        self.style.update(style or {})
        pts = np.asarray(control_points, dtype=np.float64)
        x, y, yaw = (float(v) for v in start_pose)
        if reverse:
            pts = pts[::-1].copy()
            yaw = float(wrap_angle(yaw + math.pi))
        self.start_pose = (x, y, yaw)
        self._check_control_points(pts)
        self.control_points = pts
        self._build(pts)
        x, y, _ = self.start_pose
        s0, lat = self.project(np.array([[x, y]]))
        self.start_s = float(s0[0])
        self.start_lateral = float(lat[0])
        if validate:
            self._validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data, source: str = "<dict>", reverse: bool = False) -> Circuit:
        """Build from the parsed YAML mapping; every problem raises CircuitError naming ``source``."""
        if not isinstance(data, dict):
            raise CircuitError(f"{source}: a circuit file must be a YAML mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
        if unknown:
            raise CircuitError(f"{source}: unknown keys {unknown}; allowed keys: "
                               f"{sorted(_REQUIRED_KEYS + _OPTIONAL_KEYS)}")
        missing = [k for k in _REQUIRED_KEYS if k not in data]
        if missing:
            raise CircuitError(f"{source}: missing required keys {missing}")
        road_width = _number(data["road_width"], "road_width", source)
        line_width = _number(data["line_width"], "line_width", source)
        if road_width <= 0 or not 0 < line_width < road_width:
            raise CircuitError(f"{source}: need road_width > 0 and 0 < line_width < road_width "
                               f"(got road_width={road_width}, line_width={line_width})")
        start = data["start"]
        if not isinstance(start, dict) or sorted(start) != ["x", "y", "yaw"]:
            raise CircuitError(f"{source}: start must be a mapping with exactly x, y, yaw "
                               f"(m, m, rad), got {start!r}")
        start_pose = tuple(_number(start[k], f"start.{k}", source) for k in ("x", "y", "yaw"))
        pts = _control_points(data, source)
        walls = data.get("walls")
        wall_height = 0.0
        if walls is not None:
            if not isinstance(walls, dict) or set(walls) - {"height"}:
                raise CircuitError(f"{source}: walls must be a mapping like {{height: 0.5}} (m), got {walls!r}")
            wall_height = _number(walls.get("height", 0.5), "walls.height", source)
            if wall_height <= 0:
                raise CircuitError(f"{source}: walls.height must be > 0 m (leave walls out for none), "
                                   f"got {wall_height}")
        camera_height = _number(data.get("camera_height", DEFAULT_CAMERA_HEIGHT), "camera_height", source)
        if not 0.02 <= camera_height <= 3.0:
            raise CircuitError(f"{source}: camera_height {camera_height} m is not a car camera's height "
                               f"(0.02-3 m; f1_renault's is {DEFAULT_CAMERA_HEIGHT})")
        role = data.get("role", "training")
        if role not in _ROLES:
            raise CircuitError(f"{source}: role must be one of {list(_ROLES)}, got {role!r}")
        style = data.get("style") or {}
        if not isinstance(style, dict):
            raise CircuitError(f"{source}: style must be a mapping, got {style!r}")
        bad_style = sorted(set(style) - set(DEFAULT_STYLE))
        if bad_style:
            raise CircuitError(f"{source}: unknown style keys {bad_style}; allowed: {sorted(DEFAULT_STYLE)}")
        for k, v in style.items():
            if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(
                    isinstance(c, (int, float)) and 0 <= c <= 255 for c in v)):
                raise CircuitError(f"{source}: style.{k} must be an RGB list of three numbers 0-255, got {v!r}")
        default_name = os.path.splitext(os.path.basename(source))[0] if source != "<dict>" else "circuit"
        return cls(name=str(data.get("name", default_name)), control_points=pts, road_width=road_width,
                   line_width=line_width, start_pose=start_pose, role=role,
                   description=str(data.get("description", "")), style=style, source=source,
                   reverse=reverse, wall_height=wall_height, camera_height=camera_height)

    @property
    def wall_offset(self) -> float:
        """Distance (m) from the red line to the walls' inner faces (= the asphalt edge)."""
        return self.road_width / 2

    def _check_control_points(self, pts: np.ndarray) -> None:
        src = self.source
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 5:
            raise CircuitError(f"{src}: control_points needs at least 4 distinct [x, y] points plus the "
                               f"closing repeat of the first, got {len(pts)} points")
        gap = float(np.hypot(*(pts[-1] - pts[0])))
        if gap > CLOSE_TOLERANCE:
            raise CircuitError(
                f"{src}: open loop: the last control point {pts[-1].round(3).tolist()} is {gap:.3f} m from "
                f"the first {pts[0].round(3).tolist()}; a circuit is closed: repeat the first point at the end")
        steps = np.hypot(*np.diff(pts, axis=0).T)
        if np.any(steps < 1e-6):
            i = int(np.argmin(steps))
            raise CircuitError(f"{src}: control points {i} and {i + 1} coincide at {pts[i].round(3).tolist()}; "
                               f"remove the duplicate")

    def _build(self, pts: np.ndarray) -> None:
        from scipy.interpolate import CubicSpline

        pts = pts.copy()
        pts[-1] = pts[0]
        t = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
        spline = CubicSpline(t, pts, bc_type="periodic")
        n_fine = max(2000, int(t[-1] / 0.02))
        tf = np.linspace(0.0, t[-1], n_fine + 1)
        pf = spline(tf)
        sf = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pf, axis=0).T))])
        self.length = float(sf[-1])
        m = int(math.ceil(self.length / POLYLINE_SPACING))
        self.spacing = self.length / m
        s = np.arange(m) * self.spacing
        ts = np.interp(s, sf, tf)
        p = spline(ts)
        d1 = spline(ts, 1)
        d2 = spline(ts, 2)
        speed = np.hypot(d1[:, 0], d1[:, 1])
        self._s = s
        self.polyline = p
        self._heading = np.arctan2(d1[:, 1], d1[:, 0])
        self._curvature = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / speed ** 3
        seg = np.roll(p, -1, axis=0) - p
        self._seg = seg
        self._seg_len2 = np.einsum("ij,ij->i", seg, seg)
        for a in (self.polyline, self._heading, self._curvature, self._seg, self._seg_len2):
            a.setflags(write=False)
        self.min_radius = float(1.0 / max(np.max(np.abs(self._curvature)), 1e-12))
        self._tree = None

    def _kdtree(self):
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.polyline)
        return self._tree

    def _validate(self) -> None:
        src = self.source
        # 1. Self-intersection: the centerline crosses itself (exact segment test, run only when two
        #    stretches far apart along the lap come closer than the road width).
        step = max(1, int(round(1.0 / self.spacing)))
        idx = np.arange(0, len(self.polyline), step)
        from scipy.spatial import cKDTree

        pairs = cKDTree(self.polyline[idx]).query_pairs(r=self.road_width, output_type="ndarray")
        overlap = None
        if len(pairs):
            a, b = idx[pairs[:, 0]], idx[pairs[:, 1]]
            d = np.hypot(*(self.polyline[a] - self.polyline[b]).T)
            ds = np.abs(self._s[a] - self._s[b])
            ds = np.minimum(ds, self.length - ds)
            # On a curve of radius >= road width, arc/chord <= pi/2 for chords < road width.
            far = ds > 1.6 * d + 2.0 * self.spacing * step + 0.5
            if np.any(far):
                j = int(np.argmin(np.where(far, d, np.inf)))
                overlap = (self.polyline[a[j]].round(2).tolist(), float(d[j]), float(self._s[a[j]]),
                           float(self._s[b[j]]))
                if self._segments_cross():
                    raise CircuitError(f"{src}: self-intersection: the centerline crosses itself near {overlap[0]} "
                                       f"(s = {overlap[2]:.1f} m and s = {overlap[3]:.1f} m)")
        # 2. Radius too tight for the road width.
        k = np.abs(self._curvature)
        i = int(np.argmax(k))
        r_min = MIN_RADIUS_PER_ROAD_WIDTH * self.road_width
        if 1.0 / k[i] < r_min:
            raise CircuitError(
                f"{src}: radius too tight for the road width: the centerline turns with radius {1 / k[i]:.2f} m "
                f"at s = {self._s[i]:.1f} m {self.polyline[i].round(2).tolist()}, below {r_min:.2f} m "
                f"(= {MIN_RADIUS_PER_ROAD_WIDTH} x road_width {self.road_width} m); smooth the curve "
                f"(spread its control points) or narrow the road")
        # 3. The road overlapping itself: two stretches closer than the road width.
        if overlap is not None:
            raise CircuitError(
                f"{src}: self-intersection of the road: the centerline passes {overlap[1]:.2f} m from itself near "
                f"{overlap[0]} (s = {overlap[2]:.1f} m and {overlap[3]:.1f} m), less than the road width "
                f"{self.road_width} m; move those stretches apart")
        # 4. Start pose on the road, facing the driving direction.
        x, y, yaw = self.start_pose
        if abs(self.start_lateral) > self.road_width / 2:
            raise CircuitError(
                f"{src}: start pose off the road: ({x}, {y}) is {abs(self.start_lateral):.2f} m from the "
                f"centerline (nearest point {self.point_at(self.start_s)[0].round(3).tolist()}), more than half "
                f"the road width {self.road_width / 2} m")
        dyaw = float(wrap_angle(yaw - self.heading_at(self.start_s)[0]))
        if abs(dyaw) > math.pi / 2:
            raise CircuitError(
                f"{src}: start yaw {yaw:.3f} rad points against the driving direction (centerline heading "
                f"{self.heading_at(self.start_s)[0]:.3f} rad there); list the control points in driving order "
                f"or load with reverse=True")

    def _segments_cross(self) -> bool:
        """Exact test of proper crossings between non-adjacent segments of a 1 m polyline."""
        step = max(1, int(round(1.0 / self.spacing)))
        p = self.polyline[::step]
        q = np.roll(p, -1, axis=0)
        n = len(p)
        for i in range(n):
            j = np.arange(i + 2, n if i > 0 else n - 1)
            if len(j) == 0:
                continue
            a, b, c, d = p[i], q[i], p[j], q[j]

            def orient(u, v, w):
                return (v[..., 0] - u[..., 0]) * (w[..., 1] - u[..., 1]) - (v[..., 1] - u[..., 1]) * (w[..., 0] - u[..., 0])

            o1 = orient(a, b, c)
            o2 = orient(a, b, d)
            o3 = orient(c, d, a)
            o4 = orient(c, d, b)
            if np.any((o1 * o2 < 0) & (o3 * o4 < 0)):
                return True
        return False

    # ------------------------------------------------------------------ geometry
    def _interp(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.atleast_1d(np.asarray(s, dtype=np.float64)) % self.length
        f = s / self.spacing
        i = np.floor(f).astype(np.int64) % len(self._s)
        return i, (i + 1) % len(self._s), f - np.floor(f)

    def wrap_s(self, s):
        """Arc length(s) (m) wrapped to [0, length)."""
        return np.asarray(s, dtype=np.float64) % self.length

    def point_at(self, s) -> np.ndarray:
        """Centerline point(s) (N,2) (m, world frame) at arc length(s) s (m, wraps)."""
        i, j, t = self._interp(s)
        return self.polyline[i] + (self.polyline[j] - self.polyline[i]) * t[:, None]

    def heading_at(self, s) -> np.ndarray:
        """Centerline heading(s) (N,) (rad, world yaw, driving direction) at arc length(s) s (m)."""
        i, j, t = self._interp(s)
        h = self._heading
        return wrap_angle(h[i] + wrap_angle(h[j] - h[i]) * t)

    def curvature_at(self, s) -> np.ndarray:
        """Signed curvature(s) (N,) (1/m, left turn positive) at arc length(s) s (m)."""
        i, j, t = self._interp(s)
        k = self._curvature
        return k[i] + (k[j] - k[i]) * t

    def project(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Closest centerline point of each world point xy (N,2) (m).

        Returns (s (N,) arc length in [0, length) m, lateral (N,) signed distance in m, positive
        left of the driving direction). Exact on the resampled polyline (<= 0.2 m segments).
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        m = len(self.polyline)
        _, i = self._kdtree().query(xy)
        best_d2 = np.full(len(xy), np.inf)
        best_s = np.zeros(len(xy))
        best_lat = np.zeros(len(xy))
        for seg in ((i - 1) % m, i):
            a = self.polyline[seg]
            ab = self._seg[seg]
            ap = xy - a
            t = np.clip(np.einsum("ij,ij->i", ap, ab) / self._seg_len2[seg], 0.0, 1.0)
            diff = ap - ab * t[:, None]
            d2 = np.einsum("ij,ij->i", diff, diff)
            cross = ab[:, 0] * ap[:, 1] - ab[:, 1] * ap[:, 0]
            better = d2 < best_d2
            best_d2 = np.where(better, d2, best_d2)
            best_s = np.where(better, self._s[seg] + t * self.spacing, best_s)
            best_lat = np.where(better, np.copysign(np.sqrt(d2), cross), best_lat)
        best_s %= self.length
        best_s[best_s > self.length - 1e-9] = 0.0
        return best_s, best_lat

    def bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the road (m), grown by ``margin`` m."""
        lo = self.polyline.min(axis=0) - self.road_width / 2 - margin
        hi = self.polyline.max(axis=0) + self.road_width / 2 + margin
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def __repr__(self) -> str:
        return (f"Circuit({self.name!r}{', reversed' if self.reversed else ''}, length={self.length:.1f} m, "
                f"road_width={self.road_width} m, min_radius={self.min_radius:.1f} m)")


CircuitLike = Union[str, Circuit]


def as_circuit(circuit: CircuitLike, reverse: bool = False) -> Circuit:
    """A Circuit from a name, a path or a Circuit (returned as is)."""
    return circuit if isinstance(circuit, Circuit) else load_circuit(circuit, reverse=reverse)
