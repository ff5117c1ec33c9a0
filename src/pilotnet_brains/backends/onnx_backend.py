"""ONNX models through ONNX Runtime; execution providers configurable.

``providers``: a list (or comma-separated string) such as ``["CUDAExecutionProvider",
"CPUExecutionProvider"]``; default CPU. ``PILOTNET_ORT_PROVIDERS`` sets it from the environment.
CUDA and TensorRT providers need ``onnxruntime-gpu`` and an NVIDIA GPU.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, Unsupported, read_meta_or_none


def parse_providers(value: Any) -> list[str]:
    if not value:
        value = os.environ.get("PILOTNET_ORT_PROVIDERS", "") or "CPUExecutionProvider"
    if isinstance(value, str):
        value = [p.strip() for p in value.split(",") if p.strip()]
    return list(value)


class OnnxBackend(Backend):
    runtime = "onnxruntime"

    def _load(self) -> None:
        import onnxruntime as ort

        self.runtime_version = ort.__version__
        self.meta = read_meta_or_none(self.path)
        providers = parse_providers(self.options.get("providers"))
        available = ort.get_available_providers()
        absent = [p for p in providers if p not in available]
        if absent:
            raise Unsupported(f"backend {self.name!r}: execution providers {absent} are not available in this "
                              f"onnxruntime (available: {available}); CUDA/TensorRT providers need "
                              f"onnxruntime-gpu and an NVIDIA GPU")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.options.get("profile"):
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="pnb-ort-profile-"), "profile")
        self._sess = ort.InferenceSession(self.path, sess_options=so, providers=providers)
        self._providers = self._sess.get_providers()
        self._input = self._sess.get_inputs()[0].name
        self._outputs = [self._sess.get_outputs()[0].name]
        self._run = self._sess.run

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._outputs, {self._input: x})[0]

    def _describe(self) -> dict[str, Any]:
        return {"providers": self._providers}

    def layer_times(self, skip: int = 0) -> list[tuple[str, str, list[float]]]:
        """The kernel times of ONNX Runtime's profile (``profile=True``); ends the profiling."""
        if not self.options.get("profile"):
            return super().layer_times(skip)
        path = self._sess.end_profiling()
        try:
            with open(path) as f:
                events = json.load(f)
        finally:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        nodes: dict[str, tuple[str, list[float]]] = {}
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
                kind, times = nodes.setdefault(e["name"][:-len("_kernel_time")], (e["args"].get("op_name", ""), []))
                times.append(float(e["dur"]))
        return [(name, kind, times[skip:]) for name, (kind, times) in nodes.items()]
