"""Native TensorRT engines (serialized, built from ONNX by ``scripts/optimize tensorrt``).

Needs the ``tensorrt`` Python package, an NVIDIA GPU and a CUDA array library for the device
buffers (``cuda-python`` or torch with CUDA). The registry refuses the backend at once when the
machine lacks them (:func:`machine.tensorrt_missing`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, read_meta_or_none


class TensorRTBackend(Backend):
    runtime = "tensorrt"

    def _load(self) -> None:
        import tensorrt as trt
        import torch  # CUDA tensors as device buffers

        if not torch.cuda.is_available():
            raise RuntimeError("the TensorRT backend needs torch with CUDA for its device buffers")
        self.runtime_version = trt.__version__
        self.meta = read_meta_or_none(self.path)
        logger = trt.Logger(trt.Logger.WARNING)
        with open(self.path, "rb") as f:
            self._engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
        if self._engine is None:
            raise ValueError("TensorRT could not deserialize the engine (built for another TensorRT/GPU?)")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._in_name = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._out_name = next(n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self._torch = torch
        self._stream = torch.cuda.Stream()
        self._bufs: dict[int, Any] = {}

    def _predict(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        n = x.shape[0]
        bufs = self._bufs.get(n)
        if bufs is None:
            d_in = torch.empty(x.shape, dtype=torch.float32, device="cuda")
            d_out = torch.empty((n, 2), dtype=torch.float32, device="cuda")
            bufs = self._bufs[n] = (d_in, d_out, torch.empty((n, 2), dtype=torch.float32).pin_memory())
        d_in, d_out, h_out = bufs
        d_in.copy_(torch.from_numpy(x), non_blocking=True)
        self._context.set_input_shape(self._in_name, tuple(x.shape))
        self._context.set_tensor_address(self._in_name, d_in.data_ptr())
        self._context.set_tensor_address(self._out_name, d_out.data_ptr())
        self._context.execute_async_v3(self._stream.cuda_stream)
        h_out.copy_(d_out, non_blocking=True)
        self._stream.synchronize()
        return h_out.numpy()
