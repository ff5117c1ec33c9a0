"""The simulator's tools run and say what they do: make_circuits (committed circuit files are up to
date with their generator), make_worlds --docs, benchmark_sim (a tiny run prints its table)."""
from __future__ import annotations

import os

from conftest import ROOT, run_tool

from pilotnet_brains.circuit_design import GENERATED


def test_committed_circuit_files_match_their_layouts(tmp_path):
    proc = run_tool("make_circuits", "--out", str(tmp_path))
    names = sorted(GENERATED)
    assert sorted(f[:-5] for f in os.listdir(tmp_path)) == names
    for n in names:
        committed = open(os.path.join(ROOT, "config", "circuits", f"{n}.yaml")).read()
        assert open(tmp_path / f"{n}.yaml").read() == committed, f"{n}.yaml is stale: run scripts/make_circuits"
    assert "min radius" in proc.stdout


def test_tools_explain_themselves():
    for tool in ("make_circuits", "make_worlds", "benchmark_sim"):
        out = run_tool(tool, "--help").stdout
        assert "usage:" in out and len(out) > 300


def test_make_worlds_docs_pictures(tmp_path):
    run_tool("make_worlds", "simple_circuit", "--docs", str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["simple_circuit_camera.png", "simple_circuit_top.png"]


def test_benchmark_sim_prints_render_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_tool("benchmark_sim", "--circuits", "simple_circuit", "--frames", "30", "--min-time", "0",
                    "--ros-seconds", "0", "--json", str(out))
    assert "| simple_circuit |" in proc.stdout and "render ms p50" in proc.stdout
    import json

    r = json.loads(out.read_text())["render"][0]
    assert r["render_ms"]["n"] >= 30 and 0 < r["render_ms"]["p50"] <= r["render_ms"]["p99"]
