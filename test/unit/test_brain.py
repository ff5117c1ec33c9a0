"""The brain pipeline without ROS: decoding and validation, counting, NaN -> stop, real backends."""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest

from pilotnet_brains.brain import (
    BRAINS,
    BadFrame,
    BrainStartError,
    PilotNetPolicy,
    Pipeline,
    decode_image,
    make_brain,
)
from pilotnet_brains.preprocess import DEFAULT, ModelMeta, Preprocessing, write_meta


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)


# -- decoding -------------------------------------------------------------------------------------

def test_rgb8_is_viewed_without_copy_and_bgr8_is_converted():
    rgb = _frame()
    out = decode_image("rgb8", 480, 640, 1920, rgb.tobytes())
    assert out.shape == (480, 640, 3) and np.array_equal(out, rgb)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert np.array_equal(decode_image("bgr8", 480, 640, 1920, bgr.tobytes()), rgb)
    rgba = np.dstack([rgb, np.full((480, 640), 255, np.uint8)])
    assert np.array_equal(decode_image("rgba8", 480, 640, 2560, rgba.tobytes()), rgb)


def test_padded_rows_are_honoured():
    rgb = _frame()
    padded = np.zeros((480, 1920 + 64), np.uint8)
    padded[:, :1920] = rgb.reshape(480, 1920)
    assert np.array_equal(decode_image("rgb8", 480, 640, 1984, padded.tobytes()), rgb)


@pytest.mark.parametrize("args, words", [
    (("mono8", 480, 640, 640, bytes(640 * 480)), "encoding 'mono8'"),
    (("rgb8", 240, 320, 960, bytes(960 * 240)), "320x240"),
    (("rgb8", 480, 640, 1920, b""), "empty"),
    (("rgb8", 480, 640, 1920, bytes(1000)), "needs 921600"),
    (("rgb8", 480, 640, 1000, bytes(921600)), "row step 1000"),
    (("rgb8", 0, 0, 0, b""), "empty"),
])
def test_bad_frames_say_what_is_wrong(args, words):
    with pytest.raises(BadFrame, match=words):
        decode_image(*args)


# -- the pipeline with the explicit policy (no model needed) ---------------------------------------

def test_bad_frames_are_counted_and_hold_the_last_command():
    pipe = Pipeline(make_brain("explicit"))
    img = np.full((480, 640, 3), (78, 78, 82), np.uint8)
    img[240:, 317:323] = (220, 20, 20)
    good = pipe.process_image("rgb8", 480, 640, 1920, img.tobytes())
    assert good.ok and good.v > 0 and math.isfinite(good.w)
    bad = [pipe.process_image("mono8", 480, 640, 640, bytes(640 * 480)),
           pipe.process_image("rgb8", 10, 10, 30, bytes(300)),
           pipe.process_image("rgb8", 480, 640, 1920, b""),
           pipe.process(np.zeros((480, 640), np.uint8))]
    assert [s.status for s in bad] == ["bad_frame"] * 4
    assert all((s.v, s.w) == (good.v, good.w) for s in bad)
    assert pipe.bad_frames == 4 and pipe.iterations == 1 and pipe.bad_outputs == 0
    assert "mono8" in bad[0].error


def test_any_size_when_expected_size_is_none():
    pipe = Pipeline(PilotNetPolicy(_Linear(), DEFAULT, "linear"), expected_size=None)
    assert pipe.process(np.zeros((500, 400, 3), np.uint8)).ok
    step = pipe.process(np.zeros((300, 400, 3), np.uint8))   # too few rows for the 240:480 crop
    assert step.status == "bad_frame" and "rows" in step.error


def test_registry_refuses_unknown_brains_with_the_list():
    with pytest.raises(BrainStartError, match="explicit"):
        make_brain("nonsense")
    assert {"pilotnet", "explicit"} <= set(BRAINS)


class _Linear:
    """A tiny real 'backend': the mean of each input channel, as numpy computes it."""

    def predict(self, x):
        return x.mean(axis=(1, 2))[:, :2].astype(np.float32)

    def describe(self):
        return {"backend": "linear"}


def test_pipeline_outputs_are_the_sidecar_scaling_of_predictions():
    pre = Preprocessing(v_scale=10.0, v_offset=1.0, w_scale=2.0, w_offset=-1.0)
    pipe = Pipeline(PilotNetPolicy(_Linear(), pre, "linear"))
    img = np.zeros((480, 640, 3), np.uint8)
    img[..., 0], img[..., 1] = 255, 51      # p = (1.0, 0.2)
    step = pipe.process(img)
    assert step.ok
    assert step.v == pytest.approx(11.0, abs=1e-4) and step.w == pytest.approx(-0.6, abs=1e-4)
    assert step.preprocess_time > 0 and step.inference_time > 0


def test_policy_reuses_its_buffers_and_matches_the_shared_preprocessing():
    """The brain's per-frame path allocates nothing (its resize and input buffers are reused) and
    gives exactly what the shared preprocessing and output scaling give."""
    pre = Preprocessing(v_scale=17.5, v_offset=6.5, w_scale=14.2, w_offset=-7.1)
    policy = PilotNetPolicy(_Linear(), pre, "linear")
    rng = np.random.default_rng(5)
    small = policy._small
    for _ in range(3):
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        x = policy.preprocess(img)
        assert x is policy._x and policy._small is small
        np.testing.assert_array_equal(x[0], pre.image(img))
        p = rng.random((1, 2)).astype(np.float32)
        v, w = pre.outputs(p[0])
        assert policy.postprocess(p) == (float(v), float(w))


# -- with a real backend: a random-weight PilotNet exported to TFLite in the test ------------------

def _tflite(keras_model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory):
    """{'good': path, 'nan': path}: random-weight PilotNets as .tflite files with sidecars."""
    from pilotnet_brains.models import build_tf_pilotnet

    folder = tmp_path_factory.mktemp("tflite")
    model = build_tf_pilotnet(seed=3)
    paths = {}
    for kind in ("good", "nan"):
        if kind == "nan":
            kernel, bias = model.get_layer("outputs").get_weights()
            model.get_layer("outputs").set_weights([kernel, np.full_like(bias, np.nan)])
        path = str(folder / f"{kind}.tflite")
        with open(path, "wb") as f:
            f.write(_tflite(model))
        write_meta(path, ModelMeta(framework="tflite", method="tflite_fp32"))
        paths[kind] = path
    paths["keras"] = model
    return paths


def test_pipeline_on_a_real_tflite_backend(tflite_models):
    brain = make_brain("pilotnet", backend="tflite_fp32", model=tflite_models["good"], threads=1)
    pipe = Pipeline(brain)
    img = _frame(1)
    step = pipe.process_image("rgb8", 480, 640, 1920, img.tobytes())
    assert step.ok, step.error
    x = DEFAULT.image(img)[None]
    ref = brain.backend.predict(x)[0].astype(np.float64)
    v, w = DEFAULT.outputs(ref)
    assert step.v == pytest.approx(float(v), rel=1e-6) and step.w == pytest.approx(float(w), rel=1e-6)
    assert 0 < step.inference_time < 1.0
    bgr = pipe.process_image("bgr8", 480, 640, 1920, np.ascontiguousarray(img[..., ::-1]).tobytes())
    assert (bgr.v, bgr.w) == (step.v, step.w)


def test_nan_output_commands_a_stop_and_is_counted(tflite_models):
    pipe = Pipeline(make_brain("pilotnet", backend="tflite_fp32", model=tflite_models["nan"]))
    pipe.last_command = (10.0, 1.0)
    step = pipe.process(_frame(2))
    assert step.status == "bad_output" and (step.v, step.w) == (0.0, 0.0)
    assert pipe.bad_outputs == 1 and pipe.iterations == 1
    hold = Pipeline(make_brain("pilotnet", backend="tflite_fp32", model=tflite_models["nan"]),
                    stop_on_bad_output=False)
    hold.last_command = (10.0, 1.0)
    assert (hold.process(_frame(2)).v, hold.last_command) == (10.0, (10.0, 1.0))


def test_missing_model_names_backend_and_path(tmp_path):
    missing = str(tmp_path / "nowhere.tflite")
    with pytest.raises(BrainStartError) as e:
        make_brain("pilotnet", backend="tflite_int8", model=missing)
    assert "tflite_int8" in str(e.value) and "nowhere.tflite" in str(e.value)


def test_corrupt_model_and_missing_sidecar_are_clear(tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 10)
    write_meta(str(corrupt), ModelMeta(framework="tflite", method="tflite_fp32"))
    with pytest.raises(BrainStartError) as e:
        make_brain("pilotnet", backend="tflite_fp32", model=str(corrupt))
    assert "corrupt.tflite" in str(e.value)


def test_missing_sidecar_is_a_start_error(tflite_models, tmp_path):
    bare = tmp_path / "bare.tflite"
    with open(tflite_models["good"], "rb") as f:
        bare.write_bytes(f.read())
    assert not os.path.exists(str(bare) + ".meta.json")
    with pytest.raises(BrainStartError, match="sidecar"):
        make_brain("pilotnet", backend="tflite_fp32", model=str(bare))


def test_preprocessing_is_the_shared_module():
    """The brain's input is exactly preprocess.Preprocessing.image (no second implementation)."""
    pol = PilotNetPolicy(_Linear(), DEFAULT, "linear")
    img = _frame(4)
    expect = cv2.resize(img[240:480], (200, 66), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    assert np.allclose(pol.preprocess(img)[0], expect, atol=1e-6)


@pytest.mark.ros
def test_frame_slot_keeps_the_newest_and_counts_the_skipped():
    import threading
    import time

    from pilotnet_brains.ros.brain_node import FrameSlot

    slot = FrameSlot()
    for i in range(3):
        slot.put(i)
    assert slot.take(0.1) == 2 and slot.skipped == 2
    t0 = time.monotonic()
    assert slot.take(0.05) is None and time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, slot.put, args=("late",)).start()
    assert slot.take(2.0) == "late" and slot.skipped == 2      # a waiting worker gets it at once
    threading.Timer(0.05, slot.close).start()
    t0 = time.monotonic()
    assert slot.take(5.0) is None and time.monotonic() - t0 < 2.0
