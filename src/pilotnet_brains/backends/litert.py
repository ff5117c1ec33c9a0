"""TFLite flatbuffers through the LiteRT interpreter (``ai_edge_litert``; 0.07 s import vs ~2 s for tf.lite),
or, where LiteRT does not exist (Python 3.8), its predecessor ``tflite_runtime`` (same Interpreter API).

Integer-I/O models (full-integer int8/uint8) are fed ``round(x / scale) + zero_point`` and their
outputs dequantized with the model's own scale/zero-point, so predict() always returns float
normalized outputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, output_buffer, read_meta_or_none


def interpreter_class():
    """(the TFLite Interpreter class, its package): LiteRT's, else tflite_runtime's."""
    try:
        import ai_edge_litert as package
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tflite_runtime as package
        from tflite_runtime.interpreter import Interpreter
    return Interpreter, package


class LiteRTBackend(Backend):
    runtime = "litert"

    def _load(self) -> None:
        Interpreter, package = interpreter_class()
        if package.__name__ != "ai_edge_litert":
            self.runtime = package.__name__
        self.runtime_version = getattr(package, "__version__", "")
        self.meta = read_meta_or_none(self.path)
        self._interp = Interpreter(model_path=self.path, num_threads=self.threads)
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ValueError(f"expected one input and one output, found {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        self._in_index, self._out_index = self._in["index"], self._out["index"]
        self._in_dtype = np.dtype(self._in["dtype"])
        self._out_dtype = np.dtype(self._out["dtype"])
        self._in_q = self._quant(self._in)
        self._out_q = self._quant(self._out)
        self._batch = int(self._in["shape"][0])
        self._input_view = self._interp.tensor(self._in_index)
        self._outs: dict[int, np.ndarray] = {}
        self._scratch: dict[int, np.ndarray] = {}
        if self._in_q is not None:   # OpenCV quantizes the input (imported only for integer-input models)
            import cv2

            cv_dtypes = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.int8): cv2.CV_8S}
            if self._in_dtype not in cv_dtypes:
                raise ValueError(f"unsupported integer input type {self._in_dtype} (expected uint8 or int8)")
            self._cv_dtype = cv_dtypes[self._in_dtype]
            self._cv2 = cv2

    @staticmethod
    def _quant(detail) -> Any:
        """(scale, zero_point) for an integer tensor, None for float."""
        if np.issubdtype(np.dtype(detail["dtype"]), np.floating):
            return None
        scale, zero = detail["quantization"]
        if not scale:
            raise ValueError(f"integer tensor {detail['name']} has no quantization parameters")
        return float(scale), int(zero)

    def _resize(self, n: int) -> None:
        self._interp.resize_tensor_input(self._in_index, [n] + list(self._in["shape"][1:]))
        self._interp.allocate_tensors()
        self._batch = n
        self._input_view = self._interp.tensor(self._in_index)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n != self._batch:
            self._resize(n)
        if self._in_q is None:
            self._input_view()[...] = x
        else:
            # q = saturate(round(x / scale + zero_point)) in one OpenCV pass (~16 us vs ~35 us in numpy)
            scale, zero = self._in_q
            q = self._scratch.get(n)
            if q is None:
                q = self._scratch[n] = np.empty(x.shape, self._in_dtype)
            flat = x.reshape(-1, x.shape[-2], x.shape[-1])
            self._cv2.addWeighted(flat, 1.0 / scale, flat, 0.0, float(zero), dst=q.reshape(flat.shape),
                            dtype=self._cv_dtype)
            self._input_view()[...] = q
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out_index)
        out = output_buffer(n, self._outs)
        if self._out_q is None:
            out[...] = raw
        else:
            scale, zero = self._out_q
            np.subtract(raw, zero, out=out, dtype=np.float32)
            out *= np.float32(scale)
        return out

    def _describe(self) -> dict[str, Any]:
        return {"input_dtype": self._in_dtype.name, "output_dtype": self._out_dtype.name,
                "input_quantization": self._in_q, "output_quantization": self._out_q}
