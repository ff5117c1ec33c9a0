"""The parts of campaigns on Ray that need no cluster: the campaign keys, the message when ray is not
installed, where a node looks for an artifact, and how the driver stores a run folder a task sent back
(the Ray runs themselves: test/integration/test_benchmark_ray.py)."""
from __future__ import annotations

import json
import os
import sys

import pytest

from pilotnet_brains import campaign as cp
from pilotnet_brains import package_root
from pilotnet_brains.campaign import ray_runner


def parse(**over):
    data = {"circuits": ["simple_circuit"], "backends": ["explicit"]}
    data.update(over)
    return cp.parse_campaign(data, source="test.yaml")


def test_campaign_keys_for_ray():
    c = parse()
    assert c.cpus_per_run == 2.0 and c.ray_runtime_env == {}
    c = parse(cpus_per_run=0.5, ray_runtime_env={"env_vars": {"A": "1"}})
    assert c.cpus_per_run == 0.5 and c.ray_runtime_env == {"env_vars": {"A": "1"}}
    for over, words in (({"cpus_per_run": 0}, ["cpus_per_run", "> 0"]),
                        ({"ray_runtime_env": "conda"}, ["ray_runtime_env", "mapping"])):
        with pytest.raises(cp.CampaignError) as e:
            parse(**over)
        assert all(w in str(e.value) for w in words), e.value


def test_without_ray_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray raises ImportError
    with pytest.raises(ray_runner.RayError) as e:
        ray_runner.connect("auto")
    msg = str(e.value)
    assert "ray is not installed" in msg and "tools/requirements.txt" in msg and "--jobs" in msg


def test_a_remote_traceback_is_summed_up_by_its_header_and_its_exception():
    remote = ("Initialization failure from server:\nTraceback (most recent call last):\n"
              '  File "proxier.py", line 776, in Datapath\n    raise RuntimeError(\n'
              "RuntimeError: Proxy failed to Connect to backend!\n")
    assert ray_runner.error_summary(ConnectionAbortedError(remote)) == \
        "Initialization failure from server: RuntimeError: Proxy failed to Connect to backend!"
    assert ray_runner.error_summary(ConnectionError("refused")) == "refused"
    assert ray_runner.error_summary(TimeoutError()) == "TimeoutError"


def test_an_artifact_is_looked_for_in_the_nodes_checkout_or_at_the_same_path():
    here = os.path.realpath(package_root())
    assert ray_runner.local_path("/elsewhere/checkout/models/build/m.tflite", "/elsewhere/checkout") == \
        os.path.join(here, "models", "build", "m.tflite")
    assert ray_runner.local_path("/data/m.onnx", "/elsewhere/checkout") == "/data/m.onnx"


def test_the_driver_stores_a_run_folder_where_a_local_run_writes_it(tmp_path):
    campaign = parse(name="c")
    (spec,) = cp.expand(campaign, list(campaign.backends))
    # what a task leaves in its temporary campaign folder on its worker, its own record included
    worker = tmp_path / "worker"
    run = worker / "runs" / spec.run_id
    (run / "sub").mkdir(parents=True)
    (run / "laps.json").write_text(json.dumps({"status": "done", "laps": [{"lap": 1, "completed": True}]}))
    (run / "sub" / "x.bin").write_bytes(b"\0" * 1000)
    (run / cp.RUN_RECORD).write_text(json.dumps({"key": "the worker's", "outcome": "done"}))
    (worker / "logs" / (spec.run_id + "_ros")).mkdir(parents=True)
    (worker / "logs" / (spec.run_id + ".log")).write_text("roslaunch said\n")
    archive = ray_runner._pack(str(worker), spec.run_id)

    cdir = tmp_path / "driver" / "c"
    stale = cdir / "runs" / spec.run_id
    stale.mkdir(parents=True)
    (stale / "old.txt").write_text("an interrupted attempt")
    res = ray_runner.store(str(cdir), spec, {"outcome": "done", "wall_s": 12.5, "detail": "", "returncode": 0,
                                             "node": "10.1.2.3", "archive": archive})
    folder = cdir / "runs" / spec.run_id
    assert sorted(os.listdir(folder)) == sorted(["laps.json", "sub", cp.RUN_RECORD])
    assert (folder / "sub" / "x.bin").read_bytes() == b"\0" * 1000
    rec = json.loads((folder / cp.RUN_RECORD).read_text())
    assert rec["key"] == spec.key() and rec["node"] == "10.1.2.3" and rec["outcome"] == "done"
    assert rec["log"] == os.path.join("logs", spec.run_id + ".log") and rec["wall_s"] == 12.5
    assert (cdir / rec["log"]).read_text() == "roslaunch said\n" and (cdir / "logs" / (spec.run_id + "_ros")).is_dir()
    assert cp.is_finished(str(cdir), spec) and res["laps"]["status"] == "done" and res["node"] == "10.1.2.3"
    assert not [n for n in os.listdir(cdir) if n.startswith(".incoming-")]
    # a task that failed before it sent anything back: the record alone, as a local refusal
    res = ray_runner.store(str(cdir), spec, {"outcome": "failed", "wall_s": 0.0, "detail": "the Ray task failed: x"})
    assert sorted(os.listdir(folder)) == [cp.RUN_RECORD] and res["outcome"] == "failed"
    assert cp.is_finished(str(cdir), spec) and not cp.is_finished(str(cdir), spec, retry=["failed"])
