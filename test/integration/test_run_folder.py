"""A run owns its folder: the lap_metrics node creates it exclusively under results_dir, refuses a
run_id that is not one plain name or whose folder another run owns, and says what to do."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import ROOT, run_tool


def _env(ros_master):
    return dict(os.environ, ROS_MASTER_URI=ros_master)


def lap_metrics(ros_master, name: str, *params: str, wait: bool = True):
    argv = ("lap_metrics", f"__name:={name}", "_brain_node:=", "_plots:=false", *params)
    if wait:
        return run_tool(*argv, check=False, timeout=90, env=_env(ros_master))
    return subprocess.Popen([os.path.join(ROOT, "scripts", argv[0]), *argv[1:]], env=_env(ros_master),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_claimed(node: subprocess.Popen, laps, poll: float = 0.1) -> None:
    """Until the node has written ``laps`` (its run folder is claimed), exits, or 60 s pass."""
    deadline = time.monotonic() + 60
    while not laps.exists() and time.monotonic() < deadline and node.poll() is None:
        time.sleep(poll)


@pytest.mark.parametrize("run_id", ["../../escaped_run", "a/b/c", "..", ".hidden", "{tmp}/abs_run"])
def test_a_run_id_that_is_not_one_plain_name_is_refused(ros_master, tmp_path, run_id):
    results = tmp_path / "deep" / "results"
    run_id = run_id.format(tmp=tmp_path)
    proc = lap_metrics(ros_master, "lm_bad_id", f"_results_dir:={results}", f"_run_id:={run_id}")
    assert proc.returncode != 0, proc.stderr
    assert "run_id" in proc.stderr and "plain folder name" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    written = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files]
    assert written == [], f"a refused run wrote {written}"
    assert not (results / "a").exists() and not (tmp_path / "abs_run").exists()


def test_a_second_run_with_the_same_run_id_is_refused_naming_the_first(ros_master, tmp_path):
    first = lap_metrics(ros_master, "lm_first", f"_results_dir:={tmp_path}", "_run_id:=same", wait=False)
    try:
        laps = tmp_path / "same" / "laps.json"
        wait_claimed(first, laps)
        assert laps.exists(), f"no laps.json (the first lap_metrics exited {first.poll()})"
        before = json.loads(laps.read_text())
        second = lap_metrics(ros_master, "lm_second", f"_results_dir:={tmp_path}", "_run_id:=same")
        assert second.returncode != 0
        err = second.stderr
        assert str(tmp_path / "same") in err and "already exists" in err, err
        assert before["identity"]["started"] in err and "run_id:=" in err, "names the other run and what to do"
        assert json.loads(laps.read_text())["identity"] == before["identity"], "the first run's record was touched"
    finally:
        first.terminate()
        first.wait(30)


def test_generated_run_ids_never_share_a_folder(tmp_path):
    from pilotnet_brains.results import claim_run_folder

    a = claim_run_folder(str(tmp_path), "20260102-030405_simple_circuit_explicit", unique=True)
    b = claim_run_folder(str(tmp_path), "20260102-030405_simple_circuit_explicit", unique=True)
    assert a != b and os.path.isdir(a) and os.path.isdir(b) and b.endswith("-2")


def test_an_unwritable_results_dir_names_results_dir_and_what_to_do(ros_master, tmp_path):
    (tmp_path / "a_file").write_text("")
    bad = tmp_path / "a_file" / "results"          # cannot be created, even by root
    proc = lap_metrics(ros_master, "lm_ro", f"_results_dir:={bad}", "_run_id:=x")
    assert proc.returncode != 0
    assert f"results_dir {bad}" in proc.stderr and "results_dir:=" in proc.stderr, proc.stderr


def test_the_identity_records_start_s_and_no_backend_for_the_explicit_brain(ros_master, tmp_path):
    node = lap_metrics(ros_master, "lm_identity", f"_results_dir:={tmp_path}", "_run_id:=ident",
                       "_brain:=explicit", "_backend:=tflite_int8", "_start_s:=12.5", wait=False)
    try:
        laps = tmp_path / "ident" / "laps.json"
        wait_claimed(node, laps)
        ident = json.loads(laps.read_text())["identity"]
    finally:
        node.terminate()
        node.wait(90)                # ~1 s; a starved runner has taken over 30
    assert ident["brain"] == "explicit" and ident["backend"] == "", "the explicit brain has no backend"
    assert ident["start_s"] == 12.5


def test_lap_metrics_stopped_while_it_registers_with_the_master_exits(ros_master, tmp_path):
    """SIGTERM right after the run folder is claimed lands while the node registers its topics with
    the master; a shutdown run inside the signal handler then deadlocked on that XML-RPC connection
    (4 of 40 such stops hung before)."""
    for i, delay in enumerate(0.006 * k for k in range(10)):
        node = lap_metrics(ros_master, f"lm_stop{i}", f"_results_dir:={tmp_path}", f"_run_id:=stop{i}",
                           wait=False)
        laps = tmp_path / f"stop{i}" / "laps.json"
        wait_claimed(node, laps, poll=0.002)
        time.sleep(delay)
        node.terminate()
        try:
            rc = node.wait(60)     # ~1 s
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
            pytest.fail(f"lap_metrics stopped {delay * 1000:.0f} ms after claiming its folder did not exit")
        assert rc in (0, 128 + signal.SIGTERM), rc
