"""One campaign run as a child process: the package's launch/circuit.launch started by ``roslaunch -p
PORT`` on a free port, so the run gets its own private ROS master (no parameter such as
/use_sim_time outlives it) and its own process tree: a crash ends only that run, a hang is ended at
the run's wall timeout (DNF "hung": SIGINT, then SIGKILL of every process of the run). The child dies
with the process that started it (PR_SET_PDEATHSIG). A local campaign (``scripts/benchmark --jobs``)
and a Ray task (:mod:`pilotnet_brains.campaign.ray_runner`) run their runs through the same
:class:`Runner`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from pilotnet_brains import campaign as cp
from pilotnet_brains.util import free_port

#: Child prologue: die with the campaign (SIGTERM when the parent thread ends), unblock every signal (a
#: parent such as a Ray worker may block SIGINT, and the mask is inherited: roslaunch and its nodes
#: would then ignore the SIGINT that ends them cleanly), then exec roslaunch.
_PDEATH = ("import ctypes, os, signal, sys\n"
           "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))\n"
           "if os.getppid() != int(sys.argv[1]):\n"
           "    sys.exit(3)\n"
           "signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
           "os.execvp(sys.argv[2], sys.argv[2:])\n")
#: Wall seconds roslaunch gets to end the run's nodes after SIGINT before everything is SIGKILLed.
STOP_GRACE = 20.0
POLL = 0.25


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, start time) of every process (Linux /proc)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            table[int(name)] = (int(rest[1]), rest[19])
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``root`` (roslaunch starts nodes in their own
    sessions, so the process tree, not the process group, is what a run owns)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add((c, table[c][1]))
            todo.append(c)
    return out


def _kill_known(procs: set[tuple[int, str]], sig: int) -> None:
    table = _proc_table()
    for pid, start in procs:
        if pid in table and table[pid][1] == start:      # the same process, not a reused pid
            try:
                os.kill(pid, sig)
            except OSError:
                pass


class PortPool:
    """Free TCP ports for the runs' masters, never the same twice in one campaign."""

    def __init__(self):
        self.lock = threading.Lock()
        self.used: set[int] = set()

    def take(self) -> int:
        with self.lock:
            port = free_port(self.used)
            self.used.add(port)
            return port


class Runner:
    """Runs RunSpecs one per child roslaunch; thread-safe; ``stop()`` ends every run in flight."""

    def __init__(self, campaign_dir: str, launch_file: str, ports: PortPool):
        self.campaign_dir = campaign_dir
        self.launch_file = launch_file
        self.ports = ports
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.active: dict[str, dict[str, Any]] = {}

    def command(self, spec: cp.RunSpec, port: int) -> list[str]:
        roslaunch = shutil.which("roslaunch") or "roslaunch"
        args = [f"{k}:={v}" for k, v in spec.args] + [f"results_dir:={cp.runs_dir(self.campaign_dir)}"]
        return [sys.executable, "-c", _PDEATH, str(os.getpid()), roslaunch, "-p", str(port), "--no-summary",
                "--skip-log-check", "--disable-title", "--sigint-timeout", "10", "--sigterm-timeout", "2",
                self.launch_file, *args]

    def run(self, spec: cp.RunSpec, timeout: float) -> dict[str, Any]:
        """Run one spec to its end (or its wall timeout) and write its campaign record."""
        if self.stopping.is_set():
            return {"spec": spec, "outcome": None, "wall_s": 0.0, "detail": "campaign stopped"}
        folder = cp.run_folder(self.campaign_dir, spec)
        if os.path.isdir(folder):              # a stale or interrupted attempt: start clean
            shutil.rmtree(folder)
        os.makedirs(os.path.dirname(folder), exist_ok=True)   # the run creates (owns) its folder
        logs = os.path.join(self.campaign_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        log_path = os.path.join(logs, spec.run_id + ".log")
        port = self.ports.take()
        env = dict(os.environ)
        env.pop("ROS_IP", None)
        env.update({"ROS_MASTER_URI": f"http://127.0.0.1:{port}/", "ROS_HOSTNAME": "127.0.0.1",
                    "ROS_LOG_DIR": os.path.join(logs, spec.run_id + "_ros"), "PYTHONUNBUFFERED": "1"})
        t0 = time.monotonic()
        known: set[tuple[int, str]] = set()
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(self.command(spec, port)[4:]) + "\n")
            log.flush()
            proc = subprocess.Popen(self.command(spec, port), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
            with self.lock:
                self.active[spec.run_id] = {"spec": spec, "t0": t0, "folder": folder}
            hung = False
            try:
                last_scan = 0.0
                while proc.poll() is None:
                    now = time.monotonic()
                    if now - last_scan > 2.0:
                        known |= descendants(proc.pid)
                        last_scan = now
                    if self.stopping.is_set():
                        break
                    if now - t0 > timeout:
                        hung = True
                        break
                    time.sleep(POLL)
            finally:
                if proc.poll() is None:
                    known |= descendants(proc.pid)
                    proc.send_signal(signal.SIGINT)       # roslaunch ends its nodes; metrics writes its state
                    try:
                        proc.wait(STOP_GRACE)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                _kill_known(known, signal.SIGKILL)        # whatever outlived roslaunch
                with self.lock:
                    self.active.pop(spec.run_id, None)
        wall = time.monotonic() - t0
        if self.stopping.is_set() and not hung:
            return {"spec": spec, "outcome": None, "wall_s": wall, "detail": "campaign stopped"}
        doc = cp.read_json(os.path.join(folder, "laps.json"))
        if hung:
            outcome, detail = "hung", f"no end within the run timeout of {timeout:.0f} wall s; run ended"
        else:
            outcome, detail = cp.classify(doc, proc.returncode)
        if outcome == "failed":
            detail += "; log: " + log_tail(log_path)
        rec = cp.write_run_record(folder, spec, outcome, wall, proc.returncode, detail,
                                  os.path.relpath(log_path, self.campaign_dir))
        return {"spec": spec, "outcome": outcome, "wall_s": wall, "detail": detail, "record": rec,
                "laps": cp.read_json(os.path.join(folder, "laps.json"))}

    def progress_text(self, laps: int) -> str:
        with self.lock:
            active = list(self.active.values())
        parts = []
        for a in active:
            doc = cp.read_json(os.path.join(a["folder"], "laps.json"))
            parts.append(f"{a['spec'].run_id}: {cp.lap_progress(doc, laps)} ({time.monotonic() - a['t0']:.0f} s)")
        return "; ".join(parts)


def log_tail(path: str, lines: int = 3) -> str:
    """What a failed run's log says: its FATAL lines (the refusing node's message) if any, else its
    last ``lines`` lines."""
    try:
        with open(path, errors="replace") as f:
            text = [x.strip() for x in f.read().splitlines() if x.strip()]
    except OSError:
        return "(no log)"
    fatal = [x for x in text if "[FATAL]" in x]
    return " | ".join(fatal[:lines])[:400] if fatal else " | ".join(text[-lines:])[-400:]
