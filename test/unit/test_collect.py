"""collect_dataset -> train, end to end on a tiny dataset, through the real scripts."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import run_tool

from pilotnet_brains import dataset
from pilotnet_brains.preprocess import V_RANGE, W_RANGE, read_meta


@pytest.mark.torch
def test_collect_then_train_smoke(tmp_path):
    data = tmp_path / "train"
    out = run_tool("collect_dataset", str(data), "--episodes", "1", "--episode-frames", "60",
                   "--circuits", "many_curves", "generated_1")
    assert "frames in 4 runs" in out.stdout
    samples = dataset.read_dataset(str(data))
    assert 120 <= len(samples) <= 240                              # episodes may end early off the road
    v = np.array([s.v for s in samples])
    w = np.array([s.w for s in samples])
    assert V_RANGE[0] <= v.min() and v.max() <= V_RANGE[1] and np.abs(w).max() <= W_RANGE[1]
    assert np.std(w) > 0.05                                        # perturbations make the expert steer
    summary = json.loads((data / "summary.json").read_text())
    assert set(summary["frames_per_circuit"]) == {"many_curves", "many_curves_rev", "generated_1", "generated_1_rev"}
    assert (data / "labels.png").stat().st_size > 1000

    model = tmp_path / "m.pt"
    run_tool("train", str(data), "--framework", "torch", "--epochs", "1", "--out", str(model))
    meta = read_meta(str(model))
    assert meta.framework == "torch" and meta.dataset == dataset.dataset_hash(samples)
    assert meta.extra["command"].startswith("train ")
    assert os.path.exists(str(model) + ".loss.png")


def test_collect_is_deterministic_given_a_seed(tmp_path):
    for name in ("a", "b"):
        run_tool("collect_dataset", str(tmp_path / name), "--episodes", "1", "--episode-frames", "15",
                 "--circuits", "generated_2", "--seed", "7")
    la = (tmp_path / "a" / "generated_2_000" / "data.csv").read_text()
    lb = (tmp_path / "b" / "generated_2_000" / "data.csv").read_text()
    assert la == lb
    fa = dataset.load_frame(str(tmp_path / "a" / "generated_2_000" / "10.png"))
    fb = dataset.load_frame(str(tmp_path / "b" / "generated_2_000" / "10.png"))
    np.testing.assert_array_equal(fa, fb)


def test_collect_refuses_evaluation_circuits_for_training(tmp_path):
    proc = run_tool("collect_dataset", str(tmp_path / "x"), "--circuits", "montreal", check=False)
    assert proc.returncode == 2 and "evaluation circuits" in proc.stderr


def test_train_reports_bad_dataset_clearly(tmp_path):
    (tmp_path / "run0").mkdir()
    (tmp_path / "run0" / "data.csv").write_text("image_name,v,w,timestamp\n0.png,7,0,0\n")
    proc = run_tool("train", str(tmp_path), "--framework", "tf", "--out", str(tmp_path / "m.keras"), check=False)
    assert proc.returncode == 2
    assert "row 2: frame 0.png is listed but" in proc.stderr
