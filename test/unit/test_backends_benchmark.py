"""scripts/benchmark_backends (evaluate_offline --speed) runs end to end (tiny counts) and writes its JSON +
Markdown; no timing asserted."""
from __future__ import annotations

import glob
import json
import os

import pytest
from conftest import run_tool


@pytest.mark.torch   # onnx_fp32 is exported from the torch model
def test_benchmark_smoke(tmp_path):
    out = tmp_path / "bench"
    proc = run_tool("benchmark_backends", "--backends", "tflite_int8,onnx_fp32", "--min-count", "30",
                    "--min-seconds", "0.05", "--warmup-seconds", "0.05", "--batch", "4",
                    "--out", str(out), timeout=300)
    assert "tflite_int8" in proc.stdout and "onnx_fp32" in proc.stdout and "p50 ms" in proc.stdout
    [jpath] = glob.glob(str(out / "*" / "speed.json"))
    [mpath] = glob.glob(str(out / "*" / "speed.md"))
    data = json.load(open(jpath))
    rows = {r["method"]: r for r in data["rows"]}
    assert set(rows) == {"tflite_int8", "onnx_fp32"} and data["skipped"] == []
    for r in rows.values():
        lat = r["latency_s"]
        assert lat["unit"] == "s" and lat["n"] >= 30 and len(r["raw_ns"]["batch1"]) == lat["n"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert len(r["raw_ns"]["batch4"]) >= 10 and r["throughput_fps"] > 0
        fresh = r["fresh"]
        assert r["size_bytes"] > 0 and fresh["rss_mb"] > 0 and fresh["import_s"] > 0 and fresh["load_s"] > 0
        assert r["max_abs_diff_parent"] <= r["tolerance"] or r["max_abs_diff_parent"] < 1e-5
        assert r["accuracy"] is None   # synthetic frames have no labels
    assert data["settings"]["threads"] == 1 and data["environment"]["cpu_count"] == os.cpu_count()
    md = open(mpath).read()
    assert "| tflite_int8 |" in md and "p99 ms" in md and "Machine: " in md


def test_benchmark_unknown_backend(tmp_path):
    proc = run_tool("benchmark_backends", "--backends", "nope", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "valid backends" in proc.stderr
    assert os.listdir(tmp_path) == []
