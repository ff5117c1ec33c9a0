"""Offline evaluation: circuits from folder names, the figures against an independent computation,
every output file with its columns and per-circuit rows, skipped backends with reasons, bad inputs."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from conftest import run_tool
from finetune_helpers import write_dls

from pilotnet_brains import evaluate as ev
from pilotnet_brains.util import sha256_path

RUNS = {"simple_circuit_1": 12, "montreal_run2": 10, "montmelo": 10}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Random-weight base models, three small CPU artifacts, a three-circuit DLS test set."""
    from pilotnet_brains.backends import BACKENDS
    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import build

    root = tmp_path_factory.mktemp("evaluate")
    models = root / "models"
    base = save_random_base_models(str(models), seed=0)
    for name in ("torchscript", "torch_dynamic", "tflite_dynamic"):
        spec = BACKENDS[name]
        build(name, base=base[spec.parent], data="synthetic:16", out=os.path.join(str(models), spec.default),
              progress=False)
    test = write_dls(str(root / "test"), RUNS, seed=3)
    return {"root": root, "models": str(models), "test": test, "base": base}


def test_circuit_of_folder_names():
    names = ["simple_circuit", "montreal", "montmelo", "many_curves"]
    assert ev.circuit_of("simple_circuit_1", names) == "simple_circuit"
    assert ev.circuit_of("/data/test/Montreal-run3", names) == "montreal"
    assert ev.circuit_of("montmelo", names) == "montmelo"
    assert ev.circuit_of("hockenheim_07", names) == "hockenheim"


def test_bad_test_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ev.EvaluationError) as e:
        ev.load_test_set(str(tmp_path / "nope"))
    assert "nope" in str(e.value) and "--test" in str(e.value)
    with pytest.raises(ev.EvaluationError) as e:
        ev.load_test_set(str(tmp_path))
    assert "data.csv" in str(e.value)


def test_unknown_artifact_lists_backends(tmp_path):
    with pytest.raises(ev.EvaluationError) as e:
        ev.discover(["tflite_int9"], str(tmp_path))
    assert "tflite_int9" in str(e.value) and "tflite_int8" in str(e.value) and "torch_qat" in str(e.value)


@pytest.mark.torch
def test_test_set_per_circuit(built):
    test = ev.load_test_set(built["test"], progress=False)
    assert test.circuits == ["montmelo", "montreal", "simple_circuit"]
    assert {c: int(test.mask(c).sum()) for c in test.circuits} == {"montmelo": 10, "montreal": 10,
                                                                   "simple_circuit": 12}
    assert test.x.shape == (32, 66, 200, 3) and test.y.shape == (32, 2)


@pytest.mark.torch
def test_evaluate_offline_writes_the_table(built, tmp_path):
    out_root = tmp_path / "results"
    names = ["torchscript", "torch_dynamic", "tflite_dynamic", "tftrt_fp16", "tflite_qat"]
    proc = run_tool("evaluate_offline", *names, "--models", built["models"], "--test", built["test"],
                    "--out-dir", str(out_root), "--run-id", "t1", "--batch", "4", "--min-count", "20",
                    "--min-seconds", "0.2", "--warmup", "0.1", "--quiet", timeout=300)
    folder = out_root / "t1"
    assert sorted(os.listdir(out_root)) == ["t1"]                       # no partial folder left
    assert sorted(os.listdir(folder)) == ["bars.png", "offline.csv", "offline.json", "offline.md", "scatter.png"]

    with open(folder / "offline.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ev.CSV_COLUMNS
        rows = list(reader)
    evaluated = ["torchscript", "torch_dynamic", "tflite_dynamic"]
    scopes = {(r["method"], r["scope"]) for r in rows}
    assert scopes == {(m, s) for m in evaluated for s in ("simple_circuit", "montreal", "montmelo", "overall")}
    assert all(r["batch"] == "4" and r["threads"] == "1" for r in rows)

    result = json.loads((folder / "offline.json").read_text())
    by = {r["method"]: r for r in result["rows"]}
    assert set(by) == set(evaluated)
    skipped = {s["method"]: s["reason"] for s in result["skipped"]}
    assert "cannot run on this machine" in skipped["tftrt_fp16"]
    assert "not built" in skipped["tflite_qat"] and "scripts/optimize tflite_qat" in skipped["tflite_qat"]
    for r in by.values():
        assert len(r["raw_ns"]["batch1"]) >= 20 and len(r["raw_ns"]["batch4"]) >= 10
        lat = r["latency_s"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
        assert r["throughput_fps"] > 0 and r["size_bytes"] > 0 and r["gzip_bytes"] > 0
        assert r["sha256"] == sha256_path(r["path"])    # what the campaign report joins on
    # torchscript is the fp32 torch model: same outputs as its parent, and its MSE checks out
    # against an independent computation from the base model and the labels
    assert by["torchscript"]["max_abs_diff_parent"] <= 1e-5
    test = ev.load_test_set(built["test"], progress=False)
    ref = ev.parent_outputs("torch", built["base"]["torch"], test.x)
    want = float(np.mean((ref - test.y) ** 2))
    assert by["torchscript"]["accuracy"]["overall"]["mse"] == pytest.approx(want, rel=1e-4)
    m = test.mask("montreal")
    assert by["torchscript"]["accuracy"]["montreal"]["mse"] == pytest.approx(
        float(np.mean((ref[m] - test.y[m]) ** 2)), rel=1e-4)
    v_rmse = float(np.sqrt(np.mean(((ref[:, 0] - test.y[:, 0]) * 17.5) ** 2)))
    assert by["torchscript"]["accuracy"]["overall"]["rmse_v_mps"] == pytest.approx(v_rmse, rel=1e-4)
    # quantized rows carry a target verdict (ok, or MISS with the reason); int8 outputs dequantized
    for name in ("torch_dynamic", "tflite_dynamic"):
        assert by[name]["target"] == "ok" or by[name]["target"].startswith("MISS: MSE")
        assert by[name]["max_abs_diff_parent"] < 0.1
    assert by["torch_dynamic"]["size_ratio_vs_fp32"] > 2

    md = (folder / "offline.md").read_text()
    assert "| Method | Model size (MB) | MSE | Inference time (s) |" in md
    assert "## MSE per evaluation circuit" in md and "| montmelo | montreal | simple_circuit | overall |" in md
    assert "tftrt_fp16: cannot run on this machine" in md
    assert "fastest batch-1 p50" in md and "Smoke build" in md
    best = max(by.values(), key=lambda r: r["throughput_fps"])
    assert (f"- fastest batch runtime here: {best['runtime']} {best['runtime_version']} ({best['method']}, "
            f"{best['throughput_fps']:.0f} fps at batch 4)") in md
    assert "montreal (10)" in md and "Throughput (fps @4)" in md
    assert "evaluate_offline" in proc.stdout or "wrote" in proc.stdout


def _timed(method, mse, parent_mse, p50, runtime="litert"):
    return {"method": method, "runtime": runtime, "runtime_version": "1", "accuracy": {"overall": {"mse": mse}},
            "parent": None if parent_mse is None else {"mse": parent_mse},
            "latency_s": {"p50": p50, "p99": 2 * p50}}


def test_rank_default_picks_the_fastest_within_the_mse_budget():
    rows = [_timed("tflite_int8", 0.0230, 0.0225, 3.7e-4), _timed("onnx_int8", 0.0240, 0.0225, 2.0e-4),
            _timed("keras", 0.0225, None, 2e-3), _timed("openvino_int8", 0.0236, 0.0225, 2.5e-4)]
    ranked = ev.rank_default(rows)
    assert [r["method"] for r in ranked] == ["onnx_int8", "openvino_int8", "tflite_int8", "keras"]
    ok = {r["method"]: r["ok"] for r in ranked}
    assert ok == {"onnx_int8": False, "openvino_int8": True, "tflite_int8": True, "keras": True}  # +6.7 %, +4.9 %
    assert ranked[-1]["parent_mse"] == 0.0225 and ranked[-1]["mse_ratio"] == 1.0    # a base model is its own fp32
    result = {"run_id": "r", "settings": {"threads": 1, "rounds": 5, "min_count": 200, "min_seconds": 2.0},
              "environment": {"cpu": "Test CPU", "cpu_count": 2, "python": "3.11", "platform": "Linux"},
              "test": {"root": "data/test", "frames": 100}, "rows": rows}
    md = ev.default_markdown(result)
    assert "Test CPU (2 cores)" in md and "**Chosen: openvino_int8**" in md and "backend:=tflite_int8" in md
    assert "| 1 | onnx_int8 | litert 1 | 0.200 | 0.400 | – | – | – | 0.02400 | 0.02250 | +6.7% | no |" in md
    result["rows"] = [_timed("tflite_int8", 0.03, 0.0225, 3.7e-4), _timed("onnx_int8", 0.03, 0.0225, 2.0e-4)]
    assert "**Chosen: none**" in ev.default_markdown(result)


def test_compute_rate_from_the_layer_plan_and_the_detected_peak():
    """GMAC/s is PilotNet's multiply-adds (from its layer plan) over the p50; the peak shares follow
    the ISA flags this CPU has (None without the unit)."""
    from pilotnet_brains import hostinfo
    from pilotnet_brains.models import CONV_LAYERS, layer_macs, macs

    layers = dict(layer_macs())
    assert layers["conv1"] == 31 * 98 * 24 * 5 * 5 * 3 and layers["fc1"] == 1152 * 1164
    assert len(layers) == len(CONV_LAYERS) + 5 and macs() == sum(layers.values())
    rate = ev.compute_rate(1e-3, threads=1)
    assert rate["gmacs"] == pytest.approx(macs() / 1e-3 / 1e9)
    peak = hostinfo.int8_peak(1)
    flags = hostinfo.isa_flags()
    assert (peak["amx"] is None) is ("amx_int8" not in flags) or not peak["mhz"]
    if peak["vnni"]:
        assert rate["vnni_pct"] == pytest.approx(100 * macs() / 1e-3 / peak["vnni"])
        assert hostinfo.int8_peak(2)["vnni"] == pytest.approx(peak["vnni"] * min(2, os.cpu_count()))
    else:
        assert rate["vnni_pct"] is None
    assert "derived" in peak["method"] and "MHz" in peak["method"]


def test_two_builds_of_one_backend_get_their_own_rows():
    """Two artifacts of one backend (e.g. before and after a rewrite) are told apart by their file."""
    rows = [dict(_timed("onnx_int8", 0.0230, 0.0225, 3e-4), path="/m/old/onnx_int8.onnx"),
            dict(_timed("onnx_int8", 0.0230, 0.0225, 2e-4), path="/m/build/onnx_int8.onnx"),
            dict(_timed("tflite_int8", 0.0230, 0.0225, 4e-4), path="/m/build/tflite_int8.tflite")]
    assert [ev.label(r, rows) for r in rows] == ["onnx_int8 (old/onnx_int8.onnx)", "onnx_int8 (build/onnx_int8.onnx)",
                                                 "tflite_int8"]
    result = {"run_id": "r", "settings": {"threads": 1, "rounds": 5, "min_count": 200, "min_seconds": 2.0},
              "environment": {"cpu": "Test CPU", "cpu_count": 2}, "test": {"root": "t", "frames": 1}, "rows": rows}
    md = ev.default_markdown(result)
    assert "**Chosen: onnx_int8 (build/onnx_int8.onnx)**" in md
    assert "`backend:=onnx_int8` `model:=/m/build/onnx_int8.onnx`" in md


@pytest.mark.torch
def test_evaluate_offline_pick_default(built, tmp_path):
    """--pick-default ranks what it evaluated (side by side) and writes default.md; the launch default stays."""
    out_root = tmp_path / "results"
    proc = run_tool("evaluate_offline", "torchscript", "torch_dynamic", "tflite_dynamic", "--pick-default",
                    "--models", built["models"], "--test", built["test"], "--out-dir", str(out_root), "--run-id",
                    "p", "--batch", "4", "--min-count", "20", "--min-seconds", "0.2", "--warmup", "0.1",
                    "--quiet", timeout=300)
    md = (out_root / "p" / "default.md").read_text()
    assert md in proc.stdout + "\n" and "Machine: " in md
    result = json.loads((out_root / "p" / "offline.json").read_text())
    ranked = ev.rank_default(result["rows"])
    chosen = next(r["method"] for r in ranked if r["ok"])      # torchscript is its parent: always within
    assert f"**Chosen: {chosen}**" in md and [r["p50_s"] for r in ranked] == sorted(r["p50_s"] for r in ranked)
    bad = run_tool("evaluate_offline", "--pick-default", "--speed", check=False)
    assert bad.returncode == 2 and "--pick-default needs --test" in bad.stderr
    bad = run_tool("benchmark_backends", "--pick-default", check=False)
    assert bad.returncode == 2 and "--pick-default needs --test" in bad.stderr


@pytest.mark.torch
def test_evaluate_offline_bad_test_dir_writes_nothing(built, tmp_path):
    out_root = tmp_path / "results"
    proc = run_tool("evaluate_offline", "torchscript", "--models", built["models"], "--test",
                    str(tmp_path / "missing"), "--out-dir", str(out_root), "--quiet", check=False, timeout=120)
    assert proc.returncode == 2
    assert "missing" in proc.stderr and "does not exist" in proc.stderr
    assert not out_root.exists() or os.listdir(out_root) == []


def _row(method, mse, parent_mse=None, smoke=False, size=1000, diff=0.01):
    return {"method": method, "accuracy": {"overall": {"mse": mse}}, "size_bytes": size, "smoke": smoke,
            "parent": None if parent_mse is None else {"mse": parent_mse}, "max_abs_diff_parent": diff}


def test_targets_name_the_misses_and_why():
    rows = [_row("tflite_fp32", 0.040, 0.040, size=4000), _row("tflite_int8", 0.0415, 0.040),
            _row("tflite_int8_fallback", 0.050, 0.040), _row("tflite_pruned", 0.060, 0.040),
            _row("tflite_pruned_dynamic", 0.061, 0.040), _row("torch_qat", 0.09, 0.04, smoke=True)]
    ev.check_targets(rows)
    t = {r["method"]: r["target"] for r in rows}
    assert t["tflite_fp32"] == "" and t["tflite_pruned"] == ""          # not quantized: no target
    assert t["tflite_int8"] == "ok"                                      # +3.75 %
    assert t["tflite_int8_fallback"].startswith("MISS: MSE +25.0% vs parent base model")
    assert "quantization error: max abs Δ vs parent 0.01" in t["tflite_int8_fallback"]
    assert t["tflite_pruned_dynamic"] == "ok"                            # vs tflite_pruned, +1.7 %
    assert "smoke build" in t["torch_qat"] and "fine-tuned weights" in t["torch_qat"]
    assert rows[1]["size_ratio_vs_fp32"] == 4.0


def test_reports_show_paths_inside_the_package_relative_to_it():
    from pilotnet_brains import PACKAGE_ROOT

    assert ev.shown_path(os.path.join(PACKAGE_ROOT, "data", "test")) == os.path.join("data", "test")
    assert ev.shown_path("/elsewhere/data") == "/elsewhere/data"
    assert ev.shown_path(PACKAGE_ROOT + "_other/x") == PACKAGE_ROOT + "_other/x"
    [art] = ev.discover(["tflite_qat"], os.path.join(PACKAGE_ROOT, "no_such_models"))
    assert art.path == os.path.join(PACKAGE_ROOT, "no_such_models", "build", "tflite_qat.tflite")
    assert "not built (no_such_models/build/tflite_qat.tflite missing)" in art.skip


def test_synthetic_test_set_has_no_labels():
    test = ev.synthetic_test_set(8, seed=1)
    assert test.x.shape == (8, 66, 200, 3) and test.y is None and test.circuits == ["synthetic"]
    assert int(test.mask("synthetic").sum()) == 8
