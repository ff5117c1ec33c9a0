"""Preprocessing and output scaling: the single source of truth for training, evaluation and brains.

A model's metadata sidecar (``<model path>.meta.json``) says how its inputs were prepared and how
its two outputs map to (v, w). Defaults follow Behavior Metrics' PilotNet brains and
DeepLearningStudio's labels: rgb8 640x480 -> crop rows 240:480 -> resize to 200x66 (w x h) with
bilinear interpolation -> float32 in [0, 1] (the network normalizes itself with a BatchNorm input
layer); outputs p in [0, 1] map to v = p0*17.5 + 6.5 m/s and w = p1*14.2 - 7.1 rad/s.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

#: Label ranges of the DeepLearningStudio dataset, in physical units.
V_RANGE = (6.5, 24.0)   # m/s
W_RANGE = (-7.1, 7.1)   # rad/s

_INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}

SIDECAR_SUFFIX = ".meta.json"


class PreprocessError(ValueError):
    """An image the brain cannot use (wrong encoding, size or empty data)."""


@dataclass(frozen=True)
class Preprocessing:
    """How a camera frame becomes the network input, and how outputs become (v, w).

    crop_top/crop_bottom are image rows (pixels) kept from the 640x480 frame; width/height are the
    network input size; pixels are scaled by ``scale`` then standardized by mean/std (per channel).
    Outputs: v = p0 * v_scale + v_offset (m/s), w = p1 * w_scale + w_offset (rad/s).
    """

    crop_top: int = 240
    crop_bottom: int = 480
    width: int = 200
    height: int = 66
    interpolation: str = "linear"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    v_scale: float = V_RANGE[1] - V_RANGE[0]
    v_offset: float = V_RANGE[0]
    w_scale: float = W_RANGE[1] - W_RANGE[0]
    w_offset: float = W_RANGE[0]

    def __post_init__(self):
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r}: use one of {sorted(_INTERPOLATIONS)}")
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        # Fold scale, mean and std into one multiply-add: x * a + b.
        object.__setattr__(self, "_a", (self.scale / std).astype(np.float32))
        object.__setattr__(self, "_b", (-mean / std).astype(np.float32))
        object.__setattr__(self, "_interp", _INTERPOLATIONS[self.interpolation])
        object.__setattr__(self, "_identity_norm", bool(np.all(mean == 0) and np.all(std == 1)))

    @property
    def bytes_in(self) -> bool:
        """Is the network input the resized frame's bytes / 255 (no mean, no std)? Then a backend
        that reads bytes can take the resized frame itself (:meth:`resize`)."""
        return self._identity_norm and self.scale == 1.0 / 255.0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Network input, NHWC without the batch axis."""
        return (self.height, self.width, 3)

    def image(self, rgb: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
        """rgb8 frame (H, W, 3) uint8 -> float32 (height, width, 3). ``out`` is reused when given, and
        so is ``scratch`` (uint8 (height, width, 3)) for the resized frame: a caller that preprocesses
        every frame (the brain) then allocates nothing."""
        small = self.resize(rgb, scratch)
        if out is None:
            out = np.empty(self.input_shape, np.float32)
        if self._identity_norm:
            np.multiply(small, np.float32(self.scale), out=out, casting="unsafe")
        else:
            np.multiply(small, self._a, out=out, casting="unsafe")
            out += self._b
        return out

    def resize(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """rgb8 frame (H, W, 3) uint8 -> the cropped and resized uint8 (height, width, 3), into ``out``
        when given."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise PreprocessError(f"expected an HxWx3 uint8 rgb image, got shape {rgb.shape} {rgb.dtype}")
        if rgb.shape[0] < self.crop_bottom:
            raise PreprocessError(f"image has {rgb.shape[0]} rows; cropping needs {self.crop_bottom}")
        return cv2.resize(rgb[self.crop_top:self.crop_bottom], (self.width, self.height), dst=out,
                          interpolation=self._interp)

    def labels(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Physical (v m/s, w rad/s) -> normalized targets (N, 2) float32, the inverse of outputs()."""
        v = np.asarray(v, np.float64)
        w = np.asarray(w, np.float64)
        return np.stack([(v - self.v_offset) / self.v_scale, (w - self.w_offset) / self.w_scale],
                        axis=-1).astype(np.float32)

    def outputs(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalized network outputs (..., 2) -> (v m/s, w rad/s)."""
        p = np.asarray(p, np.float64)
        return p[..., 0] * self.v_scale + self.v_offset, p[..., 1] * self.w_scale + self.w_offset

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        return cls(**d)


DEFAULT = Preprocessing()


@dataclass
class ModelMeta:
    """The metadata sidecar that travels with every model file (``<path>.meta.json``)."""

    framework: str                       # tf_keras, tflite, torchscript, onnx, tftrt, tensorrt
    method: str                          # the backend/optimization name that made it, e.g. tflite_int8
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    parent: str = ""                     # sha256 of the model this one was derived from
    dataset: str = ""                    # sha256 of the training data listing
    extra: dict[str, Any] = field(default_factory=dict)   # method parameters, training command, MSE...

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "framework": self.framework, "method": self.method,
                "preprocessing": self.preprocessing.to_dict(), "parent": self.parent,
                "dataset": self.dataset, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        try:
            return cls(framework=d["framework"], method=d["method"],
                       preprocessing=Preprocessing.from_dict(d.get("preprocessing", {})),
                       parent=d.get("parent", ""), dataset=d.get("dataset", ""),
                       extra=dict(d.get("extra", {})))
        except KeyError as e:
            raise ValueError(f"metadata lacks the key {e}") from None


def sidecar_path(model_path: str) -> str:
    return os.path.normpath(model_path) + SIDECAR_SUFFIX


def read_meta(model_path: str) -> ModelMeta:
    """Read a model's sidecar; a clear error says which file is missing or wrong."""
    path = sidecar_path(model_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no metadata sidecar {path} beside the model {model_path}: write one "
                                f"(see pilotnet_brains.preprocess.ModelMeta) to use a model from elsewhere")
    try:
        with open(path) as f:
            return ModelMeta.from_dict(json.load(f))
    except (ValueError, TypeError) as e:
        raise ValueError(f"metadata sidecar {path} is invalid: {e}") from None


def write_meta(model_path: str, meta: ModelMeta) -> str:
    from pilotnet_brains.util import atomic_write_text

    path = sidecar_path(model_path)
    atomic_write_text(path, json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")
    return path
