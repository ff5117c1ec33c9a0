"""PilotNet in tf_keras (Keras 2, ``import tf_keras``): Conv2D/Dense layers only, so tfmot can wrap them."""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, INPUT_SHAPE, N_OUTPUTS
from pilotnet_brains.preprocess import ModelMeta, write_meta


def keras_module():
    """Keras 2: the tf_keras package (TensorFlow >= 2.16, whose tf.keras is Keras 3), or TensorFlow's
    own tf.keras before that (TensorFlow 2.13 on Python 3.8, for which no tf_keras exists)."""
    try:
        import tf_keras

        return tf_keras
    except ImportError:
        import tensorflow as tf

        major, minor = (int(v) for v in tf.__version__.split(".")[:2])
        if (major, minor) >= (2, 16):
            raise ImportError(f"TensorFlow {tf.__version__}'s tf.keras is Keras 3; the Keras 2 models here "
                              f"need the tf_keras package: pip install tf_keras") from None
        return tf.keras


def build(seed: int = 0):
    """Functional tf_keras PilotNet; weights drawn from ``seed`` (He normal -- variance-preserving for
    ReLU, so even a random-weight model's outputs depend on its input -- and zero biases)."""
    keras = keras_module()

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
    """Load a tf_keras model (.keras, .h5 or SavedModel folder) without its training config, or
    PilotNet weights (``_weights.h5``, see :func:`export_weights`) into this module's PilotNet."""
    if path.endswith("_weights.h5"):
        model = build(0)
        model.load_weights(path)
        return model
    keras = keras_module()

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


#: Frames (calibration.synthetic_frames seed) whose outputs travel with an exported model.
REFERENCE_SEED = 7


def reference_path(path: str) -> str:
    return path + ".ref.npz"


def export_weights(source: str, out: str) -> str:
    """The PilotNet at ``source`` as weights in HDF5 (``<name>_weights.h5``), which every Keras 2
    (TensorFlow 2.13 on Python 3.8 included) loads into :func:`build`'s PilotNet: TensorFlow 2.13
    reads neither the .keras files newer tf_keras write nor their full-model .h5 (layer configs carry
    arguments it does not know). With its sidecar (method and preprocessing of the source; parent =
    the source's sha256) and ``<out>.ref.npz``: 8 synthetic frames and the source model's outputs on
    them, for checking the file where it is loaded."""
    if not out.endswith("_weights.h5"):
        raise ValueError(f"{out}: the weights file must be named <name>_weights.h5")
    import io

    import numpy as np

    from pilotnet_brains.optimize.calibration import synthetic_frames
    from pilotnet_brains.preprocess import read_meta
    from pilotnet_brains.util import atomic_write_bytes, sha256_path

    model = load(source)
    meta = read_meta(source)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(out)), suffix="_weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta.parent = sha256_path(source)
    meta.extra = {**meta.extra, "exported_from": os.path.basename(source)}
    write_meta(out, meta)
    x = synthetic_frames(8, seed=REFERENCE_SEED)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=model(x, training=False).numpy())
    atomic_write_bytes(reference_path(out), buf.getvalue())
    return out
