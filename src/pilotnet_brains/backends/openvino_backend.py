"""OpenVINO IR models (``model.xml`` + ``model.bin``) on the CPU plugin.

One compiled model (dynamic batch, as exported) and one infer request, reused by every call. A
single frame (the brain's case) is copied into an input tensor the request holds from the start, and
the request runs without arguments: 25 µs p50 less a call than handing it the array each time
(281-306 against 313-330 µs, openvino_int8, 1 thread, Sapphire Rapids). Other batches go in as they
come. Inputs are NHWC float32 as for every backend. The batch stays
dynamic: reshaping the int8 IR to a static batch 1 changed its outputs by up to 0.8 (normalized
units) on OpenVINO 2026.4.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from pilotnet_brains.backends.base import ArtifactMissing, Backend, read_meta_or_none
from pilotnet_brains.models import INPUT_SHAPE
from pilotnet_brains.util import companions

#: INFERENCE_PRECISION_HINT per backend (float32 unless listed): without the hint the CPU plugin
#: runs float models in bf16 on AMX machines.
PRECISION = {"openvino_bf16": "bf16"}


class OpenVinoBackend(Backend):
    runtime = "openvino"

    def _load(self) -> None:
        import openvino as ov

        self.runtime_version = ov.get_version().split("-")[0]
        self.meta = read_meta_or_none(self.path)
        (weights,) = companions(self.path)
        if not os.path.exists(weights):
            raise ArtifactMissing(f"backend {self.name!r}: the weights {weights} of {self.path} do not exist "
                                  f"(an OpenVINO IR is the .xml and the .bin next to it); rebuild it with "
                                  f"`scripts/optimize {self.spec.method}`")
        core = ov.Core()
        model = core.read_model(self.path, weights)   # load_backend reports its errors as ArtifactCorrupt
        self._precision = PRECISION.get(self.name, "f32")
        self._profile: dict[str, tuple[str, list[float]]] | None = {} if self.options.get("profile") else None
        self._profile_calls = 0
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": self._precision, "PERF_COUNT": self._profile is not None})
        self._request = compiled.create_infer_request()
        self._frame = np.zeros((1,) + INPUT_SHAPE, np.float32)
        self._frame_request = compiled.create_infer_request()
        self._frame_request.set_input_tensor(ov.Tensor(self._frame, shared_memory=True))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 1:
            np.copyto(self._frame, x)
            self._frame_request.infer()
            return self._frame_request.get_output_tensor(0).data
        self._request.infer({0: x}, share_inputs=True)
        return self._request.get_output_tensor(0).data

    def profile_step(self) -> None:
        """Keep the CPU plugin's per-node times of the last batch-1 call (it holds only the last)."""
        if self._profile is None:
            return
        self._profile_calls += 1
        calls = self._profile_calls
        for info in self._frame_request.profiling_info:
            # a node the plugin did not execute in this call (e.g. an in-place reshape) took no time in it
            us = info.real_time.total_seconds() * 1e6 if info.status == info.Status.EXECUTED else 0.0
            times = self._profile.setdefault(info.node_name, (f"{info.node_type} ({info.exec_type})",
                                                              [0.0] * (calls - 1)))[1]
            if len(times) < calls:
                times.append(us)
        for _, times in self._profile.values():
            if len(times) < calls:          # not reported in this call at all
                times.append(0.0)

    def layer_times(self, skip: int = 0) -> list[tuple[str, str, list[float]]]:
        """The CPU plugin's per-node times of the batch-1 calls kept by :meth:`profile_step`
        (``profile=True``: PERF_COUNT)."""
        if self._profile is None:
            return super().layer_times(skip)
        return [(name, kind, times[skip:]) for name, (kind, times) in self._profile.items() if any(times)]

    def _describe(self) -> dict[str, Any]:
        return {"device": "CPU", "inference_precision": self._precision}
