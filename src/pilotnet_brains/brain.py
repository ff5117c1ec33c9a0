"""The brain's frame -> command pipeline, without ROS (the node in ``ros/brain_node.py`` is glue).

A camera frame (the fields of a sensor_msgs/Image) is decoded and validated, handed to a *policy*
in three timed stages (preprocess -> predict -> postprocess) and becomes a drive command (v m/s,
w rad/s). Nothing raises out of :meth:`Pipeline.process_image`: a frame the brain cannot use is
counted in ``bad_frames`` and answered by holding the last command; a NaN/inf command is counted in
``bad_outputs`` and answered by a stop (0, 0) (or by holding, with ``stop_on_bad_output=False``).

Policies are registered by name in :data:`BRAINS` (``pilotnet``: a PilotNet model through a backend
of :mod:`pilotnet_brains.backends`; ``explicit``: the classical red-line follower of
:mod:`pilotnet_brains.explicit`). Every one is built by ``make_brain(name, backend=..., model=...,
threads=...)`` and refuses to build with a :class:`BrainStartError` whose message names the
backend, the path and what to do.

Times are wall seconds from ``time.perf_counter``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from pilotnet_brains.preprocess import PreprocessError, Preprocessing, read_meta

#: The camera of the Gazebo F1 model (cameraL): width, height in pixels.
CAMERA_SIZE = (640, 480)


class BadFrame(PreprocessError):
    """A frame the brain cannot use: unknown encoding, wrong size, too little data."""


class BrainStartError(RuntimeError):
    """A brain that cannot start; the message names backend, path and what to install or do."""


# --------------------------------------------------------------------------------------------
# Decoding: sensor_msgs/Image fields -> HxWx3 uint8 RGB, zero-copy for rgb8.

def _rgb(a: np.ndarray) -> np.ndarray:
    return a


def _bgr(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)


def _rgba(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_RGBA2RGB)


def _bgra(a: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)


#: encoding -> (channels, converter to RGB). 8-bit colour encodings only.
ENCODINGS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "rgb8": (3, _rgb),
    "bgr8": (3, _bgr),
    "rgba8": (4, _rgba),
    "bgra8": (4, _bgra),
}


def decode_image(encoding: str, height: int, width: int, step: int, data: Any,
                 expected_size: tuple[int, int] | None = CAMERA_SIZE) -> np.ndarray:
    """The fields of a sensor_msgs/Image -> an (height, width, 3) uint8 RGB array.

    ``data`` is bytes (or any buffer); rgb8 is viewed without copying. ``expected_size`` is
    (width, height) in pixels, or None to accept any size. Raises :class:`BadFrame` saying what is
    wrong: an encoding not in :data:`ENCODINGS`, a size other than expected, a row step shorter
    than a row, or fewer bytes than ``step * height``.
    """
    conv = ENCODINGS.get(encoding)
    if conv is None:
        raise BadFrame(f"encoding {encoding!r} is not supported; publish one of {sorted(ENCODINGS)}")
    channels, to_rgb = conv
    if height <= 0 or width <= 0 or not len(data):
        raise BadFrame(f"empty image ({width}x{height}, {len(data)} bytes)")
    if expected_size is not None and (width, height) != tuple(expected_size):
        raise BadFrame(f"image is {width}x{height}; the brain expects {expected_size[0]}x{expected_size[1]}")
    row = width * channels
    if step < row:
        raise BadFrame(f"row step {step} is shorter than a {encoding} row of {width} pixels ({row} bytes)")
    if len(data) < step * height:
        raise BadFrame(f"image has {len(data)} bytes; {width}x{height} {encoding} with step {step} "
                       f"needs {step * height}")
    buf = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    img = buf[:, :row].reshape(height, width, channels)
    return to_rgb(img)


# --------------------------------------------------------------------------------------------
# Policies: preprocess -> predict -> postprocess.

class PilotNetPolicy:
    """A PilotNet model through a backend: preprocessing and output scaling from its sidecar.

    ``backend`` has ``predict(x float32 (N, 66, 200, 3)) -> (N, 2)`` normalized outputs.
    """

    def __init__(self, backend: Any, preprocessing: Preprocessing, label: str):
        self.backend = backend
        self.pre = preprocessing
        self.label = label
        self._x = np.zeros((1,) + preprocessing.input_shape, np.float32)
        self._small = np.zeros(preprocessing.input_shape, np.uint8)   # the resized frame, reused
        self._out = self._x[0]
        # A backend that reads the frame's bytes (native_int8) gets the resized frame itself, resized
        # straight into its input buffer: no float frame.
        byte_input = getattr(backend, "byte_input", None)
        self._bytes = byte_input() if byte_input is not None and preprocessing.bytes_in else None
        if self._bytes is not None:
            self._small = self._bytes[0]

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """The network input of one frame: float32 (1, 66, 200, 3), or for a backend that reads bytes
        the resized uint8 frame (1, 66, 200, 3) (:meth:`predict` takes either)."""
        if self._bytes is not None:
            self.pre.resize(rgb, out=self._small)
            return self._bytes
        self.pre.image(rgb, out=self._out, scratch=self._small)
        return self._x

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            return self.backend.predict_bytes(x)
        return self.backend.predict(x)

    def postprocess(self, p: np.ndarray) -> tuple[float, float]:
        p = np.asarray(p).reshape(-1)
        if p.size < 2:
            return math.nan, math.nan
        pre = self.pre   # Preprocessing.outputs on two Python floats (float64, as it computes): no arrays
        return float(p[0]) * pre.v_scale + pre.v_offset, float(p[1]) * pre.w_scale + pre.w_offset

    def describe(self) -> dict[str, Any]:
        d = {"brain": "pilotnet", "label": self.label, "preprocessing": self.pre.to_dict()}
        try:
            d["backend"] = self.backend.describe()
        except Exception as e:  # describe() is informative only
            d["backend"] = {"error": str(e)}
        return d


def _model_path(backend: Any, model: str | None) -> str | None:
    """The artifact the backend loaded: the given path, or the one it resolved by default."""
    if model:
        return model
    for attr in ("path", "model_path"):
        p = getattr(backend, attr, None)
        if p:
            return str(p)
    try:
        p = backend.describe().get("path")
    except Exception:
        p = None
    return str(p) if p else None


def make_pilotnet(backend: str = "tflite_int8", model: str = "", threads: int = 1,
                  **_: Any) -> PilotNetPolicy:
    """Load ``backend`` (a name of the backend registry) with ``model`` (empty: its default
    artifact under models/) and ``threads``; preprocessing comes from the model's sidecar."""
    where = f"backend {backend!r}, model {model or '(the backend default)'}"
    try:
        from pilotnet_brains.backends import load_backend
    except ImportError as e:
        raise BrainStartError(f"pilotnet brain cannot start ({where}): the backends package does "
                              f"not import: {e}") from None
    try:
        b = load_backend(backend, path=model or None, threads=int(threads))
    except Exception as e:
        raise BrainStartError(f"pilotnet brain cannot start ({where}): {e}") from None
    path = _model_path(b, model)
    try:
        meta = read_meta(path) if path else None
    except Exception as e:
        raise BrainStartError(f"pilotnet brain cannot start ({where}): {e}") from None
    pre = meta.preprocessing if meta is not None else Preprocessing()
    label = backend if not model else f"{backend}:{os.path.basename(os.path.normpath(model))}"
    policy = PilotNetPolicy(b, pre, label)
    _check_model(policy, where, path)
    return policy


def _check_model(policy: PilotNetPolicy, where: str, path: str | None) -> None:
    """One black camera frame through preprocess -> predict -> postprocess, so a model that cannot
    take what its sidecar's preprocessing makes (wrong input shape) or answer it with (v, w) (wrong
    output shape) refuses to start instead of failing on every frame."""
    frame = np.zeros((CAMERA_SIZE[1], CAMERA_SIZE[0], 3), np.uint8)
    shape = (1,) + policy.pre.input_shape
    try:
        out = np.asarray(policy.predict(policy.preprocess(frame)))
    except Exception as e:
        raise BrainStartError(
            f"pilotnet brain cannot start ({where}): the model does not take the input its sidecar's "
            f"preprocessing makes, float32 {shape} ({type(e).__name__}: {str(e).strip()[:300]}); use a model "
            f"built for that input, or fix the preprocessing in {path}.meta.json") from None
    if out.size < 2:
        raise BrainStartError(
            f"pilotnet brain cannot start ({where}): the model answers {shape} with {out.size} value(s) "
            f"(shape {out.shape}); a PilotNet model outputs 2 (v, w)")


def make_explicit(camera_height: float | None = None, **_: Any) -> Any:
    """The classical red-line follower (needs no model; backend/model/threads are ignored).
    ``camera_height`` (m) overrides the F1 camera's mounting height (sim.render.CameraConfig)."""
    from pilotnet_brains.explicit import CameraGeometry, ExplicitBrain
    from pilotnet_brains.sim.render import CameraConfig

    config = CameraConfig() if camera_height is None else CameraConfig(mount_height=float(camera_height))
    return ExplicitBrain(CameraGeometry(config))


#: Brain name -> factory(backend=, model=, threads=, camera_height=) -> policy; each factory ignores
#: the keywords it does not use. The node and tools read this table.
BRAINS: dict[str, Callable[..., Any]] = {
    "pilotnet": make_pilotnet,
    "explicit": make_explicit,
}


def make_brain(name: str, **kwargs: Any) -> Any:
    """Build the policy registered as ``name`` in :data:`BRAINS`."""
    factory = BRAINS.get(name)
    if factory is None:
        raise BrainStartError(f"unknown brain {name!r}; choose one of {sorted(BRAINS)}")
    return factory(**kwargs)


# --------------------------------------------------------------------------------------------
# The pipeline.

@dataclass
class Step:
    """What one frame produced. ``status``: ok | bad_frame | bad_output."""

    status: str
    v: float = 0.0               # m/s, the command to publish
    w: float = 0.0               # rad/s
    preprocess_time: float = 0.0  # wall s (decode included)
    inference_time: float = 0.0   # wall s around the policy's predict only
    postprocess_time: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Pipeline:
    """Frame -> command, with counters. Not thread-safe: one worker calls it.

    ``policy`` has ``label``, ``preprocess(rgb)``, ``predict(x)`` and ``postprocess(p) -> (v, w)``.
    ``expected_size`` (width, height) pixels, or None for any size the policy accepts.
    """

    def __init__(self, policy: Any, expected_size: tuple[int, int] | None = CAMERA_SIZE,
                 stop_on_bad_output: bool = True):
        self.policy = policy
        self.label = getattr(policy, "label", type(policy).__name__)
        self.expected_size = tuple(expected_size) if expected_size else None
        self.stop_on_bad_output = stop_on_bad_output
        self.iterations = 0      # frames processed into a command (bad outputs included)
        self.bad_frames = 0
        self.bad_outputs = 0
        self.last_command = (0.0, 0.0)

    def process_image(self, encoding: str, height: int, width: int, step: int, data: Any) -> Step:
        """sensor_msgs/Image fields -> :class:`Step`. Never raises for a bad frame."""
        t0 = time.perf_counter()
        try:
            rgb = decode_image(encoding, height, width, step, data, self.expected_size)
        except BadFrame as e:
            return self._bad_frame(str(e))
        return self._run(rgb, t0)

    def process(self, rgb: np.ndarray) -> Step:
        """An HxWx3 uint8 RGB array -> :class:`Step`."""
        t0 = time.perf_counter()
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            return self._bad_frame(f"expected an HxWx3 uint8 RGB array, got "
                                   f"{getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', type(rgb))}")
        if self.expected_size is not None and (rgb.shape[1], rgb.shape[0]) != self.expected_size:
            return self._bad_frame(f"image is {rgb.shape[1]}x{rgb.shape[0]}; the brain expects "
                                   f"{self.expected_size[0]}x{self.expected_size[1]}")
        return self._run(rgb, t0)

    def _bad_frame(self, why: str) -> Step:
        self.bad_frames += 1
        v, w = self.last_command
        return Step("bad_frame", v, w, error=why)

    def _run(self, rgb: np.ndarray, t0: float) -> Step:
        pol = self.policy
        try:
            x = pol.preprocess(rgb)
        except PreprocessError as e:
            return self._bad_frame(str(e))
        except Exception as e:  # a frame the policy cannot digest is a bad frame, not a dead node
            return self._bad_frame(f"the {self.label} brain could not preprocess the frame: "
                                   f"{type(e).__name__}: {e}")
        t1 = time.perf_counter()
        error = ""
        try:
            p = pol.predict(x)
            t2 = time.perf_counter()
            v, w = pol.postprocess(p)
        except Exception as e:  # a failing model must stop the car, not kill the node
            t2 = time.perf_counter()
            v = w = math.nan
            error = f"the {self.label} brain failed on a frame: {type(e).__name__}: {e}"
        self.iterations += 1
        if not (math.isfinite(v) and math.isfinite(w)):
            self.bad_outputs += 1
            if self.stop_on_bad_output:
                self.last_command = (0.0, 0.0)
            v, w = self.last_command
            t3 = time.perf_counter()
            return Step("bad_output", v, w, t1 - t0, t2 - t1, t3 - t2,
                        error=error or f"the {self.label} brain produced a non-finite command")
        self.last_command = (v, w)
        t3 = time.perf_counter()
        return Step("ok", v, w, t1 - t0, t2 - t1, t3 - t2)

    def stop(self) -> tuple[float, float]:
        """Forget the held command (the watchdog stopped the car)."""
        self.last_command = (0.0, 0.0)
        return self.last_command
