"""The embedded F1 simulator without ROS: kinematics + camera on one circuit, in integer sim time.

    from pilotnet_brains.circuits import load_circuit
    from pilotnet_brains.sim import Simulator, SimConfig
    sim = Simulator(load_circuit("simple_circuit"), SimConfig(seed=0))
    sim.reset()                        # start pose, zero command, time 0
    sim.set_command(8.0, 0.2)          # v m/s, w rad/s, held until changed
    t, rgb = sim.step_to_next_frame()  # advance to the next camera time (1/camera_rate), render
    sim.pose, sim.time                 # (x m, y m, yaw rad), s

Time is kept in integer nanoseconds, so runs are bit-identical for the same commands and seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pilotnet_brains.circuits import Circuit, CircuitLike, as_circuit
from pilotnet_brains.sim.kinematics import Pose, integrate
from pilotnet_brains.sim.render import CameraConfig, Renderer
from pilotnet_brains.sim.walls import Walls


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings. Rates in Hz; noise in grey levels (0-255 scale)."""

    camera: CameraConfig | None = None   # None: f1_renault's camera at the circuit's camera height
    physics_rate: float = 1000.0   # Hz, like Gazebo's default max_step_size 0.001 s
    camera_rate: float = 20.0      # Hz, the F1 camera
    seed: int = 0                  # seeds visual variation and noise
    variation: bool = False        # seeded random colours/lighting per reset (dataset robustness)
    noise_std: float = 0.0         # per-frame Gaussian pixel noise (grey levels), 0 = none

    def __post_init__(self):
        if not self.physics_rate >= 100.0:
            raise ValueError(f"physics_rate {self.physics_rate} Hz: must be >= 100 Hz")
        if not 0 < self.camera_rate <= self.physics_rate:
            raise ValueError(f"camera_rate {self.camera_rate} Hz: must be > 0 and <= physics_rate")
        if self.noise_std < 0:
            raise ValueError(f"noise_std {self.noise_std}: must be >= 0")


class Simulator:
    """Planar-move car + camera on a circuit. See the module docstring for the API."""

    def __init__(self, circuit: CircuitLike, config: SimConfig | None = None, start_pose: Pose | None = None):
        self.circuit: Circuit = as_circuit(circuit)
        self.config = config or SimConfig()
        #: where reset() puts the car (x m, y m, yaw rad): the circuit's start pose unless given
        self.start_pose: Pose = tuple(float(v) for v in (start_pose if start_pose is not None
                                                         else self.circuit.start_pose))
        self.renderer = Renderer(self.circuit, self.config.camera)
        r = self.renderer
        self.walls = Walls(self.circuit, field=(r.field, (r._x0, r._y0), r._texel))
        #: wall contacts since the last reset (each a new touch after a free step)
        self.wall_contacts = 0
        self.in_contact = False
        self.physics_step_ns = int(round(1e9 / self.config.physics_rate))
        self.camera_period_ns = int(round(1e9 / self.config.camera_rate))
        self.episode = -1
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, pose: Pose | None = None, keep_time: bool = False) -> None:
        """Put the car at ``pose`` (default: :attr:`start_pose`) and zero the command; a new
        episode (new seeded visual variation when enabled). The clock restarts at 0 unless
        ``keep_time`` (the ROS node keeps /clock monotonic across resets)."""
        self.episode += 1
        self._pose: Pose = tuple(float(v) for v in (pose if pose is not None else self.start_pose))
        self.command: tuple[float, float] = (0.0, 0.0)
        if not keep_time or self.episode == 0:
            self.time_ns = 0
            self.frame_index = 0
        self.wall_contacts = 0
        self.in_contact = False
        seed = int(self.config.seed)
        self._noise_rng = np.random.default_rng([seed, self.episode, 1])
        if self.config.variation:
            self.renderer.set_look(self.renderer.base_look.varied(np.random.default_rng([seed, self.episode])))
        else:
            self.renderer.set_look(self.renderer.base_look)

    @property
    def pose(self) -> Pose:
        """(x m, y m, yaw rad) of the car in the world frame."""
        return self._pose

    @property
    def time(self) -> float:
        """Simulation time (s) since the last reset."""
        return self.time_ns * 1e-9

    def set_command(self, v: float, w: float) -> None:
        """Hold (v m/s forward, w rad/s yaw rate) from now on, like Gazebo's planar-move plugin."""
        self.command = (float(v), float(w))

    # ------------------------------------------------------------------ time
    def advance_to(self, t_ns: int) -> None:
        """Integrate the held command in physics steps until sim time ``t_ns`` (ns). The walls
        stop the car's footprint (see :class:`Walls`): it slides along a wall it touches at an
        angle and stops against one it meets head-on. Far from the walls for the whole interval
        (the car cannot reach them at its speed), no step is checked."""
        v, w = self.command
        step = self.physics_step_ns
        walls = self.walls if self.walls.present else None
        if walls is not None and walls.clear_for(self._pose, abs(v) * (t_ns - self.time_ns) * 1e-9):
            walls = None
        while self.time_ns < t_ns:
            dt_ns = min(step - self.time_ns % step, t_ns - self.time_ns)
            self._pose = integrate(self._pose, v, w, dt_ns * 1e-9)
            self.time_ns += dt_ns
            if walls is not None:
                self._pose, touching = walls.resolve(self._pose)
                if touching and not self.in_contact:
                    self.wall_contacts += 1
                self.in_contact = touching

    def step(self, dt: float) -> None:
        """Advance dt s (rounded to ns)."""
        self.advance_to(self.time_ns + int(round(dt * 1e9)))

    @property
    def next_frame_ns(self) -> int:
        """Sim time (ns) of the next camera frame."""
        return (self.frame_index + 1) * self.camera_period_ns

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """The camera frame (480x640x3 uint8 RGB) at the current pose."""
        return self.renderer.render(self._pose, out=out, noise_std=self.config.noise_std, rng=self._noise_rng)

    def step_to_next_frame(self, out: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Advance to the next camera time and render: returns (sim time s, rgb frame)."""
        self.advance_to(self.next_frame_ns)
        return self.take_frame(out)

    def take_frame(self, out: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Render the camera frame due now (sim time must be ``next_frame_ns``): (sim time s, rgb)."""
        if self.time_ns != self.next_frame_ns:
            raise RuntimeError(f"take_frame at {self.time_ns} ns: the next frame is due at {self.next_frame_ns} ns")
        self.frame_index += 1
        return self.time, self.render(out)
