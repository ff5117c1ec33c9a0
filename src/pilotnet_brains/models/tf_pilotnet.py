"""PilotNet in tf_keras (Keras 2, ``import tf_keras``): Conv2D/Dense layers only, so tfmot can wrap them."""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, INPUT_SHAPE, N_OUTPUTS
from pilotnet_brains.preprocess import ModelMeta, write_meta


def build(seed: int = 0):
    """Functional tf_keras PilotNet; weights drawn from ``seed`` (He normal -- variance-preserving for
    ReLU, so even a random-weight model's outputs depend on its input -- and zero biases)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = keras.layers.BatchNormalization(name="input_norm")(inputs)
    for i, (filters, kernel, stride) in enumerate(CONV_LAYERS, start=1):
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", activation="relu",
                                kernel_initializer="he_normal", name=f"conv{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(DENSE_LAYERS, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal",
                               name=f"fc{i}")(x)
    outputs = keras.layers.Dense(N_OUTPUTS, name="outputs")(x)
    return keras.Model(inputs, outputs, name="pilotnet")


def load(path: str):
    """Load a tf_keras model (.keras, .h5 or SavedModel folder) without its training config."""
    import tf_keras as keras

    return keras.models.load_model(path, compile=False)


def save(model, path: str, extra: dict[str, Any] | None = None, method: str = "train") -> str:
    """Save ``model`` to ``path`` (suffix .keras or .h5) atomically, with its sidecar; returns path."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".keras"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    os.close(fd)
    try:
        model.save(tmp)
        os.chmod(tmp, 0o644)   # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    write_meta(path, ModelMeta(framework="tf_keras", method=method, extra=dict(extra or {})))
    return path
