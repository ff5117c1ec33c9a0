"""Bad inputs to the fine-tuning methods: clear errors, nothing half-written (fast: fail before training)."""
from __future__ import annotations

import os

import pytest
from conftest import run_tool

from pilotnet_brains.optimize import OptimizeError, build


def test_unknown_method_lists_the_fine_tuning_ones():
    with pytest.raises(OptimizeError) as e:
        build("tflite_qat2", data="synthetic")
    msg = str(e.value)
    assert "tflite_qat2" in msg
    for name in ("tflite_pruned", "tflite_pcqat", "torch_qat", "torch_pruned_local", "torch_pruned_quant"):
        assert name in msg


def test_missing_base_model(tmp_path):
    out = tmp_path / "build" / "torch_qat.pt"
    with pytest.raises(OptimizeError) as e:
        build("torch_qat", base=str(tmp_path / "nope.pt"), data="synthetic", out=str(out))
    assert "nope.pt" in str(e.value) and "does not exist" in str(e.value)
    assert not out.exists()


@pytest.mark.torch
def test_fine_tuning_needs_data(tmp_path):
    from pilotnet_brains.models import torch_pilotnet

    base = torch_pilotnet.save(torch_pilotnet.build(0), str(tmp_path / "base.pt"))
    with pytest.raises(OptimizeError) as e:
        build("torch_qat", base=base, out=str(tmp_path / "build" / "o.pt"))
    msg = str(e.value)
    assert "torch_qat" in msg and "training data" in msg and "--data DIR" in msg
    assert not (tmp_path / "build" / "o.pt").exists()


@pytest.mark.torch
def test_empty_training_folder_is_a_clear_error_and_leaves_nothing(tmp_path):
    from pilotnet_brains.models import torch_pilotnet

    base = torch_pilotnet.save(torch_pilotnet.build(0), str(tmp_path / "base.pt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "build"
    with pytest.raises(OptimizeError) as e:
        build("torch_pruned_global", base=base, data=str(empty), out=str(out_dir / "p.pt"), progress=False)
    msg = str(e.value)
    assert str(empty) in msg and "data.csv" in msg
    assert os.listdir(out_dir) == []          # no artifact, no partial file, no sidecar


def test_cli_reports_the_error_and_exit_code(tmp_path):
    proc = run_tool("optimize", "torch_pruned_local", "--base", str(tmp_path / "none.pt"), "--data", "synthetic",
                    "--out", str(tmp_path / "o.pt"), check=False, timeout=120)
    assert proc.returncode == 1
    assert "none.pt" in proc.stderr and "does not exist" in proc.stderr
    assert not (tmp_path / "o.pt").exists()
