"""scripts/benchmark_brain end to end on the explicit brain (no model needed): its own private master,
the real node, the JSON with every timing and the Markdown table."""
from __future__ import annotations

import glob
import json
import os

import pytest
from conftest import run_tool


@pytest.mark.parametrize("receiver", ["SCHED_OTHER", "SCHED_BATCH"])
def test_benchmark_brain_writes_json_and_markdown(tmp_path, receiver):
    proc = run_tool("benchmark_brain", "--backends", "explicit", "--min-count", "30", "--min-seconds", "0.2",
                    "--warmup-seconds", "0.1", "--e2e-count", "30", "--e2e-warmup", "5", "--wake-count", "40", "--out", str(tmp_path),
                    *(["--receiver-batch"] if receiver == "SCHED_BATCH" else []), timeout=180)
    (js,) = glob.glob(os.path.join(tmp_path, "brain_*.json"))
    (md,) = glob.glob(os.path.join(tmp_path, "brain_*.md"))
    doc = json.load(open(js))
    (row,) = doc["rows"]
    assert row["backend"] == "explicit" and "e2e_error" not in row, row.get("e2e_error")
    assert len(row["brain_ns"]) >= 30 and len(row["e2e_ns"]) == 30
    assert 0 < row["brain"]["p50"] <= row["brain"]["p99"]
    assert 0 < row["e2e"]["p50"] < 1000 and row["node_iteration"]["n"] >= 25
    assert doc["environment"]["threads"] == 1
    table = open(md).read()
    assert "| explicit |" in table and "e2e p50" in table
    wake = doc["wake_up"]
    assert wake["same_core"]["n"] == 40 and wake["same_core"]["p50"] > 0
    assert "costs the sender" in table
    assert "| explicit |" in proc.stdout
    # the commands' receiving thread ran with the policy asked for, and the table says which
    assert doc["receiver_policy"] == receiver and f"The command's receiver ran {receiver}" in table


def test_benchmark_brain_refuses_missing_artifacts_with_advice(tmp_path):
    proc = run_tool("benchmark_brain", "--backends", "tflite_int8", "--model", f"tflite_int8={tmp_path}/none.tflite",
                    "--out", str(tmp_path), check=False, timeout=60)
    assert proc.returncode != 0 and "--random" in proc.stderr
