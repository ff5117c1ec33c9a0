"""The optimization methods: one function per method, registered by its backend name.

    from pilotnet_brains.optimize import build, METHODS
    path = build("tflite_int8", base=None, data="dataset/", out=None)   # defaults from the backend table

A method is a function ``fn(ctx: BuildContext) -> dict`` that writes its artifact to ``ctx.out``
(a temporary path with the right suffix) and returns the parameters it used. :func:`build` resolves
the base model and output path from :data:`pilotnet_brains.backends.BACKENDS`, moves the artifact
into place only when the method succeeded and writes its sidecar (method, parameters, parent sha256)
-- nothing half-written is left on error.

Registry: :data:`METHODS` (name -> :class:`Method`), filled with :func:`register_method`. This module
registers every method that needs no fine-tuning; the fine-tuning methods (tfmot pruning, QAT,
clustering; torch QAT and pruning) are added by registering more functions the same way -- their
backend rows already exist (``needs == "training"``) and ``ctx.training_arrays()`` gives them the
training set.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pilotnet_brains.backends.registry import BACKENDS, base_model_path, get_spec
from pilotnet_brains.optimize.calibration import CalibrationError, check_source, load_representative

#: Sidecar ``framework`` of each runtime's artifacts.
FRAMEWORKS = {"tf_keras": "tf_keras", "litert": "tflite", "torch": "torchscript", "onnxruntime": "onnx",
              "tftrt": "tftrt", "tensorrt": "tensorrt"}


class OptimizeError(RuntimeError):
    """A method that cannot run; the message names the method, the path and what to do."""


class MethodRefused(OptimizeError):
    """This machine cannot run the method (no GPU / TensorRT / TF-TRT)."""


@dataclass
class Method:
    name: str                                   # == the backend name it builds
    func: Callable[[BuildContext], dict[str, Any]]
    parent: str                                 # base framework: "tf_keras" or "torch"
    needs: str = ""                             # "", "calibration" or "training"
    defaults: dict[str, Any] = field(default_factory=dict)
    unsupported: Callable[[], str] | None = None
    doc: str = ""

    def missing(self) -> str:
        return self.unsupported() if self.unsupported else ""


#: method name -> Method. Every name is also a backend name (BACKENDS).
METHODS: dict[str, Method] = {}


def register_method(name: str, needs: str | None = None, **defaults: Any):
    """Decorator: register ``fn(ctx) -> params`` as the builder of backend ``name``.

    ``needs`` defaults to the backend row's ``needs``; ``defaults`` are the method's parameters
    (overridable from :func:`build`'s ``params``)."""
    spec = get_spec(name)

    def deco(fn):
        METHODS[name] = Method(name, fn, spec.parent, spec.needs if needs is None else needs, dict(defaults),
                               spec.unsupported, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


@dataclass
class BuildContext:
    """What a method gets: base model path, temporary output path, data source and parameters."""

    method: str
    base: str
    out: str
    data: str | None
    params: dict[str, Any]
    progress: bool = True
    notes: list[str] = field(default_factory=list)
    _calibration: np.ndarray | None = None

    def calibration(self, n: int | None = None) -> np.ndarray:
        """Representative preprocessed frames float32 (n, 66, 200, 3) from ``data`` (cached)."""
        n = int(n or self.params.get("calibration_frames", 100))
        if self._calibration is None or len(self._calibration) < n:
            self._calibration = load_representative(self.data, n, seed=int(self.params.get("seed", 0)),
                                                     progress=self.progress, prep=self.preprocessing())
            if self.data is None or str(self.data).startswith("synthetic"):
                self.notes.append("smoke build: calibrated on synthetic frames, not on driving data")
        return self._calibration[:n]

    def preprocessing(self):
        """The base model's preprocessing (its sidecar), default if it has none."""
        from pilotnet_brains.preprocess import DEFAULT, read_meta

        try:
            return read_meta(self.base).preprocessing
        except (OSError, ValueError):
            return DEFAULT

    def training_arrays(self):
        """(X, Y) of the training data folder, for the fine-tuning methods."""
        from pilotnet_brains.dataset import load_arrays, read_dataset

        if not self.data or not os.path.isdir(self.data):
            raise OptimizeError(f"method {self.method!r} fine-tunes the model: pass --data DIR, a dataset "
                                f"in the DeepLearningStudio layout")
        return load_arrays(read_dataset(self.data), prep=self.preprocessing(), progress=self.progress)


def artifact_path(name: str) -> str:
    """Default output path of method ``name`` (the backend's default artifact)."""
    return get_spec(name).default_path


def method_names() -> list[str]:
    """Registered methods in the backend table's order."""
    return [n for n in BACKENDS if n in METHODS] + [n for n in METHODS if n not in BACKENDS]


def get_method(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    if name in BACKENDS:
        raise OptimizeError(f"backend {name!r} has no build method registered yet (its method needs "
                            f"{BACKENDS[name].needs or 'nothing'}); registered methods: {', '.join(method_names())}")
    raise OptimizeError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _versions() -> dict[str, str]:
    import sys

    out = {"python": sys.version.split()[0]}
    for mod in ("tensorflow", "tf_keras", "torch", "onnxruntime", "onnx", "ai_edge_litert"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = str(getattr(m, "__version__", ""))
    return out


def is_up_to_date(name: str, base: str | None = None, out: str | None = None) -> bool:
    """True if the artifact exists with a sidecar whose parent hash matches the current base model."""
    from pilotnet_brains.preprocess import read_meta
    from pilotnet_brains.util import sha256_path

    method = get_method(name)
    out = out or artifact_path(name)
    base = base or base_model_path(method.parent)
    if not (os.path.exists(out) and os.path.exists(base)):
        return False
    try:
        return read_meta(out).parent == sha256_path(base)
    except (OSError, ValueError):
        return False


def build(name: str, base: str | None = None, data: str | None = None, out: str | None = None,
          progress: bool = True, **params: Any) -> str:
    """Build the artifact of method ``name``; returns its path.

    base: parent model (default: the base model of the method's framework under models/).
    data: representative/training data: a DLS folder, a .npy of preprocessed frames, or
    ``synthetic[:N]`` (smoke builds and tests). out: artifact path (default: the backend's).
    params: method parameters (see ``METHODS[name].defaults``).
    """
    from pilotnet_brains.preprocess import ModelMeta, read_meta, write_meta
    from pilotnet_brains.util import sha256_path

    method = get_method(name)
    reason = method.missing()
    if reason:
        raise MethodRefused(f"method {name!r} cannot run on this machine; missing: {reason}")
    spec = get_spec(name)
    base = os.path.abspath(base or base_model_path(method.parent))
    if not os.path.exists(base):
        raise OptimizeError(f"method {name!r}: base model {base} does not exist; train it (make models) or "
                            f"write a random-weight smoke model with `scripts/optimize --init-random-base`")
    if method.needs and data is None:
        raise OptimizeError(f"method {name!r} needs {method.needs} data: pass --data DIR (DeepLearningStudio "
                            f"layout: <int>.png + data.csv), --data FRAMES.npy (preprocessed float32 "
                            f"(N, 66, 200, 3)) or --data synthetic for a smoke build")
    if method.needs == "calibration":
        check_source(data)
    out = os.path.abspath(out or spec.default_path)
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(out)}.{os.getpid()}.partial{spec.suffix}")
    _remove(tmp)
    merged = dict(method.defaults)
    merged.update(params)
    ctx = BuildContext(name, base, tmp, data, merged, progress)
    t0 = time.time()
    try:
        try:
            used = method.func(ctx) or {}
        except (OptimizeError, CalibrationError):
            raise
        except ImportError as e:
            raise OptimizeError(f"method {name!r} needs a Python package that does not import ({e}); "
                                f"install it: pip install {spec.pip}") from e
        except Exception as e:
            raise OptimizeError(f"method {name!r} failed on {base}: {type(e).__name__}: {e}") from e
        if not os.path.exists(tmp):
            raise OptimizeError(f"method {name!r} wrote no artifact (expected {tmp})")
        try:
            parent_meta = read_meta(base)
        except (OSError, ValueError):
            parent_meta = ModelMeta(framework=method.parent, method="unknown")
        extra = {"parameters": used, "base": base, "seconds": round(time.time() - t0, 2),
                 "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": _versions()}
        if ctx.notes:
            extra["notes"] = ctx.notes
            extra["smoke"] = any(n.startswith("smoke") for n in ctx.notes)
        if data is not None:
            extra["data"] = str(data)
        for k in ("quantized_engine",):
            if k in used:
                extra[k] = used[k]
        meta = ModelMeta(framework=FRAMEWORKS[spec.runtime], method=name,
                         preprocessing=parent_meta.preprocessing, parent=sha256_path(base),
                         dataset=parent_meta.dataset, extra=extra)
        tmp_meta = write_meta(tmp, meta)
        if os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
        from pilotnet_brains.preprocess import sidecar_path

        os.replace(tmp_meta, sidecar_path(out))
    finally:
        _remove(tmp)
        from pilotnet_brains.preprocess import sidecar_path

        _remove(sidecar_path(tmp))
    return out


# Register the methods (their modules import frameworks lazily, inside the functions).
# Fine-tuning methods (need the training data): tfmot_methods, torch_finetune.
from pilotnet_brains.optimize import (  # noqa: E402,F401
    onnx_methods,
    tensorrt_method,
    tflite,
    tfmot_methods,
    tftrt,
    torch_finetune,
    torch_methods,
)
