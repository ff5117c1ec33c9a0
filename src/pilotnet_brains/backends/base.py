"""The backend interface and its errors (no runtime imports here)."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from pilotnet_brains.models import INPUT_SHAPE, N_OUTPUTS


class BackendError(RuntimeError):
    """A backend that cannot be used; the message names the backend, the path and what to do."""


class UnknownBackend(BackendError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class ArtifactMissing(BackendError, FileNotFoundError):
    pass


class ArtifactCorrupt(BackendError, ValueError):
    pass


class RuntimeMissing(BackendError, ImportError):
    pass


class Unsupported(BackendError):
    """The machine lacks what the backend needs (GPU, TensorRT, TF-TRT, AMX-BF16)."""


class Backend:
    """One loaded model behind one runtime.

    Subclasses implement ``_load()`` (open ``self.path``) and ``_predict(x)``; the hot path is
    ``predict(x)`` with x float32 (N, 66, 200, 3) NHWC in [0, 1] -> float32 (N, 2) normalized outputs
    (always dequantized/float). Buffers are preallocated per batch size and reused.
    """

    #: runtime name and version, filled by subclasses in _load()
    runtime: str = ""
    runtime_version: str = ""

    def __init__(self, spec, path: str, threads: int = 1, **options: Any):
        self.spec = spec
        self.name = spec.name
        self.path = os.path.abspath(path)
        self.threads = int(threads)
        self.options = options
        self.meta = None
        self.load_seconds = 0.0
        t0 = time.perf_counter()
        self._load()
        self.load_seconds = time.perf_counter() - t0

    # -- to implement -------------------------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- interface ----------------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 66, 200, 3) -> float32 (N, 2). The returned array may be reused by the next call."""
        if x.dtype != np.float32 or x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
            x = np.ascontiguousarray(x, dtype=np.float32).reshape((-1,) + INPUT_SHAPE)
        return self._predict(x)

    def warmup(self, runs: int = 10, batch: int = 1, seed: int = 0) -> None:
        """Run ``runs`` predictions on random inputs so lazy initialisation is off the hot path."""
        x = np.random.default_rng(seed).random((batch,) + INPUT_SHAPE, dtype=np.float32)
        for _ in range(runs):
            self.predict(x)

    def describe(self) -> dict[str, Any]:
        from pilotnet_brains.util import path_size

        d = {"backend": self.name, "runtime": self.runtime, "runtime_version": self.runtime_version,
             "threads": self.threads, "path": self.path, "size_bytes": path_size(self.path),
             "artifact_kind": self.spec.artifact_kind, "load_seconds": round(self.load_seconds, 4),
             "method": getattr(self.meta, "method", None)}
        d.update(self._describe())
        return d

    def profile_step(self) -> None:
        """After a profiled call, outside its timing: keep what the runtime's profiler says of it
        (for runtimes that hold only the last call's; nothing to do for the others)."""

    def layer_times(self, skip: int = 0) -> list[tuple[str, str, list[float]]]:
        """Per-layer times (µs) of the profiled calls, as the runtime's own profiler reports them:
        [(node name, kind, [µs per call, ...]), ...] in execution order, the first ``skip`` calls left
        out. Only backends loaded with ``profile=True`` whose runtime has a per-node profiler (ONNX
        Runtime, OpenVINO; native_int8 times its steps inside its kernels) have them; call :meth:`profile_step` after each call."""
        raise Unsupported(f"backend {self.name!r} ({self.runtime}): no per-layer times; ONNX Runtime, "
                          f"OpenVINO and native_int8 backends have them (load them with profile=True)")

    def close(self) -> None:
        """Release the runtime objects (optional)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.path} threads={self.threads}>"


def read_meta_or_none(path: str):
    """The model's sidecar if there is one (a missing sidecar is the brain's concern, not the backend's)."""
    from pilotnet_brains.preprocess import read_meta, sidecar_path

    if not os.path.exists(sidecar_path(path)):
        return None
    return read_meta(path)


def output_buffer(n: int, cache: dict[int, np.ndarray]) -> np.ndarray:
    buf = cache.get(n)
    if buf is None:
        buf = cache[n] = np.empty((n, N_OUTPUTS), np.float32)
    return buf
