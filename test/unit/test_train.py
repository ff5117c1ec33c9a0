"""Training smoke: a tiny dataset, one epoch per framework, artifacts and sidecar checked."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pilotnet_brains import dataset, train
from pilotnet_brains.preprocess import read_meta


def _tiny_dataset(root, runs=3, frames=24, seed=0):
    rng = np.random.default_rng(seed)
    for r in range(runs):
        writer = dataset.RunWriter(str(root / f"run{r}"))
        for i in range(frames):
            rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
            writer.add(rgb, v=float(rng.uniform(6.5, 24)), w=float(rng.uniform(-7.1, 7.1)), timestamp=0.05 * i)
        writer.close()
    return root


@pytest.mark.parametrize("framework", ["tf", pytest.param("torch", marks=pytest.mark.torch)])
def test_train_one_epoch_writes_model_sidecar_and_curve(tmp_path, framework):
    data = _tiny_dataset(tmp_path / "data")
    out = str(tmp_path / ("m.keras" if framework == "tf" else "m.pt"))
    cfg = train.TrainConfig(epochs=1, batch_size=8, seed=1)
    summary = train.train(framework, str(data), out, cfg, cache_dir=str(tmp_path / "cache"), progress=False,
                          log=lambda s: None)
    assert os.path.exists(out) and os.path.exists(out + ".loss.png")
    meta = read_meta(out)
    assert meta.dataset == summary["dataset_sha256"] and len(meta.dataset) == 64
    assert meta.extra["val_frames"] == 24 and meta.extra["train_frames"] == 48   # split by run, not by frame
    assert "smoke build" in meta.extra["smoke_build"]
    assert np.isfinite(summary["val_mse"])
    history = json.loads(open(out + ".history.json").read())["history"]
    assert history[0]["epoch"] == 1


def test_flip_augmentation_negates_w():
    x = np.zeros((64, 66, 200, 3), np.float32)
    x[:, :, :10] = 1.0                       # a bright band on the left
    y = np.tile(np.array([[0.3, 0.8]], np.float32), (64, 1))
    cfg = train.TrainConfig(jitter=0.0, blur_prob=0.0)
    xa, ya = train.augment(x, y, np.random.default_rng(0), cfg)
    flipped = ya[:, 1] < 0.5
    assert 10 < flipped.sum() < 54
    np.testing.assert_allclose(ya[flipped, 1], 0.2, atol=1e-6)         # w -> -w
    assert np.all(xa[flipped, :, -10:] == 1.0) and np.all(xa[~flipped, :, :10] == 1.0)
    np.testing.assert_array_equal(ya[:, 0], 0.3)


def test_single_run_cannot_be_split(tmp_path):
    data = _tiny_dataset(tmp_path / "data", runs=1, frames=4)
    with pytest.raises(train.TrainError, match="split by run folder"):
        train.train("tf", str(data), str(tmp_path / "m.keras"), train.TrainConfig(epochs=1), progress=False)


def test_unknown_framework(tmp_path):
    with pytest.raises(train.TrainError, match="choose one of"):
        train.train("jax", str(tmp_path), str(tmp_path / "m"), train.TrainConfig())


def test_train_refuses_to_overwrite_the_base_models_without_out_or_force(tmp_path):
    """``scripts/train DATA`` with defaults would replace the committed base models: it refuses,
    names them and says what to do, and leaves them untouched; --force gets past the refusal."""
    import subprocess

    from conftest import ROOT

    from pilotnet_brains.models import tf_base_path, torch_base_path
    from pilotnet_brains.util import sha256_path

    before = {p: sha256_path(p) for p in (tf_base_path(), torch_base_path())}
    exe = os.path.join(ROOT, "scripts", "train")
    out = subprocess.run([exe, str(tmp_path / "no_data")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "refusing to overwrite" in out.stderr and tf_base_path() in out.stderr and torch_base_path() in out.stderr
    assert "--out" in out.stderr and "--force" in out.stderr
    forced = subprocess.run([exe, str(tmp_path / "no_data"), "--force", "--framework", "torch"],
                            capture_output=True, text=True, timeout=300)
    assert forced.returncode == 2 and "refusing" not in forced.stderr and "no_data" in forced.stderr
    assert before == {p: sha256_path(p) for p in before}
