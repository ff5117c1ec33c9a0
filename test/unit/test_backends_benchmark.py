"""scripts/benchmark_backends runs end to end (tiny counts) and writes its JSON + Markdown; no timing asserted."""
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
                    "--min-seconds", "0.05", "--warmup-seconds", "0.05", "--out", str(out), timeout=300)
    assert "tflite_int8" in proc.stdout and "onnx_fp32" in proc.stdout and "p50 ms" in proc.stdout
    [jpath] = glob.glob(str(out / "*.json"))
    [mpath] = glob.glob(str(out / "*.md"))
    data = json.load(open(jpath))
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"tflite_int8", "onnx_fp32"}
    for r in rows.values():
        assert r["count"] >= 30 and len(r["times_us"]) == r["count"]
        assert 0 < r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["max_us"]
        assert r["threads"] == 1 and r["size_bytes"] > 0 and r["rss_mb"] > 0 and r["import_s"] > 0
        assert r["max_abs_err"] <= r["tolerance"] or r["max_abs_err"] < 1e-5
    assert data["settings"]["threads"] == 1 and data["machine"]["cores"] == os.cpu_count()
    md = open(mpath).read()
    assert "| tflite_int8 |" in md and "p99 ms" in md


def test_benchmark_unknown_backend(tmp_path):
    proc = run_tool("benchmark_backends", "--backends", "nope", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "valid backends" in proc.stderr
