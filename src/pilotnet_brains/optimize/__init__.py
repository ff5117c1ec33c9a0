"""The optimization methods: one function per method, registered by its backend name.

    from pilotnet_brains.optimize import build, METHODS
    path = build("tflite_int8", base=None, data="dataset/", out=None)   # defaults from the backend table

:func:`build` resolves the base model and output path from :data:`pilotnet_brains.backends.BACKENDS`,
runs the method (:mod:`pilotnet_brains.optimize.registry`: :data:`METHODS`, :func:`register_method`,
:class:`BuildContext`), moves the artifact into place only when the method succeeded and writes its
sidecar (method, parameters, parent sha256) -- nothing half-written is left on error.

Importing this package registers every method: post-training conversions (tflite, torch_methods,
onnx_methods, openvino_methods, native_methods, tftrt, tensorrt_method) and fine-tuning ones (tfmot_methods, torch_finetune; their
backend rows say ``needs == "training"``). The method modules import frameworks lazily, inside the
functions.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Any

from pilotnet_brains.backends.registry import base_model_path, get_spec

# the method modules register themselves in METHODS when imported
from pilotnet_brains.optimize import (  # noqa: F401
    native_methods,
    onnx_methods,
    openvino_methods,
    tensorrt_method,
    tflite,
    tfmot_methods,
    tftrt,
    torch_finetune,
    torch_methods,
)
from pilotnet_brains.optimize.calibration import CalibrationError, check_source
from pilotnet_brains.optimize.registry import (
    METHODS,
    BuildContext,
    Method,
    MethodRefused,
    OptimizeError,
    get_method,
    method_names,
    register_method,
)
from pilotnet_brains.util import companions

__all__ = ["METHODS", "BuildContext", "CalibrationError", "Method", "MethodRefused", "OptimizeError", "build",
           "get_method", "is_up_to_date", "method_names", "register_method"]

#: Sidecar ``framework`` of each runtime's artifacts.
FRAMEWORKS = {"tf_keras": "tf_keras", "litert": "tflite", "torch": "torchscript", "onnxruntime": "onnx",
              "tftrt": "tftrt", "tensorrt": "tensorrt", "openvino": "openvino",
              "pilotnet_native": "pilotnet_native"}


def artifact_path(name: str) -> str:
    """Default output path of method ``name`` (the backend's default artifact)."""
    return get_spec(name).default_path


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    for p in [path] + companions(path):
        if os.path.lexists(p):
            os.unlink(p)


def _versions() -> dict[str, str]:
    import sys

    out = {"python": sys.version.split()[0]}
    for mod in ("tensorflow", "tf_keras", "torch", "onnxruntime", "onnx", "openvino", "ai_edge_litert"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = str(getattr(m, "__version__", ""))
    return out


def is_up_to_date(name: str, base: str | None = None, out: str | None = None) -> bool:
    """True if the artifact exists with a sidecar whose parent hash matches the current base model
    and that was built with every parameter the method has now: a method that gained one (an
    option of how it converts, e.g. a graph rewrite) rebuilds its older artifacts."""
    from pilotnet_brains.preprocess import read_meta
    from pilotnet_brains.util import sha256_path

    method = get_method(name)
    out = out or artifact_path(name)
    base = base or base_model_path(method.parent)
    if not (os.path.exists(out) and os.path.exists(base)):
        return False
    try:
        meta = read_meta(out)
    except (OSError, ValueError):
        return False
    known = set(meta.extra.get("requested") or meta.extra.get("parameters") or {})
    return meta.parent == sha256_path(base) and set(method.defaults) <= known


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
    spec = method.spec
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
        requested = {k: v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)
                     for k, v in merged.items()}   # JSON as the sidecar is
        extra = {"parameters": used, "requested": requested, "base": base, "seconds": round(time.time() - t0, 2),
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
        for part, final in zip(companions(tmp), companions(out)):
            os.replace(part, final)
        from pilotnet_brains.preprocess import sidecar_path

        os.replace(tmp_meta, sidecar_path(out))
    finally:
        _remove(tmp)
        from pilotnet_brains.preprocess import sidecar_path

        _remove(sidecar_path(tmp))
    return out

