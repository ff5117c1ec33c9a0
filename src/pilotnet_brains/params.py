"""The ``~params`` of the ROS nodes: one dataclass per node holds each param's default and meaning.

A node reads every field of its dataclass from ``~<field>`` (:func:`read_params`) and its
``--help`` lists them (:func:`params_help`); the launch files are the only other place a default
is written, and test/unit/test_launch.py checks that they agree. The simulator node's params
take their defaults from :class:`pilotnet_brains.sim.SimConfig` and its camera's; the lap metrics node also
reads :class:`pilotnet_brains.metrics.LapLimits` this way. No ROS import: the pre-launch checks
(:mod:`pilotnet_brains.preflight`) read the launch arguments with the same dataclasses.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, TypeVar

import pilotnet_brains.topics as names
from pilotnet_brains.sim import CameraConfig, SimConfig

T = TypeVar("T")

#: The simulator's time modes.
MODES = ("realtime", "lockstep")
DEFAULT_CIRCUIT = "simple_circuit"


def param(default: Any, help: str) -> Any:
    """A dataclass field that is a ``~param``: its default and what it means (shown by ``--help``)."""
    return field(default=default, metadata={"help": help})


def _convert(name: str, default: Any, value: Any) -> Any:
    """``value`` as the type of ``default``. "true"/"false" strings are bools (as roslaunch reads
    them); None is "" for a str param."""
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.strip().lower() not in ("true", "false"):
                raise ValueError(f"~{name} {value!r}: use true or false")
            return value.strip().lower() == "true"
        return bool(value)
    if isinstance(default, str):
        return "" if value is None else str(value)
    if isinstance(default, tuple):
        return tuple(value)
    return type(default)(value)


def read_params(defaults: T, get: Callable[[str, Any], Any]) -> T:
    """``defaults`` (a dataclass instance) with every field read as ``get(name, default)``, converted
    to the default's type: e.g. ``read_params(SimParams(), ros_params)``, or a mapping's ``.get``
    for launch arguments."""
    values = {}
    for f in fields(defaults):
        default = getattr(defaults, f.name)
        values[f.name] = _convert(f.name, default, get(f.name, default))
    return replace(defaults, **values)


def ros_params(name: str, default: Any) -> Any:
    """The node's private param ``~name`` (a ``get`` for :func:`read_params`)."""
    import rospy

    return rospy.get_param("~" + name, default)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(value)
    return '""' if value == "" else str(value)


def params_help(*defaults: Any) -> str:
    """The ``~params:`` section of a node's ``--help``: each field of the ``defaults`` dataclasses
    (or instances) with its type, default and meaning."""
    lines = ["~params:"]
    for d in defaults:
        for f in fields(d):
            default = getattr(d, f.name)
            kind = "list" if isinstance(default, tuple) else type(default).__name__
            head = f"~{f.name} ({kind}, default {_shown(default)}): "
            lines += textwrap.wrap(head + f.metadata["help"], 100, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


@dataclass(frozen=True)
class SimParams:
    """f1_sim's ~params."""

    circuit: str = param(DEFAULT_CIRCUIT, 'circuit name or path to a circuit .yaml (+ "_reverse": the other '
                                          "way round, e.g. montreal_reverse; prefer this to ~reverse so the "
                                          "metrics node sees the same direction)")
    reverse: bool = param(False, "drive the circuit the other way round")
    start_s: float = param(-1.0, "start (and reset) on the centerline at this arc length (m, along the driving "
                                 "direction, after ~reverse), heading along the lap; < 0 = the circuit's start pose")
    mode: str = param("realtime", " | ".join(MODES))
    rtf: float = param(1.0, "realtime mode: target real-time factor (sim s per wall s; > 1 = faster)")
    seed: int = param(SimConfig.seed, "seed of the visual variation and noise")
    physics_rate: float = param(SimConfig.physics_rate, "Hz, kinematics integration (>= 100)")
    camera_rate: float = param(SimConfig.camera_rate, "Hz (sim time) of the camera")
    odom_rate: float = param(20.0, "Hz (sim time) of the odometry")
    clock_rate: float = param(100.0, "realtime mode: Hz (sim time) of /clock (lockstep publishes it at the "
                                     "frame and odometry instants only)")
    lockstep_timeout: float = param(1.0, "wall s to wait for a command after each frame in lockstep mode")
    lockstep_startup_timeout: float = param(60.0, "wall s to wait for the first camera subscriber in lockstep mode")
    wait_for_odom_subscriber: float = param(0.0, "lockstep: then also wait up to this many wall s for "
                                                 "subscribers of odometry and camera_info (the lap metrics) "
                                                 "before sim time starts; 0 = don't (circuit.launch sets it)")
    camera_height: str = param("", 'camera height above the road (m); "" = the circuit\'s (f1_renault\'s 0.10)')
    camera_forward: float = param(CameraConfig.mount_forward, "camera position ahead of the car origin (m)")
    camera_left: float = param(CameraConfig.mount_left, "camera position left of the car origin (m)")
    camera_frame: str = param("cameraL", "frame_id of image and camera_info")
    noise_std: float = param(SimConfig.noise_std, "Gaussian pixel noise (grey levels)")
    variation: bool = param(SimConfig.variation, "seeded random colours/lighting per reset")
    render_threads: int = param(1, "OpenCV threads for rendering (1: leaves the other cores to the brain)")
    headless: bool = param(True, "false opens a top-down viewer window")
    topdown_png: str = param("", "path of a top-down PNG of the car on the map, rewritten every "
                                 '~topdown_period wall s ("" = none)')
    topdown_period: float = param(2.0, "wall s between PNG updates")

    def check(self) -> None:
        """ValueError naming the param unless ``mode`` is one of :data:`MODES` and ``rtf`` > 0."""
        if self.mode not in MODES:
            raise ValueError(f"~mode {self.mode!r}: use one of {list(MODES)}")
        if not self.rtf > 0:
            raise ValueError(f"~rtf {self.rtf}: must be > 0")


@dataclass(frozen=True)
class BrainParams:
    """A brain node's ~params (``~brain``'s default is the executable's)."""

    brain: str = param("pilotnet", "the policy, from brain.BRAINS: pilotnet | explicit")
    backend: str = param("tflite_int8", "inference backend for the pilotnet brain")
    model: str = param("", "model file; empty = the backend's default artifact under models/")
    threads: int = param(1, "inference threads")
    camera_height: str = param("", 'explicit brain only: the camera\'s height above the ground (m; match the '
                                   'simulator\'s camera_height); "" = the F1 camera\'s')
    watchdog_timeout: float = param(1.0, "wall s without a usable frame (after the first one) before a stop "
                                         "command (0, 0) is published (logged once per stall), whether frames "
                                         "stopped coming or keep coming unusable (bad frames, failed "
                                         "inference); 0 disables it")
    stop_on_bad_output: bool = param(True, "a NaN/inf command stops the car (else holds the last)")
    wait_for_stats_subscriber: float = param(0.0, "wall s to wait, before subscribing the camera, for a "
                                                  "subscriber of /brain/stats (the metrics node), so no "
                                                  "answered frame goes unmeasured; 0 subscribes at once "
                                                  "(circuit.launch sets it)")
    image_width: int = param(640, "the frame width (px) the brain accepts; 0 (or ~image_height 0) accepts any size")
    image_height: int = param(480, "the frame height (px) the brain accepts")

    def brain_kwargs(self) -> dict[str, Any]:
        """``make_brain``'s keyword arguments: backend, model, threads (and camera_height when given)."""
        kwargs: dict[str, Any] = {"backend": self.backend, "model": self.model, "threads": self.threads}
        if self.camera_height != "":
            kwargs["camera_height"] = float(self.camera_height)
        return kwargs


@dataclass(frozen=True)
class MetricsParams:
    """lap_metrics' ~params besides its :class:`pilotnet_brains.metrics.LapLimits`."""

    circuit: str = param(DEFAULT_CIRCUIT, "circuit name or .yaml path (same geometry as the sim)")
    reverse: bool = param(False, "drive the circuit the other way")
    brain_timeout: float = param(5.0, "wall s: DNF brain_died after this long without BrainStats or commands "
                                      "(the brain process ending is detected within 50 ms)")
    startup_timeout: float = param(300.0, "wall s: DNF brain_died when no command ever comes")
    brain_node: str = param("/brain", "the brain node to watch; empty = don't watch the process")
    sim_node: str = param("/f1_sim", "the simulator node to watch; empty = don't. DNF sim_died when its "
                                     "process ends or no odometry comes for ~brain_timeout wall s (the "
                                     "brain then has no frame to answer: it is not blamed)")
    results_dir: str = param("", "parent of the run folder; empty = <package>/results, or "
                                 "~/.ros/pilotnet_brains/results when the package folder is not writable "
                                 "(an install)")
    run_id: str = param("", "run folder name, one plain name (letters, digits, . _ + -); empty = "
                            "<time>_<circuit>_<brain or backend> (-2, -3... when taken). The folder is "
                            "created exclusively: a run_id whose folder exists is refused, naming the "
                            "run that owns it")
    brain: str = param("", "the run's identity: the brain")
    backend: str = param("", "the run's identity: the backend (only for the pilotnet brain)")
    model: str = param("", "the run's identity: the model (hashed if a path)")
    threads: int = param(1, "the run's identity: inference threads")
    sim: str = param("", "the run's identity: the simulator")
    mode: str = param("", "the run's identity: the simulator mode")
    start_s: float = param(-1.0, "the run's identity: the start's arc length (m; < 0 = the circuit's start pose)")
    run_token: str = param("", "copied into ~run so the recorder of the same launch finds it")
    partial_period: float = param(2.0, "wall s: how often laps.json is rewritten during a lap")
    plots: bool = param(True, "write trajectory.png and profile.png at the end")


@dataclass(frozen=True)
class LiveViewParams:
    """live_view's ~params."""

    circuit: str = param(DEFAULT_CIRCUIT, "circuit name or .yaml path (as the simulator's)")
    reverse: bool = param(False, "the circuit driven the other way round")
    window: bool = param(True, "open the window (needs a display: without DISPLAY only the topic is published)")
    rate: float = param(10.0, "wall Hz: pictures per wall second (window and topic)")


@dataclass(frozen=True)
class RecorderParams:
    """record_run's ~params."""

    bag: str = param("", "bag path; empty = <run folder>/<~bag_name> with the run folder read from ~run_param")
    bag_name: str = param("run.bag", "file name inside the run folder")
    run_param: str = param("/lap_metrics/run", "parameter {dir, token} set by lap_metrics")
    run_token: str = param("", "the token that parameter must carry (this launch's)")
    wait: float = param(60.0, "wall s: how long to wait for that parameter")
    topics: tuple = param((names.ODOM, names.CLOCK, names.CMD_VEL, names.BRAIN_STATS, names.LAP_RESULTS,
                           names.CAMERA_INFO), "the topics recorded whole")
    camera_topic: str = param(names.CAMERA_IMAGE, "the camera, recorded every ~camera_every frames")
    camera_every: int = param(10, "keep every Nth camera frame; 0 = no camera")
    compression: str = param("lz4", "none | lz4 | bz2")
