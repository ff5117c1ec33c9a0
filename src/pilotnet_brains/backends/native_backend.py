"""PilotNet int8 on the package's own AVX-512 VNNI kernels (:mod:`pilotnet_brains.native`).

One thread whatever ``threads`` says (a 0.1 ms call is shorter than waking a second core); frames
of a batch run one after the other. Options: ``kernels`` ("amx" or "vnni"; default the fastest this
CPU has), ``profile`` (per-layer times measured inside the kernels, for ``scripts/profile_layers``).
The brain hands it the resized frame's bytes (:meth:`NativeBackend.predict_bytes`, resized straight
into :meth:`NativeBackend.byte_input`): no float frame is made.
"""
from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

from pilotnet_brains.backends.base import (
    ArtifactCorrupt,
    Backend,
    Unsupported,
    output_buffer,
    read_meta_or_none,
)
from pilotnet_brains.models import INPUT_SHAPE


class NativeBackend(Backend):
    runtime = "pilotnet_native"

    def _load(self) -> None:
        from pilotnet_brains import native

        self.meta = read_meta_or_none(self.path)
        try:
            with np.load(self.path, allow_pickle=False) as f:
                art = {k: f[k] for k in f.files}
            native.check(art)
        except (OSError, ValueError, zipfile.BadZipFile, native.NativeError) as e:
            raise ArtifactCorrupt(f"backend {self.name!r}: {self.path} is not a readable {native.FORMAT} "
                                  f"artifact ({type(e).__name__}: {e}); rebuild it with scripts/optimize "
                                  f"{self.name}") from e
        try:
            self._net = native.NativeNet(art, kernels=self.options.get("kernels"))
        except native.NativeError as e:
            raise Unsupported(f"backend {self.name!r}: {e}") from e
        self.runtime_version = f"{native.FORMAT}, {self._net.kernels} kernels"
        self._outs: dict[int, np.ndarray] = {}
        self._profile = bool(self.options.get("profile"))
        self._times: list[np.ndarray] = []

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = output_buffer(len(x), self._outs)
        x = np.ascontiguousarray(x)
        for i in range(len(x)):
            out[i] = self._net.forward(x[i], self._profile)
        return out

    def byte_input(self) -> np.ndarray:
        """uint8 (1, 66, 200, 3): the kernels' own input buffer; a frame resized into it is read in place."""
        return self._net.input_bytes_view()[None]

    def predict_bytes(self, q: np.ndarray) -> np.ndarray:
        """uint8 frames (N, 66, 200, 3) (the resized camera bytes) -> float32 (N, 2): the same outputs
        as predict(q / 255), without the float frame."""
        if q.dtype != np.uint8 or q.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"expected uint8 frames (N, 66, 200, 3), got {q.dtype} {q.shape}")
        out = output_buffer(len(q), self._outs)
        for i in range(len(q)):
            out[i] = self._net.forward_bytes(q[i], self._profile)
        return out

    def _describe(self) -> dict[str, Any]:
        return {"kernels": self._net.kernels}

    def profile_step(self) -> None:
        if self._profile:
            self._times.append(self._net.step_ns / 1e3)

    def layer_times(self, skip: int = 0) -> list[tuple[str, str, list[float]]]:
        """Each step's time (µs) of the profiled calls, timed inside the kernels (``profile=True``)."""
        if not self._profile:
            return super().layer_times(skip)
        times = np.array(self._times[skip:]).reshape(-1, len(self._net.steps))
        return [(name, kind, times[:, i].tolist()) for i, (name, kind) in enumerate(self._net.steps)]
