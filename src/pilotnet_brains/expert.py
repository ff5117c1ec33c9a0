"""The privileged expert: pure pursuit on the known centerline with curvature-scheduled speed.

It knows the circuit and the car's true pose (no camera), so it drives the red line closely. Used
by tests (a full lap proves circuit + simulator + timing hold together) and as the dataset expert.

    from pilotnet_brains.expert import PurePursuitExpert
    expert = PurePursuitExpert(circuit)
    v, w = expert(pose)          # pose = (x m, y m, yaw rad) -> (v m/s, w rad/s)

Steering: the target point lies ``lookahead`` m ahead along the centerline from the car's
projection; the commanded path curvature is 2 sin(alpha) / d (alpha: bearing of the target in the
car frame, d: distance to it), which on a circle equals the circle's curvature exactly. Speed: the
fastest v in [v_min, v_max] with v^2 |curvature| <= max_lat_acc over the next ``preview`` m of
centerline. The preview is what f1_renault's camera shows clearly from 0.10 m above the road: a
ground point Z m ahead is at image row 240 + 32/Z, so the line's bends are legible up to about 3
m (row 250) and squeezed into a few rows beyond; a network cannot learn to brake for a bend it
cannot see. The car model changes speed instantly, so 3 m (0.125 s at 24 m/s, 2.5 camera frames)
is time enough. Commands are clipped to the dataset label ranges (v in [6.5, 24] m/s, |w| <= 7.1 rad/s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pilotnet_brains.circuits import Circuit, CircuitLike, as_circuit

V_MIN, V_MAX = 6.5, 24.0   # m/s, the label range
W_MAX = 7.1                # rad/s


@dataclass(frozen=True)
class ExpertConfig:
    """Pure-pursuit settings (m, s, m/s^2)."""

    max_lat_acc: float = 5.0        # m/s^2: corner speeds (R = 8.5 m -> 6.5 m/s, R = 20 m -> 10 m/s)
    v_min: float = V_MIN            # m/s
    v_max: float = V_MAX            # m/s
    lookahead_time: float = 0.25    # s: lookahead = clip(lookahead_time * v, min, max)
    min_lookahead: float = 1.5      # m: the real circuits' bends go down to 2 m radius
    max_lookahead: float = 4.0      # m
    preview: float = 3.0            # m of centerline ahead whose curvature limits the speed


class PurePursuitExpert:
    """Callable (x, y, yaw) -> (v, w). See the module docstring."""

    def __init__(self, circuit: CircuitLike, config: ExpertConfig = ExpertConfig()):
        self.circuit: Circuit = as_circuit(circuit)
        self.config = config
        # Curvature sampled every metre, for the speed preview.
        self._ds = 1.0
        s = np.arange(0.0, self.circuit.length, self._ds)
        k = np.abs(self.circuit.curvature_at(s))
        self._k = np.concatenate([k, k])  # doubled: windows wrap without modulo

    def speed_at(self, s: float) -> float:
        """Scheduled speed (m/s) at arc length s (m)."""
        c = self.config
        i0 = int(math.floor((s % self.circuit.length) / self._ds))
        k = float(np.max(self._k[i0:i0 + int(math.ceil(c.preview / self._ds)) + 1]))
        return float(np.clip(math.sqrt(c.max_lat_acc / max(k, 1e-6)), c.v_min, c.v_max))

    def command(self, pose) -> tuple[float, float]:
        """(v m/s, w rad/s) for the car at pose (x m, y m, yaw rad)."""
        c = self.config
        x, y, yaw = (float(p) for p in pose)
        s, _ = self.circuit.project(np.array([[x, y]]))
        s = float(s[0])
        v = self.speed_at(s)
        lookahead = float(np.clip(c.lookahead_time * v, c.min_lookahead, c.max_lookahead))
        tx, ty = self.circuit.point_at(s + lookahead)[0]
        dx, dy = tx - x, ty - y
        d = math.hypot(dx, dy)
        alpha = math.atan2(dy, dx) - yaw
        kappa = 2.0 * math.sin(alpha) / max(d, 1e-6)
        w = float(np.clip(v * kappa, -W_MAX, W_MAX))
        return v, w

    __call__ = command


def expert_lap(circuit: CircuitLike, rate: float = 20.0, max_time: float = 600.0) -> dict:
    """One lap of the expert from the circuit's start pose, commands at ``rate`` Hz (the camera's)
    held between updates, kinematics only (no rendering). Measured as every run is: its poses go
    through :class:`pilotnet_brains.metrics.RunTracker` (the lap ends at the interpolated crossing,
    average speed = driven path / lap time). The reference the networks are measured against: the
    lap's metrics (:func:`pilotnet_brains.metrics.lap_metrics`; a DNF past ``max_time`` sim s)."""
    from pilotnet_brains.metrics import LapLimits, RunTracker
    from pilotnet_brains.sim.kinematics import integrate

    c = as_circuit(circuit)
    expert = PurePursuitExpert(c)
    tracker = RunTracker(c, LapLimits(laps=1, timeout=max_time))
    tracker.arm(0.0)
    pose = tuple(float(p) for p in c.start_pose)
    tracker.add_odom(0.0, pose[0], pose[1], yaw=pose[2])
    step = 0
    while not tracker.done:
        pose = integrate(pose, *expert(pose), 1.0 / rate)
        step += 1
        tracker.add_odom(step / rate, pose[0], pose[1], yaw=pose[2])
    return tracker.lap_metrics(tracker.laps[0])
