"""The privileged expert: pure pursuit on the known centerline with curvature-scheduled speed.

It knows the circuit and the car's true pose (no camera), so it drives the red line closely. Used
by tests (a full lap proves circuit + simulator + timing hold together) and as the dataset expert.

    from pilotnet_brains.expert import PurePursuitExpert
    expert = PurePursuitExpert(circuit)
    v, w = expert(pose)          # pose = (x m, y m, yaw rad) -> (v m/s, w rad/s)

Steering: the target point lies ``lookahead`` m ahead along the centerline from the car's
projection; the commanded path curvature is 2 sin(alpha) / d (alpha: bearing of the target in the
car frame, d: distance to it), which on a circle equals the circle's curvature exactly. Speed: the
fastest v in [v_min, v_max] with v^2 |curvature| <= max_lat_acc over the stretch the car reaches
within ``preview_time`` s. Commands are clipped to the dataset label ranges (v in [6.5, 24] m/s,
|w| <= 7.1 rad/s).
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

    max_lat_acc: float = 4.0        # m/s^2: corner speeds (R = 9 m -> 6.5 m/s, R = 25 m -> 10 m/s)
    v_min: float = V_MIN            # m/s
    v_max: float = V_MAX            # m/s
    lookahead_time: float = 0.25    # s: lookahead = clip(lookahead_time * v, min, max)
    min_lookahead: float = 2.5      # m
    max_lookahead: float = 6.0      # m
    preview_time: float = 1.2       # s of travel over which the curvature limits the speed
    preview_margin: float = 6.0     # m added to the preview (covers the camera-rate control delay)


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
        reach = c.v_max * c.preview_time + c.preview_margin
        i0 = int(math.floor((s % self.circuit.length) / self._ds))
        # Worst curvature within the distance the car covers at the speed it would choose there.
        ks = self._k[i0:i0 + int(math.ceil(reach / self._ds)) + 1]
        v_at = np.sqrt(c.max_lat_acc / np.maximum(ks, 1e-6))
        dist = np.arange(len(ks)) * self._ds
        # A stretch at distance x matters if the car could get there within preview_time at speed v.
        v = c.v_max
        for _ in range(3):
            horizon = v * c.preview_time + c.preview_margin
            v = float(min(c.v_max, np.min(v_at[dist <= horizon])))
        return float(np.clip(v, c.v_min, c.v_max))

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
