"""TorchScript artifacts (fp32, dynamic/static int8, QAT, pruned) with ``torch.set_num_threads``."""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, read_meta_or_none


class TorchScriptBackend(Backend):
    runtime = "torch"

    def _load(self) -> None:
        import torch

        self.runtime_version = torch.__version__
        torch.set_num_threads(self.threads)
        self.meta = read_meta_or_none(self.path)
        engine = (self.meta.extra.get("quantized_engine") if self.meta else None) or ""
        if engine:
            if engine not in torch.backends.quantized.supported_engines:
                raise ValueError(f"the model was quantized for the {engine!r} engine; this torch supports "
                                 f"{torch.backends.quantized.supported_engines}")
            torch.backends.quantized.engine = engine
        self._engine = torch.backends.quantized.engine
        self._module = torch.jit.load(self.path, map_location="cpu").eval()
        self._torch = torch
        self._no_grad = torch.inference_mode

    def _predict(self, x: np.ndarray) -> np.ndarray:
        with self._no_grad():
            y = self._module(self._torch.from_numpy(x))
        return y.numpy()

    def _describe(self) -> dict[str, Any]:
        return {"quantized_engine": self._engine, "torch_threads": self._torch.get_num_threads()}
