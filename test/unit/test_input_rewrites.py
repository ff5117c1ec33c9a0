"""The exact input rewrites: the ONNX exports' (BatchNormalization folded into conv1, conv1 reading the
NHWC frame) and the int8 models built from them -- same outputs, no Transpose, conv1's precision --
and the TFLite conversions' (the BatchNormalization folded into conv1 of the tf_keras model)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest


def _importorskip(name):
    """The module, or None (the TFLite tests run without ONNX)."""
    try:
        return __import__(name)
    except ImportError:
        return None


onnx = _importorskip("onnx")
ort = _importorskip("onnxruntime")
needs_onnx = pytest.mark.skipif(onnx is None or ort is None, reason="onnx or onnxruntime is not installed")


@pytest.fixture(scope="module")
def camera_frames():
    """Eight preprocessed camera frames of simple_circuit, rendered along its centre line."""
    from pilotnet_brains.circuits import load_circuit
    from pilotnet_brains.preprocess import Preprocessing
    from pilotnet_brains.sim.render import Renderer

    circuit = load_circuit("simple_circuit")
    renderer = Renderer(circuit)
    prep = Preprocessing()
    frames = []
    for k in range(8):
        s = circuit.start_s + 9.0 * k
        (x, y), yaw = circuit.point_at(s)[0], circuit.heading_at(s)[0]
        frames.append(prep.image(renderer.render((x, y, yaw + 0.1 * math.sin(k)))))
    return np.stack(frames).astype(np.float32)


def _ops(graph):
    """The graph's operators, without the Identity nodes the exporter shares equal tensors through."""
    return [n.op_type for n in graph.node if n.op_type != "Identity"]


def _run(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


@pytest.fixture(scope="module", params=["trained", "random"])
def exports(request, tmp_path_factory):
    """The fp32 export of a base model (the packaged trained one, or random weights) without and
    with the rewrites: (plain path, rewritten path, rewrites applied)."""
    from pilotnet_brains.models import save_random_base_models, torch_base_path
    from pilotnet_brains.optimize.onnx_methods import export_onnx

    folder = tmp_path_factory.mktemp(f"onnx_{request.param}")
    base = torch_base_path() if request.param == "trained" else save_random_base_models(
        str(folder), seed=1, frameworks=("torch",))["torch"]
    plain, rewritten = str(folder / "plain.onnx"), str(folder / "rewritten.onnx")
    assert export_onnx(base, plain, rewrite=False) == []
    done = export_onnx(base, rewritten)
    return plain, rewritten, done


@pytest.mark.torch
@needs_onnx
def test_rewritten_export_gives_the_same_outputs(exports, camera_frames):
    plain, rewritten, done = exports
    assert len(done) == 2, done
    a, b = _run(plain, camera_frames), _run(rewritten, camera_frames)
    assert a.shape == (8, 2) and np.ptp(a, axis=0).max() > 1e-3   # frames that tell apart
    assert np.abs(a - b).max() <= 1e-5


@pytest.mark.torch
@needs_onnx
def test_rewritten_export_has_no_transpose_or_norm_before_conv1(exports):
    plain, rewritten, _ = exports
    ops = _ops(onnx.load(plain).graph)
    assert ops[:3] == ["Transpose", "BatchNormalization", "Conv"]
    ops = _ops(onnx.load(rewritten).graph)
    assert ops[:2] == ["Reshape", "Conv"] and "Transpose" not in ops and "BatchNormalization" not in ops


@pytest.mark.torch
@needs_onnx
def test_fold_is_refused_where_it_would_not_be_exact(exports):
    """A padded convolution after the BatchNormalization: the border zeros would miss the shift."""
    from pilotnet_brains.optimize.onnx_methods import fold_input_norm

    model = onnx.load(exports[0])
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for a in conv.attribute:
        if a.name == "pads":
            a.ints[:] = [1, 1, 1, 1]
    assert not fold_input_norm(model)
    assert _ops(model.graph)[:3] == ["Transpose", "BatchNormalization", "Conv"]


@pytest.mark.torch
@needs_onnx
@pytest.mark.parametrize("float_conv1", [True, False])
def test_int8_model_keeps_conv1_in_the_chosen_precision(float_conv1, tmp_path, camera_frames):
    from pilotnet_brains.models import torch_base_path
    from pilotnet_brains.optimize import build

    out = build("onnx_int8", base=torch_base_path(), data="synthetic:16", out=str(tmp_path / "m.onnx"),
                progress=False, float_conv1=float_conv1)
    graph = onnx.load(out).graph
    conv1 = next(n for n in graph.node if n.op_type == "Conv")
    producers = {o: n.op_type for n in graph.node for o in n.output}
    assert (producers.get(conv1.input[1]) == "DequantizeLinear") is not float_conv1   # int8 weights
    assert "Transpose" not in [n.op_type for n in graph.node]
    y = _run(out, camera_frames)
    assert np.isfinite(y).all() and y.shape == (8, 2)


def _trained_or_random_tf(kind, tmp_path):
    """The packaged trained tf_keras base model, or a random-weight one whose input BatchNormalization
    has non-trivial statistics (a fresh one is the identity)."""
    import tensorflow as tf

    from pilotnet_brains.models import models_dir, tf_base_path
    from pilotnet_brains.models.tf_pilotnet import build, save

    if kind == "trained":
        if tuple(int(v) for v in tf.__version__.split(".")[:2]) >= (2, 16):
            return tf_base_path()
        h5 = os.path.join(models_dir(), "build", "pilotnet_tf_weights.h5")   # TensorFlow 2.13 reads this
        if not os.path.exists(h5):
            pytest.skip(f"{h5} missing: run `make keras-h5` in the Debian environment first")
        return h5
    model = build(seed=2)
    norm = model.get_layer("input_norm")
    rng = np.random.default_rng(0)
    norm.set_weights([rng.uniform(0.5, 1.5, 3), rng.uniform(-0.2, 0.2, 3), rng.uniform(0.2, 0.5, 3),
                      rng.uniform(0.01, 0.1, 3)])
    return save(model, str(tmp_path / "random_tf.keras"))


@pytest.mark.parametrize("kind", ["trained", "random"])
def test_tflite_fold_gives_the_same_outputs(kind, tmp_path, camera_frames):
    from pilotnet_brains.backends import load_backend
    from pilotnet_brains.models.tf_pilotnet import load
    from pilotnet_brains.optimize import build
    from pilotnet_brains.optimize.tflite import fold_input_norm

    base = _trained_or_random_tf(kind, tmp_path)
    model = load(base)
    reference = model(camera_frames, training=False).numpy()
    folded = fold_input_norm(load(base))
    assert [type(layer).__name__ for layer in folded.layers][:2] == ["InputLayer", "Conv2D"]
    assert np.ptp(reference, axis=0).max() > 1e-3
    assert np.abs(folded(camera_frames, training=False).numpy() - reference).max() <= 1e-5
    if kind == "random":
        return   # the conversions once, of the trained model
    outs = {}
    for fold in (True, False):
        path = build("tflite_fp32", base=base, out=str(tmp_path / f"fold{fold}.tflite"), progress=False,
                     fold_input_norm=fold)
        backend = load_backend("tflite_fp32", path)
        outs[fold] = np.concatenate([backend.predict(camera_frames[i:i + 1]).copy() for i in range(len(camera_frames))])
    assert np.abs(outs[True] - outs[False]).max() <= 1e-5 and np.abs(outs[True] - reference).max() <= 1e-5
