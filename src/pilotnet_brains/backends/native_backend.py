"""PilotNet int8 on the package's own AVX-512 VNNI kernels (:mod:`pilotnet_brains.native`).

One thread whatever ``threads`` says (a 0.1 ms call is shorter than waking a second core); frames
of a batch run one after the other.
"""
from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

from pilotnet_brains.backends.base import ArtifactCorrupt, Backend, output_buffer, read_meta_or_none


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
        self._net = native.NativeNet(art)
        self.runtime_version = native.FORMAT
        self._outs: dict[int, np.ndarray] = {}

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = output_buffer(len(x), self._outs)
        x = np.ascontiguousarray(x)
        for i in range(len(x)):
            out[i] = self._net.forward(x[i])
        return out

    def _describe(self) -> dict[str, Any]:
        return {"kernels": "AVX-512 VNNI, one thread"}
