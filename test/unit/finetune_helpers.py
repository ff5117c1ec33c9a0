"""Helpers of the fine-tuning / offline-evaluation tests: a small tf_keras base model and a tiny
DeepLearningStudio-format dataset whose labels follow the red line (so models have signal to keep)."""
from __future__ import annotations

import os

import numpy as np


def small_tf_base(path: str, seed: int = 0) -> str:
    """A small random-weight tf_keras model with PilotNet's input/output and only Conv2D/Dense
    layers after the input BatchNormalization (what the tfmot methods wrap); saved with a sidecar."""
    from pilotnet_brains.models import INPUT_SHAPE
    from pilotnet_brains.models.tf_pilotnet import keras_module, save

    keras = keras_module()

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = keras.layers.BatchNormalization(name="input_norm")(inputs)
    for i, (f, k, s) in enumerate(((12, 5, 2), (16, 5, 2), (24, 3, 2)), start=1):
        x = keras.layers.Conv2D(f, k, strides=s, activation="relu", kernel_initializer="he_normal",
                                name=f"conv{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate((64, 32), start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"fc{i}")(x)
    outputs = keras.layers.Dense(2, name="outputs")(x)
    model = keras.Model(inputs, outputs, name="small_pilotnet")
    return save(model, path, extra={"weights": "random", "seed": seed, "note": "small test model"})


def write_dls(root: str, runs: dict, seed: int = 0) -> str:
    """Write run folders ``{folder_name: n_frames}`` under ``root``: 640x480 frames (sky, asphalt, a
    red line whose lateral offset sets w and whose offset magnitude lowers v). Returns root."""
    from pilotnet_brains.dataset import RunWriter
    from pilotnet_brains.preprocess import V_RANGE, W_RANGE

    rng = np.random.default_rng(seed)
    for name, n in runs.items():
        writer = RunWriter(os.path.join(root, name), png_compression=1)
        for i in range(n):
            off = rng.uniform(-1, 1)
            img = np.empty((480, 640, 3), np.uint8)
            img[:240] = (150, 190, 235)
            img[240:] = np.clip(rng.normal(80, 6, (240, 640, 3)), 0, 255).astype(np.uint8)
            for r in range(240, 480, 4):
                half = 2 + (r - 240) // 40
                x = int(320 + off * 250 * (480 - r) / 240 + off * 60)
                img[r:r + 4, max(0, x - half):max(0, x + half)] = (220, 20, 20)
            w = float(np.clip(-off * W_RANGE[1], *W_RANGE))
            v = float(np.clip(V_RANGE[1] - abs(off) * (V_RANGE[1] - V_RANGE[0]), *V_RANGE))
            writer.add(img, v, w, i * 0.05)
        writer.close()
    return root
