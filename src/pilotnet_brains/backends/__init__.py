"""Pluggable inference backends: one interface, one table (:data:`BACKENDS`), runtimes imported lazily.

    from pilotnet_brains.backends import load_backend, BACKENDS
    b = load_backend("tflite_int8", path=None, threads=1)   # default artifact models/build/tflite_int8.tflite
    y = b.predict(x)      # x float32 (N, 66, 200, 3) in [0, 1] -> float32 (N, 2) normalized (v, w)
    b.describe()          # runtime, version, threads, path, size...

Importing this package imports neither TensorFlow nor torch nor any other runtime.
"""
from __future__ import annotations

# the error classes and Backend (backends/base.py) come through the registry, which raises them
from pilotnet_brains.backends.registry import (
    BACKENDS,
    BASE_MODELS,
    RUNTIMES,
    ArtifactCorrupt,
    ArtifactMissing,
    Backend,
    BackendError,
    BackendSpec,
    RuntimeMissing,
    UnknownBackend,
    Unsupported,
    base_model_path,
    build_hint,
    get_spec,
    load_backend,
    register_backend,
    resolve_path,
)

__all__ = ["BACKENDS", "BASE_MODELS", "RUNTIMES", "ArtifactCorrupt", "ArtifactMissing", "Backend",
           "BackendError", "BackendSpec", "RuntimeMissing", "UnknownBackend", "Unsupported",
           "base_model_path", "build_hint", "get_spec", "load_backend", "register_backend", "resolve_path"]
