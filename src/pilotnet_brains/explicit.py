"""The explicit brain: a classical red-line follower that needs no model (the classical reference
and the demo/dataset fallback; it sees only the camera image, like PilotNet).

Perception: a few image rows of the lower half (chosen at fixed ground distances ahead) are
thresholded in HSV for red; the line is tracked from the nearest row outwards (each row takes the
red run closest to the line's extrapolation, so other parts of the track seen across a hairpin
are ignored). Each row's line centre is back-projected to the ground plane (pinhole camera with no
tilt over flat ground) as a point (x forward, y left) in metres in the car frame.

Control: a quadratic y(x) = a0 + a1 x + a2 x^2 fitted to the near points gives the car's lateral
offset from the line (a0, m), its heading error (atan a1, rad) and the line's curvature (2 a2,
1/m). The commanded curvature is the line's curvature (feed-forward) plus a PID on the lateral
offset (the D term is the heading error: d(offset)/d(distance); the I term is off by default, the
feed-forward leaves no steady-state offset); w = v * curvature. The speed is
scheduled by the largest curvature of the line ahead (v = sqrt(a_lat / |kappa|)), within the
label range v in [6.5, 24] m/s, w in [-7.1, 7.1] rad/s (DLS labels, preprocess.V_RANGE/W_RANGE).

The object plugs into :class:`pilotnet_brains.brain.Pipeline` like a PilotNet policy:
``preprocess(rgb) -> LineObservation``, ``predict(obs) -> array([v, w])``, ``postprocess``.
"""
from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from pilotnet_brains.preprocess import V_RANGE, W_RANGE


class CameraGeometry:
    """Ground-plane geometry of the F1 camera (pinhole, no tilt, flat ground).

    ``config`` is the simulator's :class:`pilotnet_brains.sim.render.CameraConfig` (the one place
    the camera's size, FOV and mounting are written down); pixel centres at integer coordinates
    with the principal point at ((W-1)/2, (H-1)/2), as in ROS.
    """

    def __init__(self, config=None):
        if config is None:
            from pilotnet_brains.sim.render import CameraConfig

            config = CameraConfig()
        self.config = config
        self.width, self.height = int(config.width), int(config.height)
        self.focal = float(config.fx)
        self.cx, self.cy = float(config.cx), float(config.cy)
        self.mount_height = float(config.mount_height)
        self.mount_forward = float(config.mount_forward)
        self.mount_left = float(config.mount_left)

    def row_at(self, x: float) -> float:
        """Image row (px, fractional) of the ground at forward distance x (m) from the camera."""
        return self.cy + self.focal * self.mount_height / x

    def ground(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (column u, row v) below the horizon -> ground (x forward, y left) in m, in the car
        frame (origin at the car's reference point, the odometry pose)."""
        x = self.focal * self.mount_height / (np.asarray(v, np.float64) - self.cy)
        y = -(np.asarray(u, np.float64) - self.cx) * x / self.focal
        return x + self.mount_forward, y + self.mount_left

    def describe(self) -> dict:
        return {"width": self.width, "height": self.height, "focal": self.focal,
                "mount_height": self.mount_height, "mount_forward": self.mount_forward,
                "mount_left": self.mount_left}


@dataclass
class ExplicitParams:
    """Tuning of the explicit brain. Distances in m, speeds m/s, accelerations m/s^2."""

    #: ground distances (from the camera) of the scanned rows
    #: (0.10 m above the road, a ground point Z m ahead is at row 240 + 32/Z: rows 346-247)
    distances: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0, 3.5,
                                    4.0, 5.0)
    #: HSV red: hue within this many units (OpenCV 0-180) of 0, saturation and value at least
    hue_tol: int = 12
    sat_min: int = 90
    val_min: int = 60
    #: a row's line must be within this lateral distance (m) of the extrapolation from nearer rows
    track_gate: float = 0.6
    #: points up to this distance (m) enter the control fit
    fit_range: float = 2.5
    #: PID on the lateral offset: curvature (1/m) per m of offset, per m*s, per (m/m) heading
    kp: float = 0.5
    ki: float = 0.0
    kd: float = 0.8
    #: speed schedule: lateral acceleration budget and limits
    lateral_accel: float = 4.0
    v_min: float = V_RANGE[0]
    v_max: float = 16.0
    w_max: float = W_RANGE[1]
    #: distance (m) over which the curvature ahead is looked at for the speed schedule
    preview: float = 3.0
    #: frame period (s) for the integral term (the camera's 20 Hz)
    dt: float = 0.05


@dataclass
class LineObservation:
    """The line found in one frame: ground points (x forward, y left), m, car frame, near first."""

    x: np.ndarray
    y: np.ndarray
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0))   # image columns (px) of the points
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def found(self) -> bool:
        return len(self.x) > 0

    def lateral_offset(self) -> float | None:
        """Signed lateral position of the line at the car (m, + = line to the left), from the
        nearest points; None when no line was seen."""
        if len(self.x) == 0:
            return None
        if len(self.x) == 1:
            return float(self.y[0])
        n = min(len(self.x), 4)
        a1, a0 = np.polyfit(self.x[:n], self.y[:n], 1)
        return float(a0)


def _runs(mask_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) columns of the True runs of a boolean row."""
    d = np.diff(np.concatenate(([0], mask_row.view(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


class LineFinder:
    """Finds the red line in an RGB frame at the rows of ``params.distances``."""

    def __init__(self, camera: CameraGeometry | None = None, params: ExplicitParams | None = None):
        self.camera = camera = camera or CameraGeometry()
        self.params = params = params or ExplicitParams()
        rows = [int(round(camera.row_at(d))) for d in params.distances]
        keep = [(r, d) for r, d in zip(rows, params.distances) if camera.cy < r < camera.height]
        if not keep:
            raise ValueError(f"no scan row falls in the lower half of a {camera.width}x{camera.height} image "
                             f"for camera height {camera.mount_height} m")
        rows_u = sorted({r for r, _ in keep}, reverse=True)   # near (bottom) first
        self.rows = np.array(rows_u, np.intp)
        gx, _ = camera.ground(np.full(len(self.rows), camera.cx), self.rows)
        self.row_x = gx
        self.m_per_px = (gx - camera.mount_forward) / camera.focal   # lateral metres per pixel at each row
        self.predicted_y: float | None = None     # lateral offset predicted for the nearest row

    def find(self, rgb: np.ndarray) -> LineObservation:
        cam, p = self.camera, self.params
        if rgb.shape[0] != cam.height or rgb.shape[1] != cam.width:
            raise ValueError(f"the explicit brain expects {cam.width}x{cam.height} frames, "
                             f"got {rgb.shape[1]}x{rgb.shape[0]}")
        hsv = cv2.cvtColor(np.ascontiguousarray(rgb[self.rows]), cv2.COLOR_RGB2HSV)   # (rows, W, 3)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        mask = ((h <= p.hue_tol) | (h >= 180 - p.hue_tol)) & (s >= p.sat_min) & (v >= p.val_min)
        cx = cam.cx
        xs: list[float] = []
        ys: list[float] = []
        us: list[float] = []
        vs: list[int] = []
        for i, row in enumerate(self.rows):
            starts, ends = _runs(mask[i])
            inside = (starts > 0) & (ends < cam.width)   # a run cut by the image border has no true centre
            if not inside.all():
                if not inside.any():
                    continue       # the line leaves the image sideways here: look further out
                starts, ends = starts[inside], ends[inside]
            if len(starts) == 0:
                if xs:
                    break          # the line ends in view (or is hidden): stop scanning outwards
                continue
            centres = (starts + ends - 1) / 2.0
            ylat = -(centres - cx) * self.m_per_px[i]
            x = self.row_x[i]
            if xs:
                if len(xs) >= 2:   # extrapolate linearly from the two last points
                    slope = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1e-6)
                    pred = ys[-1] + slope * (x - xs[-1])
                else:
                    pred = ys[-1]
                gate = p.track_gate + 0.15 * (x - xs[-1])
            elif self.predicted_y is not None:
                pred, gate = self.predicted_y, p.track_gate * 2
            else:
                pred, gate = 0.0, float("inf")
            j = int(np.argmin(np.abs(ylat - pred)))
            if abs(ylat[j] - pred) > gate:
                if xs:
                    break
                continue
            xs.append(x)
            ys.append(float(ylat[j]))
            us.append(float(centres[j]))
            vs.append(int(row))
        obs = LineObservation(np.array(xs), np.array(ys), np.array(us), np.array(vs))
        off = obs.lateral_offset()
        self.predicted_y = None if off is None else float(obs.y[0])
        return obs

    def reset(self) -> None:
        self.predicted_y = None


class ExplicitBrain:
    """Red-line follower: ``preprocess`` finds the line, ``predict`` runs the controller.

    Stateful (PID integral, last command, lost-line memory); one instance per car.
    """

    label = "explicit"

    def __init__(self, camera: CameraGeometry | None = None, params: ExplicitParams | None = None):
        self.camera = camera = camera or CameraGeometry()
        self.params = params = params or ExplicitParams()
        self.finder = LineFinder(camera, params)
        self.reset()

    def reset(self) -> None:
        self.finder.reset()
        self.integral = 0.0
        self.last_v = self.params.v_min
        self.last_kappa = 0.0
        self.lost = 0
        self.last_offset = 0.0
        self.last_state: dict = {}

    # -- pipeline interface -------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray) -> LineObservation:
        return self.finder.find(rgb)

    def predict(self, obs: LineObservation) -> np.ndarray:
        v, w = self.control(obs)
        return np.array([v, w], np.float64)

    def postprocess(self, p: np.ndarray) -> tuple[float, float]:
        return float(p[0]), float(p[1])

    def describe(self) -> dict:
        return {"brain": "explicit", "label": self.label, "camera": self.camera.describe(),
                "params": asdict(self.params)}

    def __call__(self, rgb: np.ndarray) -> tuple[float, float]:
        """RGB frame -> (v m/s, w rad/s)."""
        return self.control(self.preprocess(rgb))

    # -- control ------------------------------------------------------------------------------
    def control(self, obs: LineObservation) -> tuple[float, float]:
        p = self.params
        if not obs.found:
            # Lost: keep turning the way we were, at the lowest speed, harder as it lasts.
            self.lost += 1
            kappa = self.last_kappa if abs(self.last_kappa) > 0.02 else math.copysign(0.05, self.last_offset or 1.0)
            kappa *= min(1.0 + 0.1 * self.lost, 3.0)
            v = p.v_min
            w = float(np.clip(v * kappa, -p.w_max, p.w_max))
            self.last_state = {"found": False}
            return v, w
        self.lost = 0
        x, y = obs.x, obs.y
        near = x <= max(p.fit_range, x[0] + 1e-6)
        xn, yn = x[near], y[near]
        if len(xn) >= 3:
            wts = 1.0 / (0.5 + xn)
            a2, a1, a0 = np.polyfit(xn, yn, 2, w=wts)
        elif len(xn) == 2:
            a1, a0 = np.polyfit(xn, yn, 1)
            a2 = 0.0
        else:
            a0, a1, a2 = float(yn[0]), 0.0, 0.0
        kappa_line = 2.0 * a2 / (1.0 + a1 * a1) ** 1.5
        # Curvature ahead for the speed schedule: the heading change along the visible line.
        kappa_ahead = abs(kappa_line)
        if len(x) >= 4:
            hx = np.arctan2(np.diff(y), np.diff(x))
            mx = 0.5 * (x[1:] + x[:-1])
            sel = mx <= p.preview
            if sel.sum() >= 3:
                c = np.polyfit(mx[sel], np.unwrap(hx[sel]), 1)[0]
                kappa_ahead = max(kappa_ahead, abs(c))
        seen = x[-1]
        # PID on the lateral offset a0 (line left of the car: positive -> turn left).
        self.integral = float(np.clip(self.integral + a0 * p.dt, -2.0, 2.0))
        kappa = kappa_line + p.kp * a0 + p.ki * self.integral + p.kd * a1
        v = math.sqrt(p.lateral_accel / max(kappa_ahead, 1e-3))
        if seen < p.preview * 0.5:      # little line visible: a sharp bend is coming
            v = min(v, p.v_min + (p.v_max - p.v_min) * seen / p.preview)
        v = float(np.clip(v, p.v_min, p.v_max))
        w = float(np.clip(v * kappa, -p.w_max, p.w_max))
        self.last_v, self.last_kappa, self.last_offset = v, kappa, float(a0)
        self.last_state = {"found": True, "offset": float(a0), "heading": float(math.atan(a1)),
                           "kappa_line": float(kappa_line), "kappa_ahead": float(kappa_ahead),
                           "seen": float(seen)}
        return v, w



def drive(circuit: Any, brain: ExplicitBrain | None = None, laps: float = 1.0, max_time: float | None = None,
          sim_config: Any = None, off_track: float | None = None, trace: bool = False) -> dict[str, Any]:
    """Drive ``brain`` (default: a fresh ExplicitBrain) on the embedded simulator core, lockstep
    (each frame's command is applied before the sim advances to the next frame), without ROS.

    circuit: a name, path or Circuit. Ends after ``laps`` laps of progress, at ``max_time`` sim s
    (default: long enough at 5 m/s), when the car is more than ``off_track`` m (default: half
    the road width) from the red line, or when it has been stopped against a wall for 1 s
    ("crashed"). Returns {"completed", "laps", "time" (s), "lap_time" (s, of the first lap),
    "distance" (m of centerline progress), "mean_abs_lateral" / "max_abs_lateral" (m, car
    reference point to the red line), "mean_speed" (m/s, commanded), "wall_contacts", "reason"}
    and, with ``trace``, the per-frame arrays (t, x, y, yaw, s, lateral, v, w).
    """
    from pilotnet_brains.circuits import as_circuit
    from pilotnet_brains.sim import SimConfig, Simulator

    circ = as_circuit(circuit)
    sim = Simulator(circ, sim_config or SimConfig())
    brain = brain or ExplicitBrain(CameraGeometry(sim.config.camera))
    brain.reset()
    target = laps * circ.length
    max_time = max_time if max_time is not None else target / 5.0 + 10.0
    off = off_track if off_track is not None else circ.road_width / 2.0
    s_prev = float(circ.project([sim.pose[:2]])[0][0])
    progress = 0.0
    rows = []
    rgb = sim.render()
    lap_time = None
    reason = "timeout"
    frame = np.empty_like(rgb)
    pinned = collections.deque(maxlen=int(round(sim.config.camera_rate)) + 1)   # progress over the last 1 s
    while sim.time < max_time:
        v, w = brain(rgb)
        sim.set_command(v, w)
        _, rgb = sim.step_to_next_frame(out=frame)
        x, y, yaw = sim.pose
        s, lat = circ.project([[x, y]])
        s, lat = float(s[0]), float(lat[0])
        ds = (s - s_prev + circ.length / 2.0) % circ.length - circ.length / 2.0
        progress += ds
        s_prev = s
        rows.append((sim.time, x, y, yaw, s, lat, v, w))
        if lap_time is None and progress >= circ.length:
            lap_time = sim.time
        if progress >= target:
            reason = ""
            break
        if abs(lat) > off:
            reason = "off_track"
            break
        pinned.append(progress if sim.in_contact else None)
        if len(pinned) == pinned.maxlen and None not in pinned and pinned[-1] - pinned[0] < 0.2:
            reason = "crashed"
            break
    a = np.array(rows, np.float64).reshape(-1, 8)
    out: dict[str, Any] = {
        "circuit": circ.name, "completed": reason == "", "reason": reason, "laps": progress / circ.length,
        "time": float(sim.time), "lap_time": lap_time, "distance": progress,
        "mean_abs_lateral": float(np.abs(a[:, 5]).mean()) if len(a) else math.nan,
        "max_abs_lateral": float(np.abs(a[:, 5]).max()) if len(a) else math.nan,
        "mean_speed": float(a[:, 6].mean()) if len(a) else math.nan,
        "average_speed": progress / sim.time if sim.time > 0 else 0.0,
        "wall_contacts": sim.wall_contacts,
    }
    if trace:
        out["trace"] = {k: a[:, i] for i, k in enumerate(("t", "x", "y", "yaw", "s", "lateral", "v", "w"))}
    return out
