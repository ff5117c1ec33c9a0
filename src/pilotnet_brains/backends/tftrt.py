"""TF-TRT converted SavedModels, called through their ``serving_default`` signature.

Only on a TensorFlow <= 2.17 GPU build with TensorRT and an NVIDIA GPU; the registry refuses the
backend before this module is imported anywhere else (see :func:`machine.tftrt_missing`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, read_meta_or_none

SIGNATURE = "serving_default"


class TFTRTBackend(Backend):
    runtime = "tftrt"

    def _load(self) -> None:
        import tensorflow as tf

        from pilotnet_brains.backends.keras_backend import set_tf_threads

        self.runtime_version = tf.__version__
        self._thread_note = set_tf_threads(self.threads)
        self.meta = read_meta_or_none(self.path)
        self._saved = tf.saved_model.load(self.path, tags=[tf.saved_model.SERVING])
        self._fn = self._saved.signatures[SIGNATURE]
        self._input_name = list(self._fn.structured_input_signature[1].keys())[0]
        self._output_name = list(self._fn.structured_outputs.keys())[0]
        self._tf = tf

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(**{self._input_name: self._tf.constant(x)})
        return out[self._output_name].numpy()

    def _describe(self) -> dict[str, Any]:
        return {"signature": SIGNATURE}
