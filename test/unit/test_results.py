"""Run folders: atomic result files, the Markdown table, CSV columns, JSON without NaN, plots, identity."""
from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import math
import os
import threading

import numpy as np
import pytest

from pilotnet_brains import results
from pilotnet_brains.circuits import Circuit
from pilotnet_brains.metrics import LapLimits, detect_laps
from pilotnet_brains.reporting import to_json
from pilotnet_brains.util import atomic_write_text

R = 30.0


def circle() -> Circuit:
    pts = [[R * math.cos(a), R * math.sin(a)] for a in np.linspace(0, 2 * math.pi, 37)]
    return Circuit("circle", pts, road_width=6.0, line_width=0.3, start_pose=(R, 0.0, math.pi / 2))


def one_lap():
    """A completed lap at radius R + 0.5 and 10 m/s, plus a second lap that stops (stuck)."""
    c = circle()
    t = np.arange(0.0, 40.0, 0.05)
    a = np.minimum(10.0 * t / (R + 0.5), 2 * math.pi * 1.25)     # 1.25 turns then standing still
    xy = np.stack([(R + 0.5) * np.cos(a), (R + 0.5) * np.sin(a)], axis=1)
    tracker, laps = detect_laps(c, t, xy, LapLimits(laps=2, timeout=1e6))
    return c, tracker, laps


def test_atomic_write_readers_see_old_or_new_never_partial(tmp_path):
    """A reader polling while a writer replaces a large file only ever sees a whole version."""
    path = str(tmp_path / "laps.json")
    versions = [json.dumps({"v": i, "pad": "x" * 200_000}) for i in range(30)]
    atomic_write_text(path, versions[0])
    seen, bad = set(), []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            with open(path) as f:
                text = f.read()
            try:
                seen.add(json.loads(text)["v"])
            except ValueError:
                bad.append(len(text))

    th = threading.Thread(target=reader)
    th.start()
    for v in versions[1:]:
        atomic_write_text(path, v)
    stop.set()
    th.join()
    assert bad == []
    assert json.loads(open(path).read())["v"] == 29 and len(seen) >= 2
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []     # no temp files left


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "laps.csv")
    atomic_write_text(path, "old\n")

    class Boom:
        def encode(self, _):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_text(path, Boom())      # type: ignore[arg-type]
    assert open(path).read() == "old\n"


def test_run_writer_writes_every_file_with_the_final_status_last(tmp_path):
    c, tracker, laps = one_lap()
    metrics = [tracker.lap_metrics(s) for s in laps]
    identity = {"run_id": "r1", "circuit": "circle", "brain": "pilotnet", "backend": "tflite_int8",
                "model": "", "model_sha256": "", "sim": "builtin", "mode": "lockstep"}
    w = results.RunWriter(str(tmp_path / "r1"), identity, env={"cpu": "test"})
    w.write_json([], metrics[0], "running")
    assert results.read_laps(str(tmp_path / "r1"))["in_progress"]["lap"] == 1
    table = w.write_final(metrics, "done", c, [tracker.lap_track(s) for s in laps])
    folder = tmp_path / "r1"
    for name in ("laps.json", "laps.csv", "table.md", "trajectory.png", "profile.png", "track.csv"):
        assert (folder / name).stat().st_size > 0, name
    doc = results.read_laps(str(folder))
    assert doc["status"] == "done" and doc["in_progress"] is None
    assert [lap["completed"] for lap in doc["laps"]] == [True, False]
    assert doc["laps"][1]["dnf_reason"] == "stuck"
    # the table: the published columns, one row per lap, the method = the backend for pilotnet
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| Method"))
    assert [h.strip() for h in header.strip("|").split("|")] == list(results.TABLE_HEADER)
    rows = [line for line in lines if line.startswith("| tflite_int8")]
    assert len(rows) == 2 and "| yes |" in rows[0] and "DNF stuck (25.0 %)" in rows[1]
    assert "0.500" in rows[0]                               # MAE in metres
    assert "1000^d" in table                                # the BM-style figure is labelled
    # the CSV: identity + metrics columns, parseable, numbers round-trip
    rows = list(csv.DictReader(io.StringIO((folder / "laps.csv").read_text())))
    assert list(rows[0].keys()) == list(results.CSV_COLUMNS)
    assert rows[0]["backend"] == "tflite_int8" and float(rows[0]["deviation_mae"]) == pytest.approx(0.5, abs=0.01)
    with open(folder / "trajectory.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_json_has_no_nan_and_csv_leaves_missing_numbers_empty(tmp_path):
    lap = {"lap": 1, "completed": False, "dnf_reason": "brain_died", "inference_time_mean": float("nan"),
           "lap_time": 0.0}
    text = to_json({"laps": [lap]})
    assert "NaN" not in text and json.loads(text)["laps"][0]["inference_time_mean"] is None
    rows = list(csv.DictReader(io.StringIO(results.laps_csv([lap], {"circuit": "c"}))))
    assert rows[0]["inference_time_mean"] == "" and rows[0]["dnf_reason"] == "brain_died"
    assert "| - |" in results.markdown_table([lap], "m")


def test_run_id_method_label_and_identity(tmp_path):
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert results.make_run_id("simple_circuit", "tflite_int8", now) == "20260102-030405_simple_circuit_tflite_int8"
    assert results.make_run_id("my circuit", "a/b", now) == "20260102-030405_my-circuit_a-b"
    assert results.method_label("pilotnet", "onnx_fp32") == "onnx_fp32"
    assert results.method_label("explicit", "tflite_int8") == "explicit"
    model = tmp_path / "m.tflite"
    model.write_bytes(b"weights")
    ident = results.model_identity(str(model))
    assert ident["model_sha256"] == hashlib.sha256(b"weights").hexdigest() and ident["model_bytes"] == 7
    assert results.model_identity("")["model_sha256"] == ""


def test_table_headers_carry_units_and_the_brain_frequency_has_one_name():
    lap = {"lap": 1, "completed": True, "average_speed": 10.0, "deviation_mae": 0.1, "brain_frequency_wall": 20.0,
           "inference_time_mean": 0.001, "real_time_factor": 1.0, "lap_time": 40.0, "deviation_bm_1000pow": 1.1}
    table = results.markdown_table([lap], "m")
    header = table.splitlines()[0]
    for title in ("Average speed (m/s)", "Position deviation MAE (m)", "Brain frequency (it/s wall)",
                  "Mean inference time (s)", "Lap time (s)"):
        assert f"| {title} |" in header
    assert "(RT)" not in table and "brain frequency = brain iterations per wall-clock second" in table
    from pilotnet_brains import campaign

    # the campaign tables use the same titles, in the same order (plus their own extra columns)
    titles = [t for _, t, _ in campaign.TABLE_METRICS]
    assert [t for t in titles if t in results.TABLE_HEADER] == list(results.TABLE_HEADER[1:-1])


def test_trajectory_colour_scale_fits_the_run():
    """A good lap (|deviation| <= 0.12 m) spreads over the whole colour bar, not its first 3 % (0-4 m)."""
    good = {"lateral": np.linspace(-0.12, 0.08, 50)}
    assert results.deviation_scale([good]) == pytest.approx(0.12)
    assert results.deviation_scale([good, {"lateral": np.array([2.5])}]) == pytest.approx(2.5)
    assert results.deviation_scale([{"lateral": np.zeros(10)}]) == pytest.approx(0.05)   # never a 0-0 scale
