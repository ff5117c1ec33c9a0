"""scripts/benchmark --ray on a real Ray cluster on this machine: a head (1 CPU) and a second node
(1 CPU) started by `ray start` on loopback addresses, each run a Ray task that starts its own ROS
master on its node. The same campaign gives the same lockstep laps as --jobs 1; a driver killed
mid-campaign is resumed without running a finished run twice; a run past its wall timeout on a worker
is DNF "hung"; the nodes are checked before anything is submitted.

Loopback only: Ray replaces 127.0.0.1 (and localhost) in node and head addresses by the machine's
network address, so the nodes take 127.0.0.2 and 127.0.0.3 (the loopback interface holds 127/8)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, run_tool
from test_benchmark import kill_driver_when, random_tflite, sim_laps, write_campaign  # noqa: F401 -- the model fixture

from pilotnet_brains import campaign as cp
from pilotnet_brains.campaign.ray_runner import TMP_PREFIX
from pilotnet_brains.util import free_port

pytestmark = [pytest.mark.ros]      # Ray has no Python 3.8 wheel: make test-py38 leaves these out

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"
CLIENT: dict[str, str] = {}          # the fixture's head: its Ray Client address (ray://...)


_TAKEN: set[int] = set()


def _free_port() -> int:
    """A free port below the ephemeral range (no ROS node's port-0 socket can take it before Ray does),
    a different one each call."""
    port = free_port(_TAKEN)
    _TAKEN.add(port)
    return port


def _ports() -> list[str]:
    """Every port a node opens, chosen free (the defaults, e.g. 10001 and 52365, may be another user's)."""
    out = []
    for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                 "--metrics-export-port", "--node-manager-port", "--object-manager-port"):
        out += [flag, str(_free_port())]
    return out


def _cluster_pids(markers: list[str]) -> set[int]:
    """Processes of our nodes: command lines naming our temp dirs or our head's address, and their children."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
                with open(f"/proc/{name}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                if rest[0] not in ("Z", "X"):
                    table[int(name)] = (int(rest[1]), cmd)
            except (OSError, IndexError, ValueError):
                continue
    pids = {pid for pid, (_, cmd) in table.items() if any(m in cmd for m in markers)}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in pids} - pids
        pids |= more
        grew = bool(more)
    return pids


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A Ray head (1 CPU) and a second node (1 CPU) on loopback; yields the head's address. Stopped by
    the processes it started (never `ray stop`, which would stop any Ray on the machine)."""
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    base = str(tmp_path_factory.mktemp("ray"))
    # no token auth: a token in ~/.ray/auth_token (any local ray.init of this user writes one) would make
    # the head require it, and the drivers of the tests inherit the same setting
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()
    address = f"{HEAD_IP}:{port}"
    common = ["--num-cpus", "1", "--object-store-memory", str(80 << 20), "--disable-usage-stats"]
    markers = [os.path.join(base, "head"), os.path.join(base, "node"), address]
    client_port = _free_port()
    CLIENT["address"] = f"ray://{HEAD_IP}:{client_port}"
    try:
        for cmd in ([ray_bin, "start", "--head", "--node-ip-address", HEAD_IP, "--port", str(port),
                     "--include-dashboard=false", "--ray-client-server-port", str(client_port),
                     "--temp-dir", markers[0], *common, *_ports()],
                    [ray_bin, "start", "--address", address, "--node-ip-address", WORKER_IP,
                     "--temp-dir", markers[1], *common, *_ports()]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        yield address
    finally:
        pids = _cluster_pids(markers)
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):   # gcs and raylet may outlive SIGTERM
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + wait
            while _cluster_pids(markers) and time.monotonic() < deadline:
                time.sleep(0.3)
            pids = _cluster_pids(markers)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def run_processes(marker: str) -> list[int]:
    """Live processes of a run on a worker (its temporary folder is in their command lines)."""
    return sorted(_cluster_pids([marker]))


def wait_gone(marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while run_processes(marker):
        assert time.monotonic() < deadline, f"processes of {marker} still alive: {run_processes(marker)}"
        time.sleep(0.5)


def four_runs(tmp_path, model: str) -> str:
    return write_campaign(tmp_path / "four.yaml", name="four", repetitions=2, cpus_per_run=1, targets=False,
                          backends=["explicit", {"backend": "tflite_dynamic", "model": model,
                                                 "label": "random_dynamic"}])


@pytest.mark.timeout(900)
def test_ray_campaign_gives_the_laps_of_jobs_1_and_resumes_after_the_driver_is_killed(
        ray_cluster, random_tflite, tmp_path):  # noqa: F811
    spec_file = four_runs(tmp_path, random_tflite)
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    run_tool("benchmark", spec_file, "--out", str(out_a), "--no-progress", "--jobs", "1", timeout=500)
    a = json.loads((out_a / "four" / "summary.json").read_text())
    assert [r["outcome"] for r in a["runs"]] == ["done"] * 4

    # --- on Ray, the driver killed (SIGKILL) once a run is finished and another is in flight -------------
    b = out_b / "four"
    kill_driver_when([spec_file, "--out", str(out_b), "--no-progress", "--ray", ray_cluster],
                     [("no run finished", lambda: bool(list(b.glob("runs/*/" + cp.RUN_RECORD))))], timeout=300)
    finished = {p.parent.name: p.read_text() for p in b.glob("runs/*/" + cp.RUN_RECORD)}
    assert 1 <= len(finished) < 4
    wait_gone(TMP_PREFIX, timeout=60.0)          # Ray ended the killed driver's tasks and their runs

    resumed = run_tool("benchmark", spec_file, "--out", str(out_b), "--no-progress", "--ray", ray_cluster,
                       timeout=500)
    assert f"{len(finished)} already finished, {4 - len(finished)} to run" in resumed.stdout, resumed.stdout
    for run_id, record in finished.items():       # not run again
        assert run_id not in resumed.stdout.split("to run")[1]
        assert (b / "runs" / run_id / cp.RUN_RECORD).read_text() == record
    assert "2 node(s) can take runs of 1 CPUs" in resumed.stdout
    summary = json.loads((b / "summary.json").read_text())
    assert [r["outcome"] for r in summary["runs"]] == ["done"] * 4
    assert sim_laps(summary) == sim_laps(a)       # lockstep: the same laps, run by run
    for r in a["runs"]:
        ta = np.loadtxt(out_a / "four" / "runs" / r["run_id"] / "track.csv", delimiter=",", skiprows=1, ndmin=2)
        tb = np.loadtxt(b / "runs" / r["run_id"] / "track.csv", delimiter=",", skiprows=1, ndmin=2)
        assert ta.shape == tb.shape and np.array_equal(ta[:, 2:], tb[:, 2:]), r["run_id"]
        for name in ("laps.json", "table.md", "trajectory.png"):
            assert (b / "runs" / r["run_id"] / name).stat().st_size > 0
        assert (b / "logs" / (r["run_id"] + ".log")).stat().st_size > 0
    nodes = {json.loads((b / "runs" / r["run_id"] / cp.RUN_RECORD).read_text())["node"] for r in a["runs"]}
    assert nodes == {HEAD_IP, WORKER_IP}          # 1 CPU each: runs went to both nodes
    assert not list(b.glob(".incoming-*"))
    for method in ("explicit", "random_dynamic"):
        rows = [line for line in (b / "report.md").read_text().splitlines() if line.startswith(f"| {method} |")]
        assert len(rows) == 1 and "0/2 (DNF timeout)" in rows[0]


def test_a_run_past_its_wall_timeout_on_a_worker_is_dnf_hung(ray_cluster, tmp_path):
    # realtime at RTF 1 without a lap timeout: the lap takes ~42 s of wall time, the run gets 6 s.
    # Through Ray Client (ray://), the address a driver outside the cluster gives.
    spec_file = write_campaign(tmp_path / "hang.yaml", name="hang", backends=["explicit"], repetitions=2,
                               mode="realtime", rtf=1.0, timeouts={"lap": 0, "run": 6}, cpus_per_run=1)
    out = tmp_path / "out"
    proc = run_tool("benchmark", spec_file, "--out", str(out), "--no-progress", "--ray", CLIENT["address"],
                    timeout=300)
    cdir = out / "hang"
    summary = json.loads((cdir / "summary.json").read_text())
    assert [r["outcome"] for r in summary["runs"]] == ["hung", "hung"], proc.stdout
    for r in summary["runs"]:
        rec = json.loads((cdir / "runs" / r["run_id"] / cp.RUN_RECORD).read_text())
        assert rec["outcome"] == "hung" and rec["wall_s"] >= 6.0 and rec["node"] in (HEAD_IP, WORKER_IP)
        assert r["laps"][-1]["dnf_reason"] == "hung"
    assert "2 hung" in proc.stdout and "DNF hung" in (cdir / "report.md").read_text()
    assert f"on Ray ({CLIENT['address']})" in proc.stdout
    wait_gone(TMP_PREFIX, timeout=5.0)
    # the records are those of a local campaign: --jobs sees them finished, and would retry them
    assert "2 already finished, 0 to run" in run_tool("benchmark", spec_file, "--out", str(out), "--list").stdout
    listing = run_tool("benchmark", spec_file, "--out", str(out), "--list", "--retry", "hung").stdout
    assert "0 already finished, 2 to run" in listing


def test_the_nodes_are_checked_before_anything_runs(ray_cluster, random_tflite, tmp_path):  # noqa: F811
    # the packaged tiny campaign asks 2 CPUs per run: no node of this cluster has them
    proc = run_tool("benchmark", "tiny", "--out", str(tmp_path), "--ray", ray_cluster, check=False, timeout=120)
    assert proc.returncode == 2 and "no node of the cluster has the 2 CPUs" in proc.stderr, proc.stderr
    assert "cpus_per_run" in proc.stderr and not (tmp_path / "tiny" / "runs").exists()
    # tasks whose runtime env hides the package (it imports from the workspace on PYTHONPATH): every
    # node says so, nothing is submitted
    spec_file = write_campaign(tmp_path / "nopath.yaml", name="nopath", backends=["explicit"], cpus_per_run=1,
                               ray_runtime_env={"env_vars": {"PYTHONPATH": "/nonexistent"}})
    proc = run_tool("benchmark", spec_file, "--out", str(tmp_path), "--ray", ray_cluster, check=False, timeout=180)
    assert proc.returncode == 2 and "2 node(s) can take runs of 1 CPUs; 2 lack what the campaign needs" in proc.stdout
    for ip in (HEAD_IP, WORKER_IP):
        assert f"node {ip} lacks:\n    - the package's code cannot run there (" in proc.stderr, proc.stderr
    assert "No module named 'pilotnet_brains'" in proc.stderr and "make setup" in proc.stderr
    assert "set those nodes up" in proc.stderr and not (tmp_path / "nopath" / "runs").exists()
    # what a node lacks, listed per node: checked on each node by the same task the driver sends
    import ray

    from pilotnet_brains.campaign import ray_runner
    from pilotnet_brains.util import sha256_path

    ray.init(address=ray_cluster, logging_level="ERROR", log_to_driver=False)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(ray_runner.check_node)
        reports = ray.get([task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(["tflite_dynamic", "tensorrt"], {
                random_tflite: sha256_path(random_tflite), "/nowhere/model.tflite": "ab" * 32,
                os.path.join(ROOT, "package.xml"): "cd" * 32}, ROOT) for n in ray.nodes() if n["Alive"]])
    finally:
        ray.shutdown()
    assert sorted(r["node"] for r in reports) == [HEAD_IP, WORKER_IP]
    for r in reports:
        text = "\n".join(r["missing"])
        assert "backend tensorrt" in text and "tflite_dynamic" not in text and random_tflite not in text, text
        assert "artifact /nowhere/model.tflite (sha256 abababababab)" in text
        assert f"artifact {os.path.join(ROOT, 'package.xml')} differs" in text and len(r["missing"]) == 3


def test_bad_ray_addresses_say_what_to_do(tmp_path):
    port = _free_port()
    proc = run_tool("benchmark", "tiny", "--out", str(tmp_path), "--ray", f"{HEAD_IP}:{port}", check=False,
                    timeout=120)
    assert proc.returncode == 2 and f"no Ray cluster answers at {HEAD_IP}:{port}" in proc.stderr, proc.stderr
    assert "ray start --head" in proc.stderr
    proc = run_tool("benchmark", "tiny", "--ray", "nonsense", check=False, timeout=60)
    assert proc.returncode == 2 and "give local, auto, ray://HOST:PORT or HOST:PORT" in proc.stderr
    proc = run_tool("benchmark", "tiny", "--ray", "local", "--jobs", "2", check=False, timeout=60)
    assert proc.returncode == 2 and "give one of them" in proc.stderr


@pytest.mark.timeout(400)
def test_tiny_campaign_on_a_throwaway_local_cluster(tmp_path):
    proc = run_tool("benchmark", "tiny", "--out", str(tmp_path), "--ray", "local", timeout=350)
    cdir = tmp_path / "tiny"
    summary = json.loads((cdir / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["outcome"] == "done" and run["laps"][0]["dnf_reason"] == "timeout", proc.stdout
    rec = json.loads((cdir / "runs" / run["run_id"] / cp.RUN_RECORD).read_text())
    assert rec["node"] == "127.0.0.1"            # --ray local keeps to the loopback interface
    assert f"{run['run_id']} on 127.0.0.1:" in proc.stderr          # the progress bar names the node
    assert "on Ray (local)" in proc.stdout and (cdir / "report.md").stat().st_size > 0
