"""scripts/benchmark on the real stack: each run a circuit.launch with its own master (embedded
simulator in lockstep, real brains, real metrics node). A tiny campaign (the explicit brain and a
random-weight TFLite model, short lap timeout, a seeded reverse start) writes its report; the same
campaign killed after one run and resumed gives the same report (lockstep determinism included);
a run that outlives its wall timeout becomes DNF "hung" and the campaign goes on."""
from __future__ import annotations

import csv
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_tool

from pilotnet_brains import campaign as cp
from pilotnet_brains.campaign.launcher import STOP_GRACE
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.util import processes_naming

LAP_TIMEOUT = 8.0          # sim s: the runs end quickly (DNF timeout), whatever the brain does


@pytest.fixture(scope="module")
def random_tflite(tmp_path_factory):
    """A small TFLite model (dynamic-range) converted from a random-weight tf_keras PilotNet."""
    from pilotnet_brains.models import build_tf_pilotnet, tf_pilotnet
    from pilotnet_brains.optimize import build

    folder = tmp_path_factory.mktemp("bench_model")
    base = tf_pilotnet.save(build_tf_pilotnet(0), str(folder / "pilotnet_tf.keras"), {"weights": "random", "seed": 0})
    return build("tflite_dynamic", base=base, data="synthetic:16", out=str(folder / "random_dynamic.tflite"),
                 progress=False)


def write_campaign(path, **over) -> str:
    data = {"name": "tiny_test", "circuits": ["simple_circuit"], "mode": "lockstep", "laps": 1,
            "timeouts": {"lap": LAP_TIMEOUT, "run": 150}}
    data.update(over)
    path.write_text(json.dumps(data))          # JSON is YAML
    return str(path)


def tiny(tmp_path, model: str) -> str:
    return write_campaign(tmp_path / "tiny_test.yaml", backends=[
        "explicit", {"backend": "tflite_dynamic", "model": model, "label": "random_dynamic"}],
        starts={"random": 1, "seed": 3, "direction": "reverse"})


def wait_gone(marker: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while processes_naming(marker):
        assert time.monotonic() < deadline, f"processes of {marker} still alive: {processes_naming(marker)}"
        time.sleep(0.5)


def kill_driver_when(args: list[str], checks, timeout: float) -> None:
    """Start ``scripts/benchmark ARGS`` and SIGKILL it (no clean-up of its own) once each ``(what,
    ready)`` check holds, in turn; fails with ``what`` when one does not within ``timeout`` s."""
    victim = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "benchmark"), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        for what, ready in checks:
            while not ready():
                assert victim.poll() is None, victim.stdout.read()
                assert time.monotonic() < deadline, what
                time.sleep(0.2)
        victim.kill()
        victim.wait()
    finally:
        if victim.poll() is None:
            victim.kill()


def sim_laps(summary: dict) -> dict:
    """run_id -> [lap fields that do not depend on the wall clock]."""
    return {r["run_id"]: [{k: lap.get(k) for k in cp.SIM_FIELDS} for lap in r["laps"]] for r in summary["runs"]}


@pytest.mark.timeout(1200)   # three campaigns of two runs each (up to 400 s each allowed below)
def test_tiny_campaign_report_then_killed_and_resumed_gives_the_same(random_tflite, tmp_path):
    spec_file = tiny(tmp_path, random_tflite)
    out_a, out_b = tmp_path / "a", tmp_path / "b"

    # --- campaign A, straight through -------------------------------------------------------------
    t0 = time.monotonic()
    proc = run_tool("benchmark", spec_file, "--out", str(out_a), timeout=400)
    wall_a = time.monotonic() - t0
    print(proc.stdout, f"\n(campaign A took {wall_a:.0f} s)")
    a = out_a / "tiny_test"
    for name in ("report.md", "summary.csv", "summary.json", "runs.csv", "trajectories_simple_circuit.png",
                 "inference_frequency.png", "deviation_vs_inference.png"):
        assert (a / name).stat().st_size > 0, name
    summary = json.loads((a / "summary.json").read_text())
    rows = {r["method"]: r for r in summary["summary"]}
    assert set(rows) == {"explicit", "random_dynamic"}
    assert [r["outcome"] for r in summary["runs"]] == ["done", "done"]
    ex, rnd = rows["explicit"], rows["random_dynamic"]
    assert ex["laps"] == rnd["laps"] == 1 and ex["circuit"] == "simple_circuit"
    assert ex["dnf"] == ["timeout"]                                    # 8 s of a 428.7 m lap
    assert ex["deviation_mae"]["mean"] < 0.3 and ex["average_speed"]["mean"] > 5.0
    assert rnd["inference_time_mean"]["mean"] > 0 and rnd["model"] == os.path.abspath(random_tflite)
    report = (a / "report.md").read_text()
    assert "| explicit |" in report and "| random_dynamic |" in report and "Machine:" in report
    assert "lockstep" in report and "## Targets" in report
    with open(a / "runs.csv") as f:
        lap_rows = list(csv.DictReader(f))
    assert {r["method"] for r in lap_rows} == {"explicit", "random_dynamic"} and len(lap_rows) == 2
    assert "simple_circuit_rev0_explicit_r1: lap 1 DNF timeout" in proc.stdout

    # the seeded start: reversed circuit, the same point for both methods, and the metrics agree
    (start,) = cp.circuit_starts("simple_circuit", {"random": 1, "seed": 3, "direction": "reverse"})
    assert start.reverse and start.s is not None
    rev = load_circuit("simple_circuit", reverse=True)
    for r in summary["runs"]:
        assert r["reverse"] and r["start_s"] == start.s
        track = np.loadtxt(os.path.join(r["folder"], "track.csv"), delimiter=",", skiprows=1, ndmin=2)
        assert np.hypot(*(track[0, 2:4] - rev.point_at(start.s)[0])) < 1.5, "the car did not start at start_s"
    explicit_lap = next(r for r in summary["runs"] if r["method"] == "explicit")["laps"][0]
    assert explicit_lap["percentage"] > 5.0          # forward progress on the reversed lap

    # --- campaign B: killed (SIGKILL, no clean-up) after its first run, then resumed ---------------
    b = out_b / "tiny_test"
    first = b / "runs" / "simple_circuit_rev0_explicit_r1" / cp.RUN_RECORD
    in_flight = b / "runs" / "simple_circuit_rev0_random_dynamic_r1" / "laps.json"   # its metrics node is up
    kill_driver_when([spec_file, "--out", str(out_b), "--no-progress"],
                     [("the first run did not finish", first.exists),
                      ("the second run did not start", in_flight.exists)], timeout=200)
    wait_gone(str(b))                                                 # the run in flight died with it
    second = b / "runs" / "simple_circuit_rev0_random_dynamic_r1"
    assert not (second / cp.RUN_RECORD).exists()

    resumed = run_tool("benchmark", spec_file, "--out", str(out_b), "--no-progress", timeout=400)
    assert "1 already finished, 1 to run" in resumed.stdout, resumed.stdout
    assert "simple_circuit_rev0_explicit_r1" not in resumed.stdout.split("to run")[1]   # not run again
    summary_b = json.loads((b / "summary.json").read_text())
    assert sim_laps(summary_b) == sim_laps(summary)                   # lockstep: identical, but wall clock
    for run_id in sim_laps(summary):
        ta = np.loadtxt(a / "runs" / run_id / "track.csv", delimiter=",", skiprows=1, ndmin=2)
        tb = np.loadtxt(b / "runs" / run_id / "track.csv", delimiter=",", skiprows=1, ndmin=2)
        assert ta.shape == tb.shape and np.array_equal(ta[:, 2:], tb[:, 2:]), run_id   # x, y, s, lateral, progress
    rows_b = {r["method"]: r for r in summary_b["summary"]}
    for method, row in rows.items():
        for key in ("average_speed", "deviation_mae", "deviation_max", "percentage", "distance", "lap_time",
                    "brain_frequency_sim"):
            assert rows_b[method][key] == row[key], (method, key)
        assert (rows_b[method]["completed"], rows_b[method]["dnf"]) == (row["completed"], row["dnf"])
    table_rows = [line for line in (b / "report.md").read_text().splitlines() if line.startswith("| random_dynamic |")]
    assert len(table_rows) == 1 and "0/1 (DNF timeout)" in table_rows[0]


def test_a_run_past_its_wall_timeout_is_dnf_hung_and_the_campaign_goes_on(tmp_path):
    # No lap timeout, realtime at RTF 1: the explicit brain's lap takes ~42 s of wall time, far past the
    # run's 6 s (in lockstep a fast machine finishes the lap in about 6 s, and the run is then not hung).
    # Two runs at once (--jobs 2), each with its own master: both end as hung, the report is written.
    spec_file = write_campaign(tmp_path / "hang.yaml", name="hang", backends=["explicit"], repetitions=2,
                               mode="realtime", rtf=1.0, timeouts={"lap": 0, "run": 6})
    out = tmp_path / "out"
    proc = run_tool("benchmark", spec_file, "--out", str(out), "--no-progress", "--jobs", "2", timeout=200)
    cdir = out / "hang"
    summary = json.loads((cdir / "summary.json").read_text())
    assert [r["outcome"] for r in summary["runs"]] == ["hung", "hung"], proc.stdout   # the second still ran
    spans = []
    for r in summary["runs"]:
        rec = json.loads((cdir / "runs" / r["run_id"] / cp.RUN_RECORD).read_text())
        # ended at its timeout: SIGINT, at most STOP_GRACE for roslaunch, then SIGKILL (+ polling, reaping)
        assert rec["outcome"] == "hung" and 6.0 <= rec["wall_s"] < 6.0 + STOP_GRACE + 10.0
        assert r["laps"][-1]["dnf_reason"] == "hung"
        end = datetime.datetime.fromisoformat(rec["finished"]).timestamp()
        spans.append((end - rec["wall_s"], end))
    # --jobs 2: the two runs overlapped (the record's time has 1 s resolution, hence the margin)
    assert max(start for start, _ in spans) < min(end for _, end in spans) - 1.0, spans
    (row,) = summary["summary"]
    assert row["completed"] == 0 and row["dnf"] == ["hung"]
    assert "DNF hung" in (cdir / "report.md").read_text()
    assert "2 hung" in proc.stdout
    wait_gone(str(cdir), timeout=5.0)                                  # nothing of the runs is left
    # a resume skips hung runs unless asked to retry them
    listing = run_tool("benchmark", spec_file, "--out", str(out), "--list").stdout
    assert "2 already finished, 0 to run" in listing
    listing = run_tool("benchmark", spec_file, "--out", str(out), "--list", "--retry", "hung").stdout
    assert "0 already finished, 2 to run" in listing
