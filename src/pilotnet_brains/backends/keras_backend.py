"""tf_keras models called through one compiled ``tf.function`` (never ``model.predict``: ~37 ms a frame)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from pilotnet_brains.backends.base import Backend, read_meta_or_none
from pilotnet_brains.models import INPUT_SHAPE


def set_tf_threads(threads: int) -> str:
    """Set TF's intra/inter-op threads; returns "" or why it could not (TF already initialised)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        return ""
    except RuntimeError as e:
        return f"threads not applied: {e}"


class KerasBackend(Backend):
    runtime = "tf_keras"

    def _load(self) -> None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf

        from pilotnet_brains.models.tf_pilotnet import load

        self.runtime_version = tf.__version__
        self._thread_note = set_tf_threads(self.threads)
        self.meta = read_meta_or_none(self.path)
        self._model = load(self.path)
        model = self._model

        @tf.function(input_signature=[tf.TensorSpec((None,) + INPUT_SHAPE, tf.float32)], reduce_retracing=True)
        def infer(x):
            return model(x, training=False)

        self._fn = infer
        self._tf = tf

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._fn(x).numpy()

    def _describe(self) -> dict[str, Any]:
        return {"thread_note": self._thread_note} if self._thread_note else {}
