"""Campaign files, the run matrix, resume bookkeeping and the report (pure parts, no ROS master)."""
from __future__ import annotations

import csv
import io
import json
import math
import os

import pytest
from conftest import run_tool

from pilotnet_brains import campaign as cp
from pilotnet_brains.backends import BACKENDS
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.expert import expert_lap
from pilotnet_brains.util import sha256_path


def parse(**over):
    data = {"circuits": ["simple_circuit"]}
    data.update(over)
    return cp.parse_campaign(data, source="test.yaml")


# ---------------------------------------------------------------------------------- parsing
def test_defaults_and_a_full_file():
    c = parse()
    assert (c.name, c.backends, c.laps, c.repetitions, c.mode, c.rtf) == ("test", "all", 1, 1, "lockstep", 1.0)
    assert c.starts["random"] == 0 and c.run_timeout is None and c.lap_timeout == 0.0 and not c.record
    c = parse(name="x", backends=["explicit", "tflite_int8", {"backend": "onnx_int8", "model": "/m/a.onnx",
                                                              "label": "mine"}],
              circuits=["simple_circuit", "montreal"], laps=2, repetitions=3, mode="realtime", rtf=2,
              starts={"random": 4, "seed": 7, "direction": "both"}, timeouts={"lap": 60, "run": 300, "brain": 2},
              record=True, record_camera_every=5, threads=2, seed=1, launch_args={"camera_rate": 15})
    assert [e.label for e in c.backends] == ["explicit", "tflite_int8", "mine"]
    assert c.backends[0] == cp.Entry("explicit", "explicit")
    assert c.backends[1] == cp.Entry("tflite_int8", "pilotnet", "tflite_int8", "")
    assert c.backends[2].model == "/m/a.onnx" and c.backends[2].backend == "onnx_int8"
    assert (c.laps, c.repetitions, c.mode, c.rtf, c.lap_timeout, c.run_timeout, c.brain_timeout) == \
        (2, 3, "realtime", 2.0, 60.0, 300.0, 2.0)
    assert c.starts == {"random": 4, "seed": 7, "direction": "both"} and c.launch_args == {"camera_rate": "15"}
    assert parse(backends="all available here").backends == "all"


@pytest.mark.parametrize("over, words", [
    ({"circuits": []}, ["circuits", "non-empty"]),
    ({"circuits": ["nowhere"]}, ["unknown circuit", "nowhere"]),
    ({"circuits": ["simple_circuit", "simple_circuit"]}, ["twice"]),
    ({"colour": 1}, ["unknown keys", "colour"]),
    ({"mode": "fast"}, ["mode", "lockstep", "realtime"]),
    ({"backends": ["tflite_int9"]}, ["unknown backend", "tflite_int9", "tflite_int8"]),
    ({"backends": ["tflite_int8", "tflite_int8"]}, ["tflite_int8", "twice"]),
    ({"backends": [{"backend": "explicit", "model": "x.tflite"}]}, ["explicit brain takes no model"]),
    ({"backends": [{"backend": "keras", "weights": 1}]}, ["unknown keys", "weights"]),
    ({"backends": []}, ["backends", "'all'"]),
    ({"laps": 0}, ["laps", ">= 1"]),
    ({"laps": 1.5}, ["laps", "integer"]),
    ({"rtf": 0}, ["rtf", "> 0"]),
    ({"starts": {"random": 0}}, ["random", ">= 1"]),
    ({"starts": {"random": 2, "direction": "sideways"}}, ["direction", "both"]),
    ({"starts": "anywhere"}, ["starts", "circuit"]),
    ({"timeouts": {"run": -1}}, ["run", "> 0"]),
    ({"timeouts": {"hang": 1}}, ["timeouts", "lap", "run", "brain"]),
    ({"launch_args": {"mode": "realtime"}}, ["launch_args", "mode", "campaign keys"]),
    ({"record": "yes"}, ["record", "true or false"]),
    ({"name": "a b"}, ["name", "folder"]),
])
def test_invalid_campaigns_are_refused_with_a_message_naming_the_problem(over, words):
    with pytest.raises(cp.CampaignError) as e:
        parse(**over)
    msg = str(e.value)
    assert msg.startswith("test.yaml") and all(w in msg for w in words), msg


@pytest.mark.parametrize("name", ["default", "realtime", "tiny", "base_models", "openvino", "openvino_realtime",
                                  "throughput"])
def test_packaged_campaigns_load(name):
    c = cp.load_campaign(name)
    assert c.name == name and c.circuits
    if name == "default":
        assert c.backends == "all" and set(c.circuits) == {"simple_circuit", "montreal", "montmelo"}


def test_campaign_files_are_found_by_name_or_path(tmp_path):
    with pytest.raises(cp.CampaignError, match="unknown campaign 'nope'.*known:.*tiny"):
        cp.load_campaign("nope")
    f = tmp_path / "mine.yaml"
    f.write_text("circuits: [simple_circuit]\nbackends: [explicit]\n")
    assert cp.load_campaign(str(f)).name == "mine"
    f.write_text("circuits: [simple_circuit\n")
    with pytest.raises(cp.CampaignError, match="not valid YAML"):
        cp.load_campaign(str(f))


# ---------------------------------------------------------------------------------- backends
def test_all_means_the_explicit_brain_and_every_backend_with_skips_explained():
    c = parse()
    runnable, skipped = cp.resolve_entries(c, availability=lambda e: "" if e.backend in ("", "tflite_int8") else "nope")
    assert [e.label for e in runnable] == ["explicit", "tflite_int8"]
    assert {s["label"] for s in skipped} == set(BACKENDS) - {"tflite_int8"}
    assert all(s["reason"] == "nope" for s in skipped)


def test_real_availability_reasons(tmp_path):
    assert cp.entry_availability(cp.Entry("explicit", "explicit")) == ""
    missing = cp.entry_availability(cp.Entry("x", "pilotnet", "tflite_int8", str(tmp_path / "none.tflite")))
    assert "none.tflite" in missing and "not built" in missing and "optimize" in missing
    gpu = cp.entry_availability(cp.Entry("t", "pilotnet", "tftrt_fp16", str(tmp_path)))
    assert gpu.startswith("cannot run on this machine") and BACKENDS["tftrt_fp16"].missing() in gpu
    present = tmp_path / "m.tflite"
    present.write_bytes(b"x")
    assert cp.entry_availability(cp.Entry("x", "pilotnet", "tflite_int8", str(present))) == ""


# ---------------------------------------------------------------------------------- run matrix
def test_matrix_order_ids_and_launch_args():
    c = parse(backends=["explicit", "tflite_int8"], circuits=["simple_circuit", "montmelo"], repetitions=2,
              laps=3, timeouts={"lap": 30})
    runs = cp.expand(c, c.backends)
    assert len(runs) == 2 * 2 * 2
    assert [r.run_id for r in runs[:4]] == ["simple_circuit_start_explicit_r1", "simple_circuit_start_tflite_int8_r1",
                                            "simple_circuit_start_explicit_r2", "simple_circuit_start_tflite_int8_r2"]
    a = runs[1].launch_args
    assert a["brain"] == "pilotnet" and a["backend"] == "tflite_int8" and a["laps"] == "3" and a["timeout"] == "30.0"
    assert a["circuit"] == "simple_circuit" and a["start_s"] == "-1" and a["mode"] == "lockstep"
    assert a["model"] == BACKENDS["tflite_int8"].default_path and runs[0].launch_args["model"] == ""
    assert runs[0].launch_args["brain"] == "explicit" and runs[2].launch_args["seed"] == "1"
    assert len({r.key() for r in runs}) == len(runs)


def test_random_starts_are_seeded_shared_by_methods_and_travel_in_the_launch_args():
    st = {"random": 3, "seed": 5, "direction": "both"}
    a, b = cp.circuit_starts("simple_circuit", st), cp.circuit_starts("simple_circuit", st)
    assert a == b and len(a) == 3 and all(0 <= s.s < 428.8 for s in a)
    assert cp.circuit_starts("simple_circuit", {**st, "seed": 6}) != a
    assert cp.circuit_starts("montmelo", st) != a
    assert {s.reverse for s in cp.circuit_starts("simple_circuit", {**st, "random": 12})} == {True, False}
    assert not any(s.reverse for s in cp.circuit_starts("simple_circuit", {**st, "direction": "forward"}))
    c = parse(backends=["explicit", "tflite_int8"], starts={"random": 2, "seed": 5, "direction": "reverse"})
    runs = cp.expand(c, c.backends)
    assert len(runs) == 4
    for i in (0, 2):
        x, y = runs[i].launch_args, runs[i + 1].launch_args
        assert x["start_s"] == y["start_s"] != "-1"                   # the same start for both methods
        assert x["circuit"] == y["circuit"] == "simple_circuit_reverse"
    assert runs[0].run_id == "simple_circuit_rev0_explicit_r1"


def test_automatic_run_timeout():
    c = parse(laps=2, timeouts={"lap": 50})
    assert cp.run_timeout(c, "simple_circuit") == pytest.approx(cp.STARTUP_ALLOWANCE + 3 * 2 * 50)
    slow = parse(mode="realtime", rtf=0.5, timeouts={"lap": 50})
    assert cp.run_timeout(slow, "simple_circuit") == pytest.approx(cp.STARTUP_ALLOWANCE + 3 * 50 / 0.5)
    default = parse()
    assert cp.run_timeout(default, "simple_circuit") == pytest.approx(cp.STARTUP_ALLOWANCE + 3 * 428.73 / 2, rel=0.01)
    assert cp.run_timeout(parse(timeouts={"run": 9}), "simple_circuit") == 9.0


# ---------------------------------------------------------------------------------- resume
LAP = {"lap": 1, "completed": True, "dnf_reason": "", "lap_time": 50.0, "distance": 463.0, "percentage": 100.0,
       "average_speed": 9.0, "deviation_mae": 0.1, "deviation_max": 0.4, "brain_frequency_wall": 20.0,
       "brain_frequency_sim": 20.0, "brain_frequency_bm": 300.0, "camera_fps_sim": 20.0,
       "inference_time_mean": 0.002, "inference_time_p99": 0.004, "real_time_factor": 1.0, "skipped_frames": 0}


def fake_run(cdir: str, spec: cp.RunSpec, outcome: str = "done", laps=None, status: str = "done", track=True):
    folder = cp.run_folder(cdir, spec)
    os.makedirs(folder, exist_ok=True)
    doc = {"status": status, "identity": {"model": spec.entry.model}, "environment": {"cpu": "TestCPU", "cpu_count": 2},
           "laps": laps if laps is not None else [dict(LAP)], "in_progress": None}
    with open(os.path.join(folder, "laps.json"), "w") as f:
        json.dump(doc, f)
    if track:
        with open(os.path.join(folder, "track.csv"), "w") as f:
            f.write("lap,t,x,y,s,lateral,progress\n1,0.0,53.4,-10.7,0,0,0\n1,0.05,53.4,-11.2,0.5,0,0.5\n")
    if outcome:
        cp.write_run_record(folder, spec, outcome, 12.0, 0)
    return folder


def test_resume_bookkeeping(tmp_path):
    c = parse(backends=["explicit"], repetitions=3)
    s1, s2, s3 = cp.expand(c, c.backends)
    cdir = str(tmp_path)
    fake_run(cdir, s1)
    fake_run(cdir, s2, outcome="hung", status="interrupted")
    fake_run(cdir, s3, outcome="", status="running")                  # killed in flight: no record
    assert cp.is_finished(cdir, s1) and cp.is_finished(cdir, s2) and not cp.is_finished(cdir, s3)
    assert not cp.is_finished(cdir, s2, retry=["hung"])
    # a record whose laps.json is not final does not count as done
    with open(os.path.join(cp.run_folder(cdir, s1), "laps.json"), "w") as f:
        json.dump({"status": "running", "laps": []}, f)
    assert not cp.is_finished(cdir, s1)
    # an edited campaign (other launch args) makes finished runs stale
    fake_run(cdir, s1)
    c2 = parse(backends=["explicit"], repetitions=3, laps=2)
    assert not cp.is_finished(cdir, cp.expand(c2, c2.backends)[0])
    with pytest.raises(ValueError):
        cp.write_run_record(cdir, s1, "fine", 1.0, 0)


def test_classify_and_progress_text():
    assert cp.classify({"status": "done"}, 0) == ("done", "")
    out, why = cp.classify({"status": "interrupted"}, 1)
    assert out == "failed" and "interrupted" in why
    out, why = cp.classify(None, 1)
    assert out == "failed" and "no laps.json" in why
    assert cp.lap_progress(None, 2) == "starting"
    assert cp.lap_progress({"status": "waiting", "laps": []}, 2) == "waiting for the brain"
    assert cp.lap_progress({"status": "running", "laps": [], "in_progress": None}, 2) == "lap 1/2 starting"
    assert cp.lap_progress({"status": "running", "laps": [LAP], "in_progress": {"percentage": 37.4}}, 2) == "lap 2/2 37%"
    assert cp.lap_progress({"status": "done", "laps": [LAP, LAP], "in_progress": None}, 2) == "lap 2/2 done"


# ---------------------------------------------------------------------------------- report
def test_mean_spread():
    assert cp.mean_spread([1.0, 3.0, None, float("nan")]) == {"mean": 2.0, "spread": pytest.approx(math.sqrt(2)), "n": 2}
    assert cp.mean_spread([5]) == {"mean": 5.0, "spread": 0.0, "n": 1}
    assert cp.mean_spread([]) == {"mean": None, "spread": None, "n": 0}


def test_summary_over_repetitions_with_a_dnf_and_a_hung_run(tmp_path):
    c = parse(backends=["explicit"], repetitions=3)
    specs = cp.expand(c, c.backends)
    cdir = str(tmp_path)
    fake_run(cdir, specs[0], laps=[dict(LAP, average_speed=8.0, deviation_mae=0.1, lap_time=50.0)])
    fake_run(cdir, specs[1], laps=[dict(LAP, completed=False, dnf_reason="off_track", average_speed=10.0,
                                        deviation_mae=0.3, lap_time=12.0, percentage=20.0)])
    fake_run(cdir, specs[2], outcome="hung", status="interrupted", laps=[])
    runs = cp.collect_runs(cdir, specs)
    assert [r["outcome"] for r in runs] == ["done", "done", "hung"]
    assert runs[2]["laps"] == [{"lap": 1, "completed": False, "dnf_reason": "hung", "dnf_detail": ""}]
    (row,) = cp.summarize(runs)
    assert (row["runs"], row["laps"], row["completed"], row["dnf"]) == (3, 3, 1, ["hung", "off_track"])
    assert row["average_speed"] == {"mean": 9.0, "spread": pytest.approx(math.sqrt(2)), "n": 2}
    assert row["deviation_mae"]["mean"] == pytest.approx(0.2)
    assert row["lap_time"] == {"mean": 50.0, "spread": 0.0, "n": 1}             # completed laps only
    table = cp.table_markdown([row])
    assert "| explicit | 9.000 ± 1.414 | 0.200 ± 0.141 |" in table and "1/3 (DNF hung, off_track)" in table
    assert cp.completed_text(row) == "1/3 (DNF hung, off_track)"


def test_offline_join_by_artifact_file(tmp_path):
    art = tmp_path / "m.tflite"
    art.write_bytes(b"0123456789")
    sha = sha256_path(str(art))
    old, new = tmp_path / "offline" / "r1", tmp_path / "offline" / "r2"
    for folder, t, mse in ((old, "2026-01-01T00:00:00", 0.5), (new, "2026-02-01T00:00:00", 0.04)):
        folder.mkdir(parents=True)
        (folder / "offline.json").write_text(json.dumps({"time": t, "rows": [
            {"method": "tflite_int8", "path": str(art), "size_bytes": 10, "sha256": sha,
             "accuracy": {"overall": {"mse": mse}}},
            {"method": "stale", "path": str(tmp_path / "gone.onnx"), "size_bytes": 3, "sha256": sha,
             "accuracy": {"overall": {"mse": 1.0}}}]}))
    idx = cp.offline_index(str(tmp_path / "offline"))
    assert idx == {os.path.realpath(art): {"size_mb": 1e-5, "mse": 0.04, "offline_run": "r2"}}
    run = {"circuit": "c", "method": "tflite_int8", "brain": "pilotnet", "backend": "tflite_int8", "model": str(art),
           "laps": [dict(LAP)]}
    (row,) = cp.summarize([run], idx)
    assert row["offline_mse"] == 0.04 and row["size_mb"] == 1e-5
    art.write_bytes(b"9876543210")                       # retrained: same path, same size, new weights
    assert cp.offline_index(str(tmp_path / "offline")) == {}
    assert cp.offline_index(str(tmp_path / "nowhere")) == {}


def test_targets_measured_vs_goal():
    run = {"circuit": "c", "method": "keras", "brain": "pilotnet", "backend": "keras", "model": "",
           "laps": [dict(LAP, brain_frequency_bm=40.0, deviation_mae=0.5, real_time_factor=0.99)]}
    tflite = dict(run, method="tflite_int8", backend="tflite_int8",
                  laps=[dict(LAP, brain_frequency_sim=18.0, camera_fps_sim=20.0, real_time_factor=0.9)])
    rows = cp.summarize([run, tflite])
    got = {(t["method"], i["what"]): i for t in cp.targets(rows, parse(mode="realtime", rtf=1.0)) for i in t["items"]}
    assert got[("keras", "completes laps")]["ok"] is True
    assert got[("keras", "position deviation MAE (m)")]["ok"] is False
    assert got[("keras", "brain frequency, 1/iteration time (it/s)")]["ok"] is False
    assert got[("keras", "real time factor")]["ok"] is True
    assert got[("tflite_int8", "camera-bound: frames answered")]["measured"] == "90.0 %"
    assert got[("tflite_int8", "camera-bound: frames answered")]["ok"] is False
    assert got[("tflite_int8", "real time factor")]["ok"] is False
    lock = {i["what"]: i for t in cp.targets(rows, parse()) for i in t["items"] if t["method"] == "keras"}
    assert lock["real time factor"]["ok"] is None and "lockstep" in lock["real time factor"]["target"]


def test_write_report_files(tmp_path):
    c = parse(backends=["explicit", "tflite_int8"], circuits=["simple_circuit", "montmelo"])
    specs = cp.expand(c, c.backends)
    cdir = str(tmp_path)
    for s in specs[:3]:                                                # one run not yet done
        fake_run(cdir, s)
    skipped = [{"label": "tftrt_fp16", "backend": "tftrt_fp16", "model": "", "reason": "needs an NVIDIA GPU"}]
    doc = cp.write_report(cdir, c, specs, skipped, offline_root=str(tmp_path / "offline"))
    names = set(os.listdir(cdir))
    assert {"report.md", "summary.csv", "summary.json", "runs.csv", "trajectories_simple_circuit.png",
            "trajectories_montmelo.png", "inference_frequency.png", "deviation_vs_inference.png"} <= names
    assert doc["pending"] == 1 and len(doc["runs"]) == 3 and len(doc["summary"]) == 3
    report = (tmp_path / "report.md").read_text()
    assert "## simple_circuit" in report and "## montmelo" in report and "not yet run: 1" in report
    assert "| tftrt_fp16 | needs an NVIDIA GPU |" in report and "TestCPU (2 cores)" in report
    assert "| " + " | ".join(cp.TABLE_HEADER) + " |" in report
    assert "lockstep" in report and "## Targets" in report
    total = sum(r["wall_s"] for r in doc["runs"])
    assert total > 0 and f"the runs' own wall times add up to {total:.0f} s" in report
    expert = expert_lap("montmelo")
    assert "Expert reference (privileged pure pursuit" in report
    assert f"{expert['average_speed']:.2f} m/s, lap {expert['lap_time']:.2f} s" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped"] == skipped and summary["campaign"]["name"] == "test"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [(r["circuit"], r["method"]) for r in rows] == [("simple_circuit", "explicit"),
                                                           ("simple_circuit", "tflite_int8"), ("montmelo", "explicit")]
    assert float(rows[0]["average_speed_mean"]) == 9.0
    laps = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(laps) == 3 and laps[0]["outcome"] == "done" and laps[0]["lap_time"] == "50.0"



def test_the_expert_reference_is_driven_once_per_circuit_geometry(tmp_path, monkeypatch):
    from pilotnet_brains.campaign import reference

    c = parse(backends=["explicit"], circuits=["simple_circuit"])
    specs = cp.expand(c, c.backends)
    cdir = str(tmp_path)
    fake_run(cdir, specs[0])
    cp.write_report(cdir, c, specs, [])
    first = (tmp_path / "report.md").read_text()
    expert = expert_lap("simple_circuit")
    assert f"{expert['average_speed']:.2f} m/s, lap {expert['lap_time']:.2f} s" in first
    cached = json.loads((tmp_path / cp.REFERENCE_FILE).read_text())["simple_circuit"]
    assert cached["lap"]["average_speed"] == pytest.approx(expert["average_speed"])

    driven = []
    monkeypatch.setattr(reference, "expert_lap", lambda circuit, rate: driven.append(circuit.name) or
                        {k: 1.0 for k in reference.REFERENCE_FIELDS})
    doc = cp.write_report(cdir, c, specs, [])                      # the cache holds: nothing driven
    assert driven == [] and doc["expert_reference"]["simple_circuit"] == cached["lap"]
    assert (tmp_path / "report.md").read_text().split("- Generated")[1].split("\n", 1)[1] == \
        first.split("- Generated")[1].split("\n", 1)[1]
    cached["key"] = "another geometry"
    (tmp_path / cp.REFERENCE_FILE).write_text(json.dumps({"simple_circuit": cached}))
    cp.write_report(cdir, c, specs, [])                            # a stale entry is driven again
    assert driven == ["simple_circuit"] and "1.00 m/s, lap 1.00 s" in (tmp_path / "report.md").read_text()
    assert cp.reference_key(load_circuit("simple_circuit")) != cp.reference_key(load_circuit("simple_circuit",
                                                                                              reverse=True))


# ---------------------------------------------------------------------------------- the CLI (no runs)
def test_cli_lists_the_matrix_and_refuses_bad_files(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(json.dumps({"name": "listing", "circuits": ["simple_circuit"], "backends": [
        "explicit", "tftrt_fp32", {"backend": "tflite_int8", "model": str(tmp_path / "none.tflite")}]}))
    out = run_tool("benchmark", str(f), "--out", str(tmp_path / "out"), "--list").stdout
    assert "1 method(s) x 1 circuit(s) = 1 run(s), 0 already finished, 1 to run" in out
    assert "skipped tftrt_fp32: cannot run on this machine" in out and "skipped tflite_int8: artifact" in out
    assert "todo     simple_circuit_start_explicit_r1" in out
    assert not (tmp_path / "out").exists()
    f.write_text("circuits: [atlantis]\n")
    bad = run_tool("benchmark", str(f), "--list", check=False)
    assert bad.returncode == 2 and "unknown circuit 'atlantis'" in bad.stderr
    assert "resume" in run_tool("benchmark", "--help").stdout


def test_a_brain_that_answered_no_frame_meets_no_target_and_bad_outputs_show():
    """A model failing on every frame: the car sits on the line (MAE ~0), every frame 'answered' by
    a bad output. Nothing may be met, and the bad outputs are in the report, runs.csv and summary.csv."""
    still = dict(LAP, completed=False, dnf_reason="stuck", distance=0.0, percentage=0.0, average_speed=0.0,
                 deviation_mae=0.01, brain_iterations=200, bad_outputs=200, bad_frames=0)
    run = {"run_id": "r", "circuit": "c", "method": "tflite_small", "brain": "pilotnet", "backend": "tflite_fp32",
           "model": "", "laps": [still]}
    rows = cp.summarize([run])
    items = {i["what"]: i for t in cp.targets(rows, parse(mode="realtime", rtf=1.0)) for i in t["items"]}
    assert [w for w, i in items.items() if i["ok"]] == [], items
    assert items["frames answered with a model command"]["measured"] == "0 of 200 (200 bad outputs)"
    assert items["camera-bound: frames answered"]["measured"] == "0.0 %"
    assert "bad_outputs" in cp.runs_csv([run]).splitlines()[0]
    assert ",200," in cp.runs_csv([run]).splitlines()[1]
    assert "bad_outputs_mean" in cp.summary_csv(rows).splitlines()[0]
    good = dict(run, laps=[dict(LAP, brain_iterations=1000, bad_outputs=0)])
    items = {i["what"]: i for t in cp.targets(cp.summarize([good]), parse()) for i in t["items"]}
    assert items["frames answered with a model command"]["ok"] is True
    assert items["position deviation MAE (m)"]["ok"] is True


def test_a_refused_run_is_failed_with_the_refusing_message_from_its_record_or_its_log(tmp_path):
    doc = {"status": "refused", "laps": [], "refusal": {"by": "brain", "message": "unknown backend 'x'"}}
    outcome, detail = cp.classify(doc, 1)
    assert outcome == "failed" and "refused by brain: unknown backend 'x'" in detail
    from pilotnet_brains.campaign.launcher import log_tail as _tail

    log = tmp_path / "run.log"
    log.write_text("started roslaunch\n[FATAL] [1.0]: f1_sim: ~mode 'foo': use one of ['realtime', 'lockstep']\n"
                   "shutting down processing monitor...\n... shutting down processing monitor complete\ndone\n")
    assert "~mode 'foo'" in _tail(str(log)), "the FATAL line, not roslaunch's closing lines"


# ---------------------------------------------------------------------------------- readable reports
def _rows(methods, circuits):
    runs = [{"circuit": c, "method": m, "brain": "pilotnet", "backend": m, "model": "",
             "laps": [dict(LAP, inference_time_mean=0.0005 * (1 + k), deviation_mae=0.01 * (1 + k))]}
            for c in circuits for k, m in enumerate(methods)]
    return cp.summarize(runs)


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of the figure whose rendered boxes intersect."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def test_tiny_campaign_targets_are_not_applicable():
    tiny = cp.load_campaign("tiny")
    assert tiny.targets is False and cp.load_campaign("default").targets is True
    rows = _rows(["explicit"], ["simple_circuit"])
    items = [i for t in cp.targets(rows, tiny) for i in t["items"]]
    assert items and all(i["ok"] is None and "n/a" in i["target"] for i in items)
    assert any(i["ok"] is not None for t in cp.targets(rows, parse()) for i in t["items"])


def test_every_method_of_the_default_campaign_has_its_own_colour():
    methods = [e.label for e in cp.resolve_entries(cp.load_campaign("default"), lambda e: "")[0]]
    assert len(methods) > 20
    colors = cp.method_colors(methods)
    values = list(colors.values())
    closest = min(math.dist(a, b) for i, a in enumerate(values) for b in values[i + 1:])
    assert closest > 0.15, closest
    assert colors["keras"] != colors["onnx_int8"]


def test_campaign_plots_fit_the_page_without_overlapping_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [e.label for e in cp.resolve_entries(cp.load_campaign("default"), lambda e: "")[0]]
    rows = _rows(methods, ["simple_circuit", "montreal", "montmelo"])
    for make in (cp.bars_figure, cp.scatter_figure):
        fig = make(rows)
        assert not _overlapping_texts(fig), (make.__name__, _overlapping_texts(fig)[:5])
        plt.close(fig)
    import struct

    png = cp.plot_bars(rows)
    width, height = struct.unpack(">II", png[16:24])
    assert width <= 1400, width          # 110 dpi: readable at page width


def test_the_report_names_the_laps_that_ran_on_a_busy_machine(tmp_path):
    c = parse(backends=["explicit", "tflite_int8"], circuits=["simple_circuit"], mode="realtime")
    calm_spec, busy_spec = cp.expand(c, c.backends)
    cdir = str(tmp_path)
    fake_run(cdir, calm_spec, laps=[dict(LAP, cpu_wait_brain=0.004, cpu_wait_sim=0.012)])
    fake_run(cdir, busy_spec, laps=[dict(LAP, cpu_wait_brain=0.21, cpu_wait_sim=0.02)])
    cp.write_report(cdir, c, [calm_spec, busy_spec], [], plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "## Machine load" in report and "at most 21.0 % for a brain, 2.0 % for the simulator" in report
    assert "**In 1 lap(s) the brain waited over 5 %**" in report and "--fresh" in report
    assert f"| {busy_spec.run_id} | 1 | 21.0 % | 2.0 % |" in report and calm_spec.run_id + " |" not in report
    laps = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert [float(r["cpu_wait_brain"]) for r in laps] == [0.004, 0.21]
    # a campaign whose laps did not measure it says nothing about it
    fake_run(cdir, busy_spec, laps=[dict(LAP)])
    fake_run(cdir, calm_spec, laps=[dict(LAP)])
    cp.write_report(cdir, c, [calm_spec, busy_spec], [], plots=False)
    assert "## Machine load" not in (tmp_path / "report.md").read_text()


def test_the_csv_files_name_models_inside_the_package_relative_to_it(tmp_path):
    from pilotnet_brains import PACKAGE_ROOT

    c = parse(backends=["tflite_int8"], circuits=["simple_circuit"])
    (spec,) = cp.expand(c, c.backends)
    inside = os.path.join(PACKAGE_ROOT, "models", "build", "tflite_int8.tflite")
    fake_run(str(tmp_path), spec)
    with open(os.path.join(cp.run_folder(str(tmp_path), spec), "laps.json")) as f:
        doc = json.load(f)
    doc["identity"]["model"] = inside
    with open(os.path.join(cp.run_folder(str(tmp_path), spec), "laps.json"), "w") as f:
        json.dump(doc, f)
    cp.write_report(str(tmp_path), c, [spec], [], plots=False)
    for name in ("runs.csv", "summary.csv"):
        (row,) = list(csv.DictReader(io.StringIO((tmp_path / name).read_text())))
        assert row["model"] == os.path.join("models", "build", "tflite_int8.tflite"), name
