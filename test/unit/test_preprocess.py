"""The one preprocessing: crop/resize/normalize and output scaling, and the metadata sidecar."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pilotnet_brains import preprocess as pp


def test_image_crops_lower_half_and_scales_to_unit_range():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[240:] = (255, 0, 128)          # only the lower half is coloured
    x = pp.DEFAULT.image(rgb)
    assert x.shape == (66, 200, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], 1.0)
    np.testing.assert_allclose(x[..., 2], 128 / 255, atol=1e-6)


def test_mean_std_normalization_is_applied():
    prep = pp.Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = prep.image(np.full((480, 640, 3), 255, np.uint8))
    np.testing.assert_allclose(x, 2.0, atol=1e-5)


def test_outputs_follow_the_published_scaling():
    v, w = pp.DEFAULT.outputs(np.array([[0.0, 0.5], [1.0, 1.0]]))
    np.testing.assert_allclose(v, [6.5, 24.0])
    np.testing.assert_allclose(w, [0.0, 7.1], atol=1e-12)


@pytest.mark.parametrize("bad", [np.zeros((480, 640), np.uint8), np.zeros((480, 640, 3), np.float32),
                                 np.zeros((100, 640, 3), np.uint8), np.zeros((0, 0, 3), np.uint8)])
def test_bad_images_raise_preprocess_error(bad):
    with pytest.raises(pp.PreprocessError):
        pp.DEFAULT.image(bad)


def test_sidecar_round_trip_and_errors(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    meta = pp.ModelMeta(framework="tflite", method="tflite_fp32",
                        preprocessing=pp.Preprocessing(v_scale=10.0), extra={"note": 1})
    pp.write_meta(str(model), meta)
    back = pp.read_meta(str(model))
    assert back.preprocessing.v_scale == 10.0 and back.extra == {"note": 1}
    with pytest.raises(FileNotFoundError, match="no metadata sidecar"):
        pp.read_meta(str(tmp_path / "other.tflite"))
    (tmp_path / "m.tflite.meta.json").write_text(json.dumps({"framework": "x", "method": "y",
                                                             "preprocessing": {"bogus": 1}}))
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        pp.read_meta(str(model))
