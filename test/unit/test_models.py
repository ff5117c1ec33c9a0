"""PilotNet in tf_keras and torch: layer plan, seeds, NHWC input, fusability, save/load with sidecar."""
from __future__ import annotations

import numpy as np
import pytest

from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, FLATTEN_SIZE, INPUT_SHAPE


def test_tf_pilotnet_layer_plan():
    from pilotnet_brains.models import build_tf_pilotnet
    from pilotnet_brains.models.tf_pilotnet import keras_module

    keras = keras_module()

    m = build_tf_pilotnet(0)
    assert tuple(m.input_shape) == (None,) + INPUT_SHAPE
    assert tuple(m.output_shape) == (None, 2)
    assert isinstance(m.layers[1], keras.layers.BatchNormalization)
    convs = [layer for layer in m.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size[0], c.strides[0], c.padding) for c in convs] == \
        [(f, k, s, "valid") for f, k, s in CONV_LAYERS]
    flat = m.get_layer("flatten")
    assert flat.output_shape == (None, FLATTEN_SIZE)
    dense = [layer.units for layer in m.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == list(DENSE_LAYERS) + [2]
    # only Conv2D / Dense carry weights besides the input BatchNorm (tfmot wraps these)
    kinds = {type(layer).__name__ for layer in m.layers if layer.weights}
    assert kinds == {"BatchNormalization", "Conv2D", "Dense"}


def test_tf_pilotnet_seeded():
    from pilotnet_brains.models import build_tf_pilotnet

    a, b, c = build_tf_pilotnet(3), build_tf_pilotnet(3), build_tf_pilotnet(4)
    wa, wb, wc = (m.get_layer("fc1").get_weights()[0] for m in (a, b, c))
    assert np.array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


@pytest.mark.torch
def test_torch_pilotnet_nhwc_and_plan():
    import torch

    from pilotnet_brains.models import build_torch_pilotnet

    m = build_torch_pilotnet(0)
    assert m.fc1.in_features == FLATTEN_SIZE
    assert [m.fc1.out_features, m.fc2.out_features, m.fc3.out_features, m.fc4.out_features] == list(DENSE_LAYERS)
    assert [(getattr(m, f"conv{i}").out_channels, getattr(m, f"conv{i}").kernel_size[0],
             getattr(m, f"conv{i}").stride[0]) for i in range(1, 6)] == list(CONV_LAYERS)
    x = torch.rand((4,) + INPUT_SHAPE)
    with torch.inference_mode():
        y = m(x)
    assert y.shape == (4, 2) and y.dtype == torch.float32
    # NHWC: the input is permuted inside forward; an NCHW tensor is not accepted
    with pytest.raises(RuntimeError):
        m(torch.rand(1, 3, 66, 200))
    # different frames give different outputs (a random-weight model still depends on its input)
    assert float((y[0] - y[1]).abs().max()) > 1e-3


@pytest.mark.torch
def test_torch_pilotnet_seed_and_fusion():
    import torch

    from pilotnet_brains.models import build_torch_pilotnet
    from pilotnet_brains.models.torch_pilotnet import FUSE_PAIRS

    a, b = build_torch_pilotnet(5), build_torch_pilotnet(5)
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, build_torch_pilotnet(6).fc1.weight)
    fused = torch.ao.quantization.fuse_modules(a, FUSE_PAIRS)
    assert type(fused.conv1).__name__ == "ConvReLU2d" and type(fused.fc1).__name__ == "LinearReLU"
    x = torch.rand((2,) + INPUT_SHAPE)
    with torch.inference_mode():
        assert torch.allclose(fused(x), b(x), atol=1e-5)


@pytest.mark.torch
def test_save_load_with_sidecars(tmp_path):
    import torch

    from pilotnet_brains.models import (
        build_torch_pilotnet,
        save_random_base_models,
        tf_pilotnet,
        torch_pilotnet,
    )
    from pilotnet_brains.preprocess import read_meta

    paths = save_random_base_models(str(tmp_path), seed=1)
    assert paths["tf_keras"].endswith("pilotnet_tf.keras") and paths["torch"].endswith("pilotnet_torch.pt")
    assert read_meta(paths["tf_keras"]).framework == "tf_keras"
    meta = read_meta(paths["torch"])
    assert meta.framework == "torch" and meta.extra["seed"] == 1
    x = np.random.default_rng(0).random((2,) + INPUT_SHAPE, dtype=np.float32)
    ref = build_torch_pilotnet(1)
    with torch.inference_mode():
        assert torch.equal(torch_pilotnet.load(paths["torch"])(torch.from_numpy(x)), ref(torch.from_numpy(x)))
    k = tf_pilotnet.load(paths["tf_keras"])
    from pilotnet_brains.models import build_tf_pilotnet

    np.testing.assert_allclose(k(x).numpy(), build_tf_pilotnet(1)(x).numpy(), atol=1e-6)
    assert not list(tmp_path.glob(".*"))   # no temporary files left


@pytest.mark.torch
def test_torch_load_rejects_non_state_dict(tmp_path):
    import torch

    from pilotnet_brains.models import torch_pilotnet

    p = tmp_path / "x.pt"
    torch.save([1, 2, 3], str(p))
    with pytest.raises(ValueError, match="state dict"):
        torch_pilotnet.load(str(p))


def test_the_h5_export_loads_here_and_drives_like_the_base_model(tmp_path):
    """The base Keras model's weights as HDF5 (make keras-h5): what TensorFlow 2.13 (Python 3.8, no
    tf_keras) loads. Where the base model itself loads (TensorFlow >= 2.16) the test exports it; on TensorFlow
    2.13 it reads the file the Debian environment exported and checks the outputs recorded there."""
    import os

    import tensorflow as tf

    from pilotnet_brains.backends import load_backend
    from pilotnet_brains.models import models_dir, tf_base_path, tf_pilotnet

    if tuple(int(v) for v in tf.__version__.split(".")[:2]) >= (2, 16):
        h5 = tf_pilotnet.export_weights(tf_base_path(), str(tmp_path / "pilotnet_tf_weights.h5"))
    else:
        h5 = os.path.join(models_dir(), "build", "pilotnet_tf_weights.h5")
        assert os.path.exists(h5), f"{h5} missing: run `make keras-h5` in the Debian environment first"
    ref = np.load(tf_pilotnet.reference_path(h5))
    np.testing.assert_allclose(tf_pilotnet.load(h5)(ref["x"], training=False).numpy(), ref["y"], atol=1e-5)
    backend = load_backend("keras", path=h5)
    np.testing.assert_allclose(backend.predict(ref["x"]), ref["y"], atol=1e-4)
