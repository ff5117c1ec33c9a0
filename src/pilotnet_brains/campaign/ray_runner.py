"""Campaigns on a Ray cluster (``scripts/benchmark CAMPAIGN --ray ADDRESS``): every run of the matrix
is a Ray task asking for ``cpus_per_run`` CPUs. On its node the task executes the run function of a
local job (:class:`pilotnet_brains.campaign.launcher.Runner`: own ROS master, the wall timeout that makes
a run DNF "hung", the clean-up of its processes) in a temporary campaign folder and returns the run
folder and its log as a tar archive; the driver unpacks it where a local run writes it, then writes
the run record (so resume, ``--retry`` and the report see no difference). Before it submits, the
driver checks the nodes (:func:`check_nodes`). ``ray`` is imported only when ``--ray`` is used (there
is no wheel for Python 3.8).
"""
from __future__ import annotations

import dataclasses
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from pilotnet_brains import package_root
from pilotnet_brains.campaign.matrix import RunSpec, entry_model
from pilotnet_brains.campaign.runner import RUN_RECORD, read_json, run_folder, write_run_record
from pilotnet_brains.campaign.spec import Campaign, Entry

#: Prefix of a task's temporary campaign folder on its worker (the runs' processes name it).
TMP_PREFIX = "pnb-ray-"
#: Wall seconds the node check may take (a node starting its first worker process included).
CHECK_TIMEOUT = 120.0
#: Attempts to join through Ray Client (``ray://``), and the pause before the second one (it grows).
JOIN_ATTEMPTS = 3
JOIN_RETRY_S = 2.0
_LOCAL_TMP: dict[str, str] = {}     # --ray local: the throw-away cluster's temporary folder


class RayError(RuntimeError):
    """Ray cannot be used as asked; the message says what is wrong and what to do."""


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise RayError(f"ray is not installed in this Python ({e}): install the pinned version with "
                       f"`pip install -r tools/requirements.txt` (or `make setup`; ray has no wheel for "
                       f"Python 3.8), or run the campaign on this machine with --jobs N") from None
    return ray


def _probe(host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=5.0).close()
    except OSError as e:
        raise RayError(f"no Ray cluster answers at {host}:{port} ({e}): start one there (`ray start --head "
                       f"--port {port}` on that machine), check the address, or use --ray local for a "
                       f"throw-away cluster on this machine") from None


def connect(address: str):
    """ray, initialised against ``address``: ``local`` (a throw-away cluster on this machine, on the
    loopback interface only), ``auto`` (the cluster this machine belongs to), ``ray://host:port`` (Ray
    Client) or ``host:port`` (the head's GCS)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == "local":
        # a single-node cluster: keep every socket on 127.0.0.1 (read when ray is imported), and write
        # no token to ~/.ray/auth_token (which later `ray start`s of this user would take up)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray = import_ray()
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        kwargs.update(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=256 << 20,
                      _temp_dir=_LOCAL_TMP.setdefault("dir", tempfile.mkdtemp(prefix="pnb-raylocal-")))
        address = None
    elif address != "auto":
        host, _, port = address.split("://", 1)[-1].rpartition(":")
        if not host or not port.isdigit():
            raise RayError(f"--ray {address!r}: give local, auto, ray://HOST:PORT or HOST:PORT")
        _probe(host, int(port))
    attempts = JOIN_ATTEMPTS if (address or "").startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return ray
        except ConnectionAbortedError as e:
            # the head's client server answered but could not start this client's server in time
            # (a loaded head): it is worth another try
            if attempt == attempts:
                raise RayError(f"cannot join the Ray cluster at {address} after {attempts} attempts: "
                               f"{error_summary(e)}; the head may be overloaded (its logs: "
                               f"ray_client_server*.err in the session's logs folder)") from None
            ray.shutdown()
            time.sleep(JOIN_RETRY_S * attempt)
        except Exception as e:      # ConnectionError, a version mismatch, a refused client...
            raise RayError(f"cannot join the Ray cluster at {address or 'local'}: {error_summary(e)}") from None
    raise AssertionError("unreachable")


def error_summary(error: BaseException) -> str:
    """One line for an error whose text may be a header and a remote traceback: the header and the
    traceback's last line (the remote exception), which say what happened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) == 1:
        return lines[0]
    return f"{lines[0].rstrip(':')}: {lines[-1]}"


def disconnect(ray) -> None:
    """Leave the cluster (a throw-away local one ends, its temporary folder removed)."""
    ray.shutdown()
    if "dir" in _LOCAL_TMP:
        shutil.rmtree(_LOCAL_TMP.pop("dir"), ignore_errors=True)


def node_label() -> str:
    """How runs name the node they ran on: its IP address in the cluster."""
    import ray

    return ray.util.get_node_ip_address()


def local_path(path: str, driver_root: str) -> str:
    """Where an artifact of the driver is on this node: the same place in this node's checkout if it
    lies in the driver's, else the same absolute path."""
    rel = os.path.relpath(path, driver_root)
    return path if rel.startswith("..") else os.path.join(package_root(), rel)


# ---------------------------------------------------------------------------------- on the nodes
def check_node(backends: Sequence[str], artifacts: Mapping[str, str], driver_root: str) -> dict[str, Any]:
    """What this node lacks to run the campaign (a task pinned to the node)."""
    from pilotnet_brains.backends import BACKENDS
    from pilotnet_brains.backends.registry import missing_module
    from pilotnet_brains.util import sha256_path

    missing = []
    launch = os.path.join(package_root(), "launch", "circuit.launch")
    if not os.path.exists(launch):
        missing.append(f"the launch file {launch}")
    if not shutil.which("roslaunch"):
        missing.append("roslaunch on PATH (start the node from a shell where tools/env.sh is sourced)")
    for name in backends:
        spec = BACKENDS[name]
        why = spec.missing() or (f"runtime module {missing_module(spec)} not installed (pip install {spec.pip})"
                                 if missing_module(spec) else "")
        if why:
            missing.append(f"backend {name}: {why}")
    for path, digest in artifacts.items():
        here = local_path(path, driver_root)
        if not os.path.exists(here):
            missing.append(f"artifact {here} (sha256 {digest[:12]})")
        elif sha256_path(here) != digest:
            missing.append(f"artifact {here} differs from the driver's (sha256 {digest[:12]})")
    return {"node": node_label(), "host": socket.gethostname(), "root": package_root(), "missing": missing}


def _pack(cdir: str, run_id: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in (os.path.join("runs", run_id), os.path.join("logs", run_id + ".log"),
                    os.path.join("logs", run_id + "_ros")):
            if os.path.exists(os.path.join(cdir, rel)):
                tar.add(os.path.join(cdir, rel), arcname=rel)
    return buf.getvalue()


def run_task(spec: RunSpec, timeout: float, driver_root: str, laps: int, progress: Any) -> dict[str, Any]:
    """One run on this node with the local run function; returns its outcome and its folder (tar.gz)."""
    from pilotnet_brains.campaign.launcher import PortPool, Runner

    args = tuple((k, local_path(v, driver_root) if k == "model" and v else v) for k, v in spec.args)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX + spec.run_id + "-")
    # ends the run and removes tmp if Ray ends this worker first (its driver killed): see ray_watchdog
    subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_watchdog.py"),
                      str(os.getpid()), tmp], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL).wait()
    cdir = os.path.join(tmp, "campaign")
    runner = Runner(cdir, os.path.join(package_root(), "launch", "circuit.launch"), PortPool())
    node, done = node_label(), threading.Event()

    def report():
        while not done.wait(1.0):
            progress.update.remote(spec.run_id, node, runner.progress_text(laps))

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        res = runner.run(dataclasses.replace(spec, args=args), timeout)
        done.set()
        return {"outcome": res["outcome"], "wall_s": res["wall_s"], "detail": res["detail"], "node": node,
                "returncode": res["record"]["returncode"], "archive": _pack(cdir, spec.run_id)}
    finally:
        done.set()
        progress.finished.remote(spec.run_id)
        shutil.rmtree(tmp, ignore_errors=True)


class Progress:
    """A small actor: run id -> (node, progress text) of the runs in flight, as their tasks report."""

    def __init__(self):
        self.state: dict[str, tuple[str, str]] = {}
        self.started: dict[str, float] = {}

    def update(self, run_id: str, node: str, text: str) -> None:
        self.state[run_id] = (node, text)
        self.started.setdefault(run_id, time.time())

    def finished(self, run_id: str) -> None:
        self.state.pop(run_id, None)

    def snapshot(self) -> tuple[dict[str, tuple[str, str]], dict[str, float]]:
        return dict(self.state), dict(self.started)


# ---------------------------------------------------------------------------------- on the driver
def check_nodes(ray, entries: Sequence[Entry], campaign: Campaign) -> dict[str, list[str]]:
    """node -> what it lacks, for every alive node with ``cpus_per_run`` CPUs (RayError if none has):
    the package imports, the launch file and roslaunch exist, the backends' runtimes are installed, each
    artifact has the driver's sha256 (inside the driver's checkout: at the same place in the node's
    checkout; elsewhere: at the same absolute path)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from pilotnet_brains.util import sha256_path

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    able = [n for n in nodes if n["Resources"].get("CPU", 0) >= campaign.cpus_per_run]
    if not able:
        sizes = ", ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU" for n in nodes)
        raise RayError(f"no node of the cluster has the {campaign.cpus_per_run:g} CPUs a run asks for ({sizes}): "
                       f"lower cpus_per_run in the campaign file or add a bigger node")
    artifacts = {m: sha256_path(m) for m in {entry_model(e) for e in entries} if m}
    backends = sorted({e.backend for e in entries if e.backend})
    task = ray.remote(check_node)
    refs = {task.options(num_cpus=0, runtime_env=campaign.ray_runtime_env or None,
                         scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
        backends, artifacts, os.path.realpath(package_root())): n for n in able}
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=CHECK_TIMEOUT)
    out = {}
    for ref in ready:
        name = refs[ref]["NodeManagerAddress"]
        try:
            rep = ray.get(ref)
            out[name] = rep["missing"]
        except Exception as e:          # the package does not import there, a bad runtime env...
            lines = [x for x in str(e).splitlines() if x.strip()]
            out[name] = [f"the package's code cannot run there ({lines[-1] if lines else type(e).__name__}): "
                         f"set it up with `make setup` and start the node from a shell where tools/env.sh "
                         f"is sourced"]
    for ref in late:
        ray.cancel(ref, force=True)
        out[refs[ref]["NodeManagerAddress"]] = [f"no answer to the check within {CHECK_TIMEOUT:.0f} s"]
    return out


def store(cdir: str, spec: RunSpec, out: Mapping[str, Any]) -> dict[str, Any]:
    """Unpack a task's run folder and log where a local run writes them, then write the run record."""
    folder = run_folder(cdir, spec)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    incoming = tempfile.mkdtemp(prefix=".incoming-" + spec.run_id + "-", dir=cdir)
    try:
        if out.get("archive"):
            with tarfile.open(fileobj=io.BytesIO(out["archive"]), mode="r:gz") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(incoming, filter="data")
                else:                   # Python < 3.9.17: names are the task's own (runs/<id>, logs/<id>*)
                    tar.extractall(incoming)
        src = os.path.join(incoming, "runs", spec.run_id)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        if os.path.isdir(src):
            if os.path.exists(os.path.join(src, RUN_RECORD)):
                os.remove(os.path.join(src, RUN_RECORD))     # the driver's record is written last
            os.rename(src, folder)
        os.makedirs(os.path.join(cdir, "logs"), exist_ok=True)
        for name in (spec.run_id + ".log", spec.run_id + "_ros"):
            src, dst = os.path.join(incoming, "logs", name), os.path.join(cdir, "logs", name)
            if os.path.exists(src):
                if os.path.isdir(dst):
                    shutil.rmtree(dst)
                os.replace(src, dst)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    log = os.path.join("logs", spec.run_id + ".log")
    rec = write_run_record(folder, spec, out["outcome"], out["wall_s"], out.get("returncode"), out["detail"],
                           log, extra={"node": out.get("node", ""),
                                                 "transfer_bytes": len(out.get("archive") or b"")})
    return {"spec": spec, "outcome": out["outcome"], "wall_s": out["wall_s"], "detail": out["detail"],
            "record": rec, "laps": read_json(os.path.join(folder, "laps.json")), "node": out.get("node", "")}


def run_all(ray, cdir: str, campaign: Campaign, specs: Sequence[RunSpec], timeouts: Mapping[str, float],
            on_result: Callable[[dict[str, Any]], None], on_progress: Callable[[str], None],
            stop_grace: float) -> None:
    """Submit every spec, store each result as it comes; KeyboardInterrupt cancels the tasks in flight
    (their runs end on their workers) and is raised again."""
    for name in os.listdir(cdir):           # what a killed driver was unpacking
        if name.startswith(".incoming-"):
            shutil.rmtree(os.path.join(cdir, name), ignore_errors=True)
    progress = ray.remote(num_cpus=0)(Progress).remote()
    task = ray.remote(run_task).options(num_cpus=campaign.cpus_per_run, max_retries=0,
                                        runtime_env=campaign.ray_runtime_env or None)
    root = os.path.realpath(package_root())
    refs = {task.remote(s, timeouts[s.run_id], root, campaign.laps, progress): s for s in specs}
    left, overdue = list(refs), set()
    try:
        while left:
            done, left = ray.wait(left, num_returns=len(left), timeout=1.0)
            for ref in done:
                spec = refs[ref]
                try:
                    out = ray.get(ref)
                except Exception as e:          # the worker died, the node was lost, a force-cancel...
                    lines = [x for x in str(e).splitlines() if x.strip()]
                    hung = spec.run_id in overdue
                    out = {"outcome": "hung" if hung else "failed", "wall_s": 0.0, "returncode": None,
                           "detail": ("no answer from its worker long past the run timeout; task cancelled"
                                      if hung else f"the Ray task failed: {lines[0] if lines else type(e).__name__}")}
                on_result(store(cdir, spec, out))
            state, started = ray.get(progress.snapshot.remote())
            texts = []
            for run_id, (node, text) in sorted(state.items()):
                texts.append(text.replace(f"{run_id}:", f"{run_id} on {node}:", 1))
            on_progress("; ".join(texts))
            now = time.time()
            for ref in left:          # a worker that stopped answering: the run's own timeout did not end it
                rid = refs[ref].run_id
                if rid in started and rid not in overdue and now - started[rid] > timeouts[rid] + stop_grace + 60:
                    overdue.add(rid)
                    ray.cancel(ref, force=True)
    except KeyboardInterrupt:
        for ref in left:
            ray.cancel(ref)          # KeyboardInterrupt in the task: the run function ends its run
        ray.wait(left, num_returns=len(left), timeout=stop_grace + 10.0)
        for ref in left:
            ray.cancel(ref, force=True)
        raise
