"""Lap detection and per-lap metrics: pure functions of (time, pose, brain stats, commands) arrays.

The same code serves the live metrics node (``pilotnet_brains.ros.metrics_node``) and the offline
recompute from a rosbag (``scripts/metrics_from_bag``): both feed a :class:`RunTracker` with the
same samples in the same order, so they find the same laps and the same numbers.

Definitions (where Behavior Metrics (BM) is loose, ours is exact):

- **progress** (m): the car's arc-length projection ``s`` on the centerline, unwrapped across the
  wrap at ``s = length`` (each step taken as the shorter way round, in [-length/2, length/2)),
  relative to the car's ``s`` when the run starts. Positive = driving direction.
- **lap k completed** when progress reaches ``k * length``; the crossing time is interpolated
  linearly between the two odometry samples around it, and the next lap starts at that instant.
- **DNF** reasons: ``reset`` (the pose jumped faster than ``max_speed``: a simulator reset or a
  teleport; the jump never counts as progress), ``off_track`` (|lateral| > road_width/2 +
  margin: only on a circuit without walls), ``crashed`` (stopped against a wall: touched it in the
  last ``crash_time`` sim s and moved less than ``crash_distance`` m over them; or stuck, below,
  while touching the walls), ``stuck`` (moved less than ``stuck_distance`` m, straight line, over the last
  ``stuck_time`` sim s), ``timeout`` (lap longer than ``timeout`` sim s; default
  ``length / timeout_speed``), ``brain_died`` and ``interrupted`` (wall-clock events decided by the
  node: :data:`WALL_REASONS`). A DNF ends the run.
- the run **starts** (lap 1, t = 0 of its lap time) at the last odometry sample stamped at or
  before the frame the brain first answered (the first BrainStats' stamp; a brain without stats:
  its first command's time): the car's pose when the brain first looked. Before that nothing
  counts (a brain loading its model for a minute is neither stuck nor timed out).

- **wall contacts**: on a circuit with walls, each odometry sample where the car's footprint (its
  pose and the 1.0 x 0.36 m box, ``pilotnet_brains.sim.walls``) touches a wall after one where it
  did not counts one contact; ``wall_contact_time`` is the sim time spent touching.
- **deviation**: ``deviation_mae`` (m) is the mean |lateral| of the odometry samples (the car's
  origin to the red line); ``deviation_bm_1000pow`` is Behavior Metrics' position deviation: for
  each red-line point the lap covered (one every 0.2 m), its distance d (m) to the driven path,
  and the mean of 1000^d (1.0 is perfect; their published 4.9-7.4 mean d ~ 0.23-0.29 m);
  ``deviation_bm_mean`` is the mean of those d (m).

Units: time in seconds (``t`` sim clock, ``wall`` wall clock), lengths in metres, speeds m/s.
"""
from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from pilotnet_brains.params import param

#: Reasons a lap does not finish, in the order they are checked on one odometry sample.
ODOM_REASONS: tuple[str, ...] = ("reset", "off_track", "crashed", "stuck", "timeout")
#: Reasons decided on the wall clock by the node (the bag replays them from recorded LapResults).
WALL_REASONS: tuple[str, ...] = ("brain_died", "sim_died", "interrupted")
DNF_REASONS: tuple[str, ...] = ODOM_REASONS + WALL_REASONS

#: Base of the Behavior Metrics deviation (mean of BM_DEVIATION_BASE ** d, d in metres).
BM_DEVIATION_BASE = 1000.0


@dataclass
class LapLimits:
    """When a run ends. Lengths in m, times in sim s. Also the lap metrics node's ~params of the same names."""

    laps: int = param(1, "laps to drive; the run ends after them or at the first DNF")
    timeout: float = param(0.0, "sim s per lap before DNF timeout; <= 0 = circuit length / ~timeout_speed")
    timeout_speed: float = param(2.0, "m/s that defines the default timeout")
    off_track_margin: float = param(1.0, "m beyond the road half-width before DNF off_track")
    stuck_distance: float = param(0.5, "m: DNF stuck when the car moved less than this (straight line) ...")
    stuck_time: float = param(10.0, "sim s: ... over the last this long")
    max_speed: float = param(50.0, "m/s: a faster pose change (+ 1 m) is a reset/teleport (DNF reset), not driving")
    crash_distance: float = param(0.2, "m: touching a wall and moving less than this ...")
    crash_time: float = param(1.0, "sim s: ... over this long is a crash")

    def lap_timeout(self, length: float) -> float:
        """Sim seconds allowed per lap on a circuit of ``length`` m."""
        return float(self.timeout) if self.timeout > 0 else default_timeout(length, self.timeout_speed)

    def check(self) -> None:
        if int(self.laps) < 1:
            raise ValueError(f"laps must be >= 1, got {self.laps}")
        for name in ("timeout_speed", "stuck_distance", "stuck_time", "max_speed", "crash_distance", "crash_time"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.off_track_margin < 0:
            raise ValueError(f"off_track_margin must be >= 0 m, got {self.off_track_margin}")


def default_timeout(length: float, speed: float = LapLimits.timeout_speed) -> float:
    """Default lap timeout (sim s): the lap driven at ``speed`` m/s."""
    return float(length) / float(speed)


# ---------------------------------------------------------------------------------- pure array math
def wrap_signed(d, length: float):
    """Arc-length difference(s) (m) wrapped to [-length/2, length/2): the shorter way round."""
    half = length / 2.0
    return (np.asarray(d, dtype=np.float64) + half) % length - half


def wrap_turns(d, length: float):
    """+1 where an arc-length step ``d`` = s[i] - s[i-1] crossed s = length forwards (the shorter way
    round), -1 backwards, else 0."""
    d = np.asarray(d, dtype=np.float64)
    half = length / 2.0
    return np.where(d < -half, 1, np.where(d >= half, -1, 0))


def unwrap_progress(s, length: float, s_ref: float | None = None) -> np.ndarray:
    """Unwrapped progress (m) of arc lengths ``s`` (N,) in [0, length), relative to ``s_ref``
    (default ``s[0]``). Crossing ``s = length`` forward adds, driving backwards subtracts.

    Computed as ``s - s_ref + turns * length`` (turns counted at the wrap), so the value of a sample
    does not depend on which other samples were seen (no summation round-off)."""
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if len(s) == 0:
        return s.copy()
    ref = s[0] if s_ref is None else float(s_ref)
    turns0 = int(wrap_turns(s[0] - ref, length))
    turns = turns0 + np.concatenate([[0], np.cumsum(wrap_turns(np.diff(s), length))])
    return (s - ref) + turns * length


def path_length(xy) -> float:
    """Length (m) of the polyline through the points xy (N,2)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return float(np.sum(np.hypot(*np.diff(xy, axis=0).T))) if len(xy) > 1 else 0.0


def off_track(lateral, road_width: float, margin: float):
    """True where the car is off the road: |lateral| (m) > road_width/2 + margin."""
    return np.abs(np.asarray(lateral, dtype=np.float64)) > road_width / 2.0 + margin


def bm_deviation(d) -> float:
    """Mean of 1000^|d| (d in m), Behavior Metrics' position-deviation score. Not metres: 1.0 is a
    perfect drive; published tables' 4.9-7.4 mean d ~ 0.23-0.29 m."""
    d = np.abs(np.asarray(d, dtype=np.float64))
    return float(np.mean(np.power(BM_DEVIATION_BASE, d))) if len(d) else float("nan")


def line_to_path_distances(line_xy, path_xy, step: float = 0.05) -> np.ndarray:
    """Distance (m) from each red-line point (M,2) to the driven path, the polyline through
    ``path_xy`` (N,2) (resampled every ``step`` m, so within step/2 of exact); nan without a path."""
    line_xy = np.asarray(line_xy, np.float64).reshape(-1, 2)
    path_xy = np.asarray(path_xy, np.float64).reshape(-1, 2)
    if len(path_xy) == 0 or len(line_xy) == 0:
        return np.full(len(line_xy), np.nan)
    if len(path_xy) > 1:
        seg = np.hypot(*np.diff(path_xy, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(2, int(math.ceil(s[-1] / step)) + 1)
        q = np.linspace(0.0, s[-1], n)
        path_xy = np.stack([np.interp(q, s, path_xy[:, 0]), np.interp(q, s, path_xy[:, 1])], axis=1)
    from scipy.spatial import cKDTree

    return cKDTree(path_xy).query(line_xy)[0]


def suddenness(v, w) -> float:
    """Mean ||(dv, dw)|| between consecutive commands (m/s and rad/s mixed as BM does); 0 if < 2."""
    vw = np.stack([np.asarray(v, dtype=np.float64), np.asarray(w, dtype=np.float64)], axis=1)
    if len(vw) < 2:
        return 0.0
    return float(np.mean(np.hypot(*np.diff(vw, axis=0).T)))


def counter_increase(values, start: float = 0.0) -> int:
    """How much a cumulative counter grew over ``values`` (in arrival order) from ``start``; a drop
    means the counter restarted (a restarted brain) and its new value is all growth since."""
    v = np.concatenate([[start], np.asarray(values, dtype=np.float64)])
    d = np.diff(v)
    return int(np.sum(np.where(d >= 0, d, v[1:])))


def percentile(x, q: float) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.percentile(x, q)) if len(x) else float("nan")


def _mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x)) if len(x) else float("nan")


# ---------------------------------------------------------------------------------- the run
@dataclass
class LapSpan:
    """Where one lap starts and ends (sim s) and how it ended."""

    lap: int                        # 1-based
    t_start: float                  # sim s
    progress_start: float           # m of unwrapped run progress at the start ((lap-1) * length)
    t_end: float = float("nan")     # sim s; nan while the lap runs
    completed: bool = False
    dnf_reason: str = ""
    detail: str = ""                # human words on the DNF (what was measured)
    t_decided: float = float("nan")  # sim s of the odometry sample on which the lap's end was known

    @property
    def finished(self) -> bool:
        return not math.isnan(self.t_end)


class _Series:
    """Append-only columns of floats (lists, turned into arrays on demand)."""

    def __init__(self, *names: str):
        self.names = names
        self.cols: dict[str, list] = {n: [] for n in names}

    def append(self, *values) -> None:
        for n, v in zip(self.names, values):
            self.cols[n].append(v)

    def __len__(self) -> int:
        return len(self.cols[self.names[0]])

    def array(self, name: str) -> np.ndarray:
        return np.asarray(self.cols[name], dtype=np.float64)


STATS_FIELDS: tuple[str, ...] = ("t", "inference_time", "preprocess_time", "iteration_time", "period",
                                 "skipped_frames", "bad_frames", "bad_outputs", "v", "w")


class RunTracker:
    """Feed samples in arrival order; it finds lap starts and ends and computes per-lap metrics.

    - :meth:`add_odom` (t sim s, x, y m[, wall s, yaw rad]) returns the laps that ended on this
      sample (without yaw, wall contacts are not detected);
    - :meth:`arm` (t sim s of the first brain command) starts the run;
    - :meth:`add_stats`, :meth:`add_command`, :meth:`add_camera` collect what the metrics need;
    - :meth:`abort` ends the lap in progress for a wall-clock reason (brain_died, interrupted);
    - :meth:`lap_metrics` computes the numbers of a lap (also of the one in progress).

    ``circuit`` needs ``length``, ``road_width`` and ``project(xy) -> (s, lateral)`` (m); with
    ``polyline`` and ``spacing`` the laps also get Behavior Metrics' deviation, and with
    ``wall_height`` > 0 (a :class:`pilotnet_brains.circuits.Circuit`) wall contacts and crashes.
    """

    def __init__(self, circuit, limits: LapLimits | None = None):
        self.circuit = circuit
        self.length = float(circuit.length)
        self.road_width = float(circuit.road_width)
        self.limits = limits or LapLimits()
        self.limits.check()
        self.timeout = self.limits.lap_timeout(self.length)
        self.odom = _Series("t", "x", "y", "s", "lateral", "progress", "wall", "yaw", "contact")
        self.walls = None
        if float(getattr(circuit, "wall_height", 0.0) or 0.0) > 0:
            from pilotnet_brains.sim.walls import Walls

            self.walls = Walls(circuit)
        self._s_ref = float("nan")
        self.stats = _Series(*STATS_FIELDS)
        self.backend = ""
        self.commands = _Series("t", "v", "w")
        self.camera = _Series("t")
        # cumulative run-queue wait (s) of the brain's and the simulator's threads, sampled on the wall clock
        self.cpu_wait = _Series("wall", "brain", "sim")
        self.laps: list[LapSpan] = []
        self.t_arm: float | None = None
        self._first = 0                  # index of the run's first odom sample (after arming)
        self._started = False
        self._progress = float("nan")    # unwrapped progress of the last processed sample
        self._window: collections.deque = collections.deque()  # (t, x, y) for the stuck check

    # ------------------------------------------------------------------ state
    @property
    def armed(self) -> bool:
        return self.t_arm is not None

    @property
    def current(self) -> LapSpan | None:
        return self.laps[-1] if self.laps and not self.laps[-1].finished else None

    @property
    def done(self) -> bool:
        """True once the run is over: the laps are driven or one ended as DNF."""
        if not self.laps or self.current is not None:
            return False
        last = self.laps[-1]
        return (not last.completed) or len(self.laps) >= int(self.limits.laps)

    @property
    def last_t(self) -> float:
        return float(self.odom.cols["t"][-1]) if len(self.odom) else float("nan")

    # ------------------------------------------------------------------ inputs
    def add_odom(self, t: float, x: float, y: float, wall: float | None = None,
                 yaw: float | None = None) -> list[LapSpan]:
        """One odometry sample (sim s, world m, optional wall s, optional yaw rad). Out-of-order
        samples are ignored. Returns the laps that ended on it."""
        t = float(t)
        if len(self.odom) and t <= self.odom.cols["t"][-1]:
            return []
        s, lat = self.circuit.project(np.array([[x, y]], dtype=np.float64))
        yaw = float("nan") if yaw is None else float(yaw)
        contact = float(self.walls.touching((x, y, yaw))) if self.walls is not None and yaw == yaw else 0.0
        self.odom.append(t, float(x), float(y), float(s[0]), float(lat[0]), float("nan"),
                         float("nan") if wall is None else float(wall), yaw, contact)
        if not self._started:
            return self._maybe_start()
        if self.done:
            return []
        return self._process(len(self.odom) - 1)

    def arm(self, t: float) -> list[LapSpan]:
        """The brain first answered at sim time ``t``: the run starts at the last odometry
        sample stamped <= t (or the first one, if none), decided as soon as a sample stamped after
        t is known, so the choice does not depend on arrival order. Idempotent."""
        if self.armed:
            return []
        self.t_arm = float(t)
        return self._maybe_start()

    def _maybe_start(self) -> list[LapSpan]:
        ts = self.odom.cols["t"]
        if self._started or not self.armed or not ts or ts[-1] <= self.t_arm:
            return []
        i = max(0, int(np.searchsorted(np.asarray(ts), self.t_arm, side="right")) - 1)
        self._first = i
        self._started = True
        ended: list[LapSpan] = []
        for j in range(i, len(ts)):
            ended += self._process(j)
            if self.done:
                break
        return ended

    def add_stats(self, t: float, inference_time: float = 0.0, preprocess_time: float = 0.0,
                  iteration_time: float = 0.0, period: float = 0.0, skipped_frames: int = 0,
                  bad_frames: int = 0, bad_outputs: int = 0, v: float = 0.0, w: float = 0.0,
                  backend: str = "") -> None:
        """One BrainStats (t = stamp of the frame it answered, sim s; times in wall s)."""
        self.stats.append(float(t), inference_time, preprocess_time, iteration_time, period,
                          skipped_frames, bad_frames, bad_outputs, v, w)
        if backend:
            self.backend = backend

    def add_command(self, t: float, v: float, w: float) -> None:
        """One drive command received at sim time t (s): v m/s, w rad/s."""
        self.commands.append(float(t), float(v), float(w))

    def add_camera(self, t: float) -> None:
        """One camera frame stamped t (sim s)."""
        self.camera.append(float(t))

    def add_cpu_wait(self, wall: float, brain: float | None, sim: float | None) -> None:
        """The brain's and the simulator's cumulative run-queue wait (s; None when unknown) at ``wall``
        (s, the clock of the odometry samples' ``wall``)."""
        nan = float("nan")
        self.cpu_wait.append(float(wall), nan if brain is None else float(brain), nan if sim is None else float(sim))

    def abort(self, reason: str, t: float | None = None, detail: str = "") -> LapSpan | None:
        """End the lap in progress as DNF ``reason`` at sim time ``t`` (default: the last odometry
        sample). Before the run started, records lap 1 as that DNF with zero length. Returns the
        ended lap, or None when the run was already over."""
        if self.done:
            return None
        t_end = self.last_t if t is None else float(t)
        if math.isnan(t_end):
            t_end = 0.0
        span = self.current
        if span is None:
            span = LapSpan(lap=len(self.laps) + 1, t_start=t_end, progress_start=len(self.laps) * self.length)
            self.laps.append(span)
        span.t_end = max(t_end, span.t_start)
        span.dnf_reason = reason
        span.detail = detail
        return span

    # ------------------------------------------------------------------ lap logic
    def _process(self, i: int) -> list[LapSpan]:
        c = self.odom.cols
        t, x, y, s, lat = c["t"][i], c["x"][i], c["y"][i], c["s"][i], c["lateral"][i]
        if i == self._first:
            self._progress = 0.0
            self._s_ref = s
            self._turns = 0
            self.laps.append(LapSpan(lap=1, t_start=t, progress_start=0.0))
        else:
            t0, jump = c["t"][i - 1], math.hypot(x - c["x"][i - 1], y - c["y"][i - 1])
            if jump > self.limits.max_speed * (t - t0) + 1.0:
                # teleported (a simulator reset, a pose set from outside): no driving, no progress
                c["progress"][i] = self._progress
                span = self.current
                if span is None:
                    return []
                span.t_end = max(t0, span.t_start)
                span.dnf_reason = "reset"
                span.detail = f"the car moved {jump:.1f} m in {t - t0:.3f} s (a reset or teleport)"
                return [span]
            self._turns += int(wrap_turns(s - c["s"][i - 1], self.length))
            self._progress = (s - self._s_ref) + self._turns * self.length
        c["progress"][i] = self._progress
        self._window.append((t, x, y))
        ended: list[LapSpan] = []
        lim = self.limits
        # completed laps (a lap boundary crossed between the previous sample and this one)
        while self.current is not None and i > self._first:
            span = self.current
            target = span.progress_start + self.length
            if self._progress < target:
                break
            p0, t0 = c["progress"][i - 1], c["t"][i - 1]
            frac = (target - p0) / (self._progress - p0) if self._progress > p0 else 1.0
            t_cross = t0 + min(max(frac, 0.0), 1.0) * (t - t0)
            span.t_end = t_cross
            span.t_decided = t
            span.completed = True
            ended.append(span)
            if len(self.laps) < int(lim.laps):
                self.laps.append(LapSpan(lap=span.lap + 1, t_start=t_cross, progress_start=target))
        span = self.current
        if span is None:
            return ended
        # DNF checks, in ODOM_REASONS order
        reason, detail = "", ""
        half = self.road_width / 2.0 + lim.off_track_margin
        crash = self._crashed(i)
        if abs(lat) > half:
            reason, detail = "off_track", f"|lateral| {abs(lat):.2f} m > road half-width + margin {half:.2f} m"
        elif crash:
            reason, detail = "crashed", crash
        else:
            while len(self._window) > 1 and self._window[1][0] <= t - lim.stuck_time:
                self._window.popleft()
            t_old, x_old, y_old = self._window[0]
            moved = math.hypot(x - x_old, y - y_old)
            if t - t_old >= lim.stuck_time and moved < lim.stuck_distance:
                # held up by the walls (scraping to and fro along one) is a crash, not a stall
                ts = c["t"]
                j = i
                while j > self._first and ts[j - 1] >= t_old:
                    j -= 1
                reason = "crashed" if any(c["contact"][j:i + 1]) else "stuck"
                detail = (f"moved {moved:.2f} m in {t - t_old:.1f} s (< {lim.stuck_distance} m in {lim.stuck_time} s)"
                          + (" against the walls" if reason == "crashed" else ""))
            elif t - span.t_start >= self.timeout:
                reason, detail = "timeout", f"lap time {t - span.t_start:.1f} s >= timeout {self.timeout:.1f} s"
        if reason:
            span.t_end = span.t_decided = t
            span.dnf_reason = reason
            span.detail = detail
            ended.append(span)
        return ended

    def _crashed(self, i: int) -> str:
        """Why sample i ends the lap as ``crashed`` ('' if it does not): the car touched a wall in
        the last crash_time s and every sample of that window is within crash_distance of this one
        (pinned against the wall, or turning on the spot against it)."""
        c = self.odom.cols
        lim = self.limits
        t, x, y = c["t"][i], c["x"][i], c["y"][i]
        j = i
        while j > self._first and c["t"][j - 1] >= t - lim.crash_time - 1e-9:
            j -= 1
            if math.hypot(c["x"][j] - x, c["y"][j] - y) >= lim.crash_distance:
                return ""
        if t - c["t"][j] < lim.crash_time - 1e-9 or not any(c["contact"][j:i + 1]):
            return ""
        return (f"against a wall at ({x:.2f}, {y:.2f}): moved < {lim.crash_distance} m in "
                f"{lim.crash_time:.1f} s while touching it")

    # ------------------------------------------------------------------ metrics
    def lap_metrics(self, span: LapSpan, t_now: float | None = None) -> dict[str, object]:
        """Every metric of a lap (see :func:`lap_metrics`); for the lap in progress, up to
        ``t_now`` (default the last odometry sample)."""
        t_end = span.t_end if span.finished else (self.last_t if t_now is None else float(t_now))
        line = None
        poly = getattr(self.circuit, "polyline", None)
        if poly is not None and self._started:
            line = (np.arange(len(poly)) * float(self.circuit.spacing), np.asarray(poly), float(self._s_ref))
        return lap_metrics(span, t_end, self.length, self.odom_arrays(), self.stats_arrays(),
                           self.command_arrays(), self.camera.array("t"), backend=self.backend, line=line,
                           cpu_wait={n: self.cpu_wait.array(n) for n in self.cpu_wait.names})

    def odom_arrays(self) -> dict[str, np.ndarray]:
        return {n: self.odom.array(n) for n in self.odom.names}

    def stats_arrays(self) -> dict[str, np.ndarray]:
        return {n: self.stats.array(n) for n in self.stats.names}

    def command_arrays(self) -> dict[str, np.ndarray]:
        return {n: self.commands.array(n) for n in self.commands.names}

    def lap_track(self, span: LapSpan) -> dict[str, np.ndarray]:
        """The odometry samples of a lap (t, x, y, s, lateral, progress-in-lap), for plots."""
        o = self.odom_arrays()
        t_end = span.t_end if span.finished else self.last_t
        m = (o["t"] >= span.t_start) & (o["t"] <= t_end) & ~np.isnan(o["progress"])
        out = {k: v[m] for k, v in o.items()}
        out["progress"] = out["progress"] - span.progress_start
        return out


def _interp_at(t_query: float, t: np.ndarray, v: np.ndarray) -> float:
    return float(np.interp(t_query, t, v))


def wait_share(wall: np.ndarray, waited: np.ndarray, w0: float, w1: float) -> float:
    """Seconds of run-queue wait per wall second over [w0, w1] (wall s) from cumulative samples: the
    rate between the last sample at or before w0 (else the first inside) and the first at or after
    w1 (else the last inside); nan with fewer than two such samples or when [w0, w1] is unknown."""
    ok = np.isfinite(wall) & np.isfinite(waited)
    wall, waited = wall[ok], waited[ok]
    if not (math.isfinite(w0) and math.isfinite(w1)) or w1 <= w0 or len(wall) < 2:
        return float("nan")
    before = np.flatnonzero(wall <= w0)
    after = np.flatnonzero(wall >= w1)
    inside = np.flatnonzero((wall > w0) & (wall < w1))
    i = before[-1] if len(before) else (inside[0] if len(inside) else None)
    j = after[0] if len(after) else (inside[-1] if len(inside) else None)
    if i is None or j is None or wall[j] <= wall[i]:
        return float("nan")
    return max(float(waited[j] - waited[i]), 0.0) / float(wall[j] - wall[i])


def lap_metrics(span: LapSpan, t_end: float, length: float, odom: dict[str, np.ndarray],
                stats: dict[str, np.ndarray], commands: dict[str, np.ndarray], camera_t: np.ndarray,
                backend: str = "", line=None, cpu_wait: dict[str, np.ndarray] | None = None) -> dict[str, object]:
    """Metrics of one lap from run-long arrays (each dict: column name -> (N,) array).

    odom: t, x, y, lateral, progress (m, unwrapped run progress; nan before the run), wall (s or
    nan), and optionally contact (1 where the car touches a wall).
    stats: the BrainStats columns (:data:`STATS_FIELDS`), t = frame stamp (sim s).
    commands: t (receipt, sim s), v, w. camera_t: frame stamps (sim s). cpu_wait: wall (s), brain, sim
    (cumulative run-queue wait, s; see :mod:`pilotnet_brains.cpuwait`), giving ``cpu_wait_brain`` and
    ``cpu_wait_sim``: wait per wall second over the lap (nan when unknown).

    The lap's path runs from the pose interpolated at ``span.t_start`` through the samples inside
    to the pose interpolated at ``t_end``; brain stats, commands and frames count when their sim
    time is in [t_start, t_end). ``line``: (s (M,) m, xy (M,2) m, s_ref m) of the red line's points
    and the arc length where run progress is 0, for Behavior Metrics' deviation over the points
    the lap covered.
    """
    t0, t1 = float(span.t_start), float(t_end)
    lap_time = max(t1 - t0, 0.0)
    ok = ~np.isnan(odom["progress"])
    ot = odom["t"][ok]
    pts: dict[str, np.ndarray] = {}
    if len(ot):
        inner = (ot > t0) & (ot < t1)
        for k in ("x", "y", "lateral", "progress", "wall"):
            col = odom[k][ok]
            ends = [_interp_at(t0, ot, col)] + ([_interp_at(t1, ot, col)] if t1 > t0 else [])
            pts[k] = np.concatenate([[ends[0]], col[inner], ends[1:]])
        pts["t"] = np.concatenate([[t0], ot[inner], [t1] if t1 > t0 else []])
    else:
        pts = {k: np.zeros(0) for k in ("t", "x", "y", "lateral", "progress", "wall")}
    xy = np.stack([pts["x"], pts["y"]], axis=1) if len(pts["x"]) else np.zeros((0, 2))
    plen = path_length(xy)
    distance = (float(pts["progress"][-1]) - span.progress_start) if len(pts["progress"]) else 0.0
    if span.completed:
        distance = length
    lat = pts["lateral"]
    # wall contacts: onsets among the lap's own samples (a lap that starts touching counts one)
    contact = odom["contact"][ok] if "contact" in odom else np.zeros(len(ot))
    in_lap = (ot >= t0) & (ot <= t1)
    cl = contact[in_lap] > 0
    n_contacts = int(np.count_nonzero(cl[1:] & ~cl[:-1]) + (1 if len(cl) and cl[0] else 0))
    t_lap = ot[in_lap]
    contact_time = float(np.sum(np.diff(t_lap)[cl[:-1]])) if len(cl) > 1 else 0.0
    # Behavior Metrics' deviation: each red-line point the lap covered, its distance to the path
    bm_d = np.zeros(0)
    if line is not None and len(xy) and distance > 0:
        s_line, xy_line, s_ref = line
        ahead = (np.asarray(s_line) - s_ref - span.progress_start) % length
        bm_d = line_to_path_distances(np.asarray(xy_line)[ahead <= min(distance, length)], xy)

    # brain stats in the lap
    st = stats["t"]
    sm = (st >= t0) & (st < t1) if t1 > t0 else np.zeros(len(st), dtype=bool)
    n_iter = int(np.count_nonzero(sm))
    period = stats["period"][sm]
    period = period[period > 0]
    before = st < t0
    cum: dict[str, int] = {}
    for k in ("skipped_frames", "bad_frames", "bad_outputs"):
        col = stats[k]
        last_before = float(col[before][-1]) if np.any(before) else 0.0
        cum[k] = counter_increase(col[sm], last_before)
    inf = stats["inference_time"][sm]
    it = stats["iteration_time"][sm]

    # real-time factor: the metrics node's wall clock if it has one, else the brain's periods
    wall = pts["wall"]
    if len(wall) >= 2 and not np.isnan(wall[0]) and not np.isnan(wall[-1]) and wall[-1] > wall[0]:
        rtf = (pts["t"][-1] - pts["t"][0]) / (wall[-1] - wall[0])
        rtf_source = "wall clock"
    elif n_iter >= 3 and np.sum(stats["period"][sm][1:]) > 0:
        stamps = st[sm]
        rtf = float((stamps[-1] - stamps[0]) / np.sum(stats["period"][sm][1:]))
        rtf_source = "brain periods"
    else:
        rtf, rtf_source = float("nan"), ""

    ct = commands["t"]
    cm = (ct >= t0) & (ct < t1)
    cam = np.asarray(camera_t, dtype=np.float64)
    n_cam = int(np.count_nonzero((cam >= t0) & (cam < t1)))
    speeds = speed_profile(pts["t"], xy)
    return {
        "lap": span.lap,
        "completed": bool(span.completed),
        "dnf_reason": span.dnf_reason,
        "dnf_detail": span.detail,
        "in_progress": not span.finished,
        "t_start": t0,
        "t_end": t1,
        "start_xy": [float(xy[0, 0]), float(xy[0, 1])] if len(xy) else None,   # the pose at t_start (m)
        "lap_time": lap_time,
        "distance": float(distance),
        "percentage": float(min(max(100.0 * distance / length, 0.0), 100.0)),
        "path_length": plen,
        "average_speed": plen / lap_time if lap_time > 0 else 0.0,
        "max_speed": float(np.max(speeds)) if len(speeds) else 0.0,
        "deviation_mae": float(np.mean(np.abs(lat))) if len(lat) else float("nan"),
        "deviation_max": float(np.max(np.abs(lat))) if len(lat) else float("nan"),
        "deviation_rmse": float(np.sqrt(np.mean(lat ** 2))) if len(lat) else float("nan"),
        "deviation_bm_1000pow": bm_deviation(bm_d) if len(bm_d) else float("nan"),
        "deviation_bm_mean": float(np.mean(bm_d)) if len(bm_d) else float("nan"),
        "wall_contacts": n_contacts,
        "wall_contact_time": contact_time,
        "odom_samples": int(len(lat)),
        "brain_iterations": n_iter,
        "brain_frequency_wall": float(len(period) / np.sum(period)) if len(period) else float("nan"),
        "brain_frequency_sim": n_iter / lap_time if lap_time > 0 else float("nan"),
        "brain_frequency_bm": float(1.0 / np.mean(it)) if len(it) and np.mean(it) > 0 else float("nan"),
        "inference_time_mean": _mean(inf),
        "inference_time_p50": percentile(inf, 50),
        "inference_time_p99": percentile(inf, 99),
        "inference_time_max": float(np.max(inf)) if len(inf) else float("nan"),
        "preprocess_time_mean": _mean(stats["preprocess_time"][sm]),
        "iteration_time_mean": _mean(it),
        "real_time_factor": float(rtf),
        "rtf_source": rtf_source,
        "camera_frames": n_cam,
        "camera_fps_sim": n_cam / lap_time if lap_time > 0 else float("nan"),
        "commands": int(np.count_nonzero(cm)),
        # from the brain's stats when it publishes them (stamped with their frame: the same live and
        # offline); else from the commands as received
        "suddenness": suddenness(stats["v"][sm], stats["w"][sm]) if n_iter else
        suddenness(commands["v"][cm], commands["w"][cm]),
        "skipped_frames": cum["skipped_frames"],
        "bad_frames": cum["bad_frames"],
        "bad_outputs": cum["bad_outputs"],
        "backend_reported": backend,
        **{f"cpu_wait_{who}": (wait_share(cpu_wait["wall"], cpu_wait[who], float(wall[0]), float(wall[-1]))
                               if cpu_wait is not None and len(wall) >= 2 else float("nan"))
           for who in ("brain", "sim")},
    }


def speed_profile(t, xy) -> np.ndarray:
    """Speed (m/s) on each segment between consecutive samples (N-1,); zero-length steps skipped."""
    t = np.asarray(t, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(t) < 2:
        return np.zeros(0)
    dt = np.diff(t)
    ok = dt > 1e-9
    return np.hypot(*np.diff(xy, axis=0).T)[ok] / dt[ok]


def detect_laps(circuit, t: Sequence[float], xy, limits: LapLimits | None = None,
                t_arm: float | None = None) -> tuple[RunTracker, list[LapSpan]]:
    """Feed a whole odometry track (t (N,) sim s, xy (N,2) m or poses (N,3) with yaw rad) to a
    RunTracker armed at ``t_arm`` (default the first sample). Returns the tracker and its laps (the
    last may be unfinished)."""
    tracker = RunTracker(circuit, limits)
    t = np.asarray(t, dtype=np.float64)
    a = np.asarray(xy, dtype=np.float64)
    poses = a.reshape(-1, 3) if a.ndim == 2 and a.shape[1] == 3 else np.column_stack(
        [a.reshape(-1, 2), np.full(len(a.reshape(-1, 2)), np.nan)])
    if len(t):
        tracker.arm(float(t[0]) if t_arm is None else t_arm)
    for ti, (x, y, yaw) in zip(t, poses):
        tracker.add_odom(ti, x, y, yaw=None if yaw != yaw else yaw)
        if tracker.done:
            break
    return tracker, tracker.laps


def limits_dict(limits: LapLimits) -> dict[str, float]:
    return asdict(limits)


__all__: list[str] = [
    "ODOM_REASONS", "WALL_REASONS", "DNF_REASONS", "LapLimits", "LapSpan", "RunTracker", "default_timeout",
    "wrap_signed", "wrap_turns", "unwrap_progress", "counter_increase", "path_length", "off_track", "bm_deviation",
    "line_to_path_distances", "suddenness",
    "lap_metrics", "speed_profile", "detect_laps", "limits_dict",
]
