"""PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving Cars") in tf_keras and torch.

Both take the preprocessed frame of :mod:`pilotnet_brains.preprocess`: float32 NHWC (N, 66, 200, 3)
in [0, 1], and give (N, 2) normalized outputs (v, w in [0, 1] for the DLS label ranges).

Architecture (both frameworks): BatchNormalization of the input -> conv 24/36/48 5x5 stride 2 ->
conv 64/64 3x3 stride 1 (all VALID padding, ReLU) -> flatten (1 x 18 x 64 = 1152) -> dense
1164/100/50/10 (ReLU) -> dense 2 (linear).

Base model files (the ``keras`` backend and the torch methods' parent):

- ``models/pilotnet_tf.keras`` -- the tf_keras model in the native Keras v3 zip format (``.keras``;
  loads with ``tf_keras.models.load_model(path, compile=False)``; .h5 and SavedModel dirs load too).
- ``models/pilotnet_torch.pt`` -- a torch **state dict** of :class:`~pilotnet_brains.models.torch_pilotnet.
  PilotNetTorch` (``torch.load(path, weights_only=True)``): the quantization/pruning methods need the
  eager module, which a TorchScript file would not give back.

Each has a metadata sidecar (``<path>.meta.json``, :func:`pilotnet_brains.preprocess.write_meta`).
Frameworks are imported only by the builder that needs them.
"""
from __future__ import annotations

import os

from pilotnet_brains import PACKAGE_ROOT

#: Input shape (H, W, C) and output size; the layer plan shared by both frameworks.
INPUT_SHAPE = (66, 200, 3)
N_OUTPUTS = 2
#: (filters, kernel, stride) of the five convolutions; VALID padding, ReLU.
CONV_LAYERS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))
#: Hidden dense widths (ReLU), then a linear N_OUTPUTS layer.
DENSE_LAYERS = (1164, 100, 50, 10)
FLATTEN_SIZE = 1152   # 1 x 18 x 64 for a 66 x 200 input


def conv_shapes(input_shape: tuple[int, int, int] = INPUT_SHAPE) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """(input (h, w, c), output (h, w, c)) of each convolution of :data:`CONV_LAYERS` (VALID padding)."""
    out = []
    h, w, c = input_shape
    for filters, kernel, stride in CONV_LAYERS:
        ho, wo = (h - kernel) // stride + 1, (w - kernel) // stride + 1
        out.append(((h, w, c), (ho, wo, filters)))
        h, w, c = ho, wo, filters
    return out


def layer_macs(input_shape: tuple[int, int, int] = INPUT_SHAPE) -> list[tuple[str, int]]:
    """Multiply-adds per frame of every convolution and dense layer, computed from the layer plan
    (:data:`CONV_LAYERS`, VALID padding; :data:`DENSE_LAYERS`, then the output layer):
    [("conv1", n), ..., ("fc1", n), ..., ("outputs", n)]. The input BatchNormalization is left out
    (one multiply-add per input value, 0.1 % of the total)."""
    shapes = conv_shapes(input_shape)
    out = []
    for i, ((_, _, c_in), (h, w, filters)) in enumerate(shapes, start=1):
        kernel = CONV_LAYERS[i - 1][1]
        out.append((f"conv{i}", h * w * filters * kernel * kernel * c_in))
    width = h * w * filters          # conv5's output, flattened
    for i, units in enumerate(DENSE_LAYERS + (N_OUTPUTS,), start=1):
        out.append((f"fc{i}" if i <= len(DENSE_LAYERS) else "outputs", width * units))
        width = units
    return out


def macs(input_shape: tuple[int, int, int] = INPUT_SHAPE) -> int:
    """Multiply-adds per frame of the whole network (:func:`layer_macs`)."""
    return sum(n for _, n in layer_macs(input_shape))


def models_dir() -> str:
    """Where models live: ``<package>/models``; ``PILOTNET_MODELS_DIR`` overrides (tests, benchmarks)."""
    return os.environ.get("PILOTNET_MODELS_DIR") or os.path.join(PACKAGE_ROOT, "models")


TF_BASE_NAME = "pilotnet_tf.keras"
TORCH_BASE_NAME = "pilotnet_torch.pt"


def tf_base_path() -> str:
    return os.path.join(models_dir(), TF_BASE_NAME)


def torch_base_path() -> str:
    return os.path.join(models_dir(), TORCH_BASE_NAME)


def build_tf_pilotnet(seed: int = 0):
    """A fresh tf_keras PilotNet (random weights from ``seed``)."""
    from pilotnet_brains.models.tf_pilotnet import build

    return build(seed)


def build_torch_pilotnet(seed: int = 0):
    """A fresh torch PilotNet (random weights from ``seed``), in eval mode."""
    from pilotnet_brains.models.torch_pilotnet import build

    return build(seed)


def save_random_base_models(folder: str | None = None, seed: int = 0,
                            frameworks: tuple[str, ...] = ("tf_keras", "torch")) -> dict:
    """Write random-weight base models (tf_keras and/or torch) + sidecars into ``folder``
    (default: :func:`models_dir`). For tests, benchmarks and smoke builds; returns {framework: path}."""
    folder = folder or models_dir()
    extra = {"weights": "random", "seed": seed, "note": "random-weight smoke model, not trained"}
    out = {}
    if "tf_keras" in frameworks:
        from pilotnet_brains.models import tf_pilotnet

        out["tf_keras"] = tf_pilotnet.save(build_tf_pilotnet(seed), os.path.join(folder, TF_BASE_NAME), extra)
    if "torch" in frameworks:
        from pilotnet_brains.models import torch_pilotnet

        out["torch"] = torch_pilotnet.save(build_torch_pilotnet(seed), os.path.join(folder, TORCH_BASE_NAME), extra)
    return out
