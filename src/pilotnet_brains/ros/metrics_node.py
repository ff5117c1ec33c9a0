"""The lap metrics node (``scripts/lap_metrics``): thin ROS glue around :mod:`pilotnet_brains.metrics`.

Callbacks only feed a :class:`~pilotnet_brains.metrics.RunTracker` under a lock. A wall-clock
thread (it keeps running when the simulator, and with it ``/clock``, stops) finalises laps after
a short grace (late brain stats still count), watches the brain (stats/commands silence, process
gone), writes the in-progress state to disk, and ends the run. On shutdown (Ctrl-C, the launch
ending) the lap in progress is recorded as DNF ``interrupted`` (``sim_died`` or ``brain_died`` if the
simulator or the brain process was already gone) and every result file is written before the node
exits. A run a node refused to start is recorded as ``refused`` with that node's message.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import xmlrpc.client
from urllib.parse import urlparse

import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo

from pilotnet_brains import cpuwait, hostinfo, results_root, topics
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.metrics import LapLimits, LapSpan, RunTracker, limits_dict
from pilotnet_brains.msg import BrainStats, LapResult
from pilotnet_brains.params import MetricsParams, read_params, ros_params
from pilotnet_brains.reporting import to_json
from pilotnet_brains.results import (
    RunWriter,
    claim_run_folder,
    make_run_id,
    method_label,
    model_identity,
)
from pilotnet_brains.ros import startup
from pilotnet_brains.sim.kinematics import yaw_of

#: Wall seconds a finished lap waits for late brain stats before it is finalised.
FINALIZE_GRACE = 0.5
#: Wall seconds after the first command without any BrainStats before the command's time arms the run.
NO_STATS_ARM = 1.0
#: Wall seconds between liveness checks of the brain process.
BRAIN_POLL = 0.05
#: Wall s between looks for a refusal of another node of the launch (before the run is armed).
REFUSAL_POLL = 0.5
#: Wall s between samples of the brain's and the simulator's CPU wait (when they run on this host).
CPU_WAIT_PERIOD = 0.5


class _Timeout(xmlrpc.client.Transport):
    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = 1.0
        return conn


class BrainWatch:
    """Is the brain node's process alive? Knows it from /proc when the node runs on this host
    (zombies count as dead: the brain died even if roslaunch has not reaped it yet), else by
    pinging its XML-RPC server."""

    def __init__(self, node_name: str):
        self.node_name = node_name
        self.pid: int | None = None
        self.uri: str | None = None
        self.seen_alive = False
        self._last_lookup = -1.0

    def _lookup(self) -> None:
        import rosgraph

        try:
            self.uri = rosgraph.Master(rospy.get_name()).lookupNode(self.node_name)
        except Exception:
            return
        try:
            code, _, pid = xmlrpc.client.ServerProxy(self.uri, transport=_Timeout()).getPid(rospy.get_name())
        except Exception:
            return
        host = urlparse(self.uri).hostname or ""
        local = host in ("localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn())
        if code == 1 and local and os.path.exists(f"/proc/{pid}"):
            self.pid = int(pid)
        self.seen_alive = True

    def alive(self) -> bool | None:
        """True/False once the brain was seen, None while it never was."""
        if not self.node_name:
            return None
        if not self.seen_alive:
            now = time.monotonic()
            if now - self._last_lookup >= 0.5:       # the master is asked at 2 Hz until the brain is up
                self._last_lookup = now
                self._lookup()
            return True if self.seen_alive else None
        if self.pid is not None:
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                return state not in ("Z", "X")
            except (OSError, IndexError):
                return False
        try:
            xmlrpc.client.ServerProxy(self.uri, transport=_Timeout()).getPid(rospy.get_name())
            return True
        except Exception:
            return False


def _end_launch(wait: float = 10.0) -> None:
    """End the roslaunch that started this node as Ctrl-C does (every node stopped, exit 0), so a
    finished run does not end on roslaunch's red "REQUIRED process has died" banner, which stays for
    real failures. Does nothing under any other parent (rostest, a test harness)."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")[:2]
    except OSError:
        return
    if not any(os.path.basename(a) == b"roslaunch" for a in argv):
        return
    os.kill(ppid, signal.SIGINT)
    deadline = time.monotonic() + wait       # roslaunch now stops this node too
    while not rospy.is_shutdown() and time.monotonic() < deadline:
        time.sleep(0.05)


def _model_path(brain: str, backend: str, model: str) -> str:
    """The model file the brain drives with: ~model, or the backend's default artifact."""
    if model or brain not in ("", "pilotnet") or not backend:
        return model
    try:
        from pilotnet_brains.backends.registry import resolve_path

        return resolve_path(backend)
    except Exception:          # an unknown backend: the brain node reports it
        return model


class LapMetricsNode:
    """See :func:`main` for the topics and ~params."""

    def __init__(self):
        p = read_params(MetricsParams(), ros_params)
        self.circuit = load_circuit(p.circuit, reverse=p.reverse)
        self.limits = read_params(LapLimits(), ros_params)
        self.tracker = RunTracker(self.circuit, self.limits)
        self.brain_timeout = p.brain_timeout
        self.startup_timeout = p.startup_timeout
        self.partial_period = p.partial_period
        self.plots = p.plots
        backend = p.backend if p.brain in ("", "pilotnet") else ""   # only model brains have one
        method = method_label(p.brain, backend)
        results_dir = os.path.realpath(os.path.expanduser(p.results_dir or results_root()))
        self.folder = claim_run_folder(results_dir, p.run_id or make_run_id(self.circuit.name, method),
                                       unique=not p.run_id)
        run_id = os.path.basename(self.folder)
        self.identity: dict[str, object] = {
            "run_id": run_id, "circuit": self.circuit.name, "circuit_source": self.circuit.source,
            "circuit_length": self.circuit.length, "reverse": self.circuit.reversed,
            "brain": p.brain, "backend": backend, **model_identity(_model_path(p.brain, backend, p.model)),
            "sim": p.sim, "mode": p.mode, "threads": p.threads, "start_s": p.start_s,
            "limits": {**limits_dict(self.limits), "lap_timeout": self.tracker.timeout,
                       "brain_timeout_wall": self.brain_timeout},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(),
        }
        self.writer = RunWriter(self.folder, self.identity, hostinfo.describe(p.threads))
        # for the recorder; the token (unique per launch) tells this run's folder from a stale one
        self.run_token = p.run_token
        rospy.set_param("~run", {"dir": self.folder, "token": self.run_token, "identity": to_json(self.identity)})

        self.lock = threading.RLock()
        self.results: list[dict[str, object]] = []
        self.pending: list[tuple] = []          # (wall due, LapSpan)
        self.finished = False
        self.t_start_wall = time.monotonic()
        self.next_refusal_check = self.t_start_wall
        self.last_brain_wall: float | None = None
        self.first_cmd: tuple | None = None     # (sim s, wall s) of the first command
        self.watch = BrainWatch(p.brain_node)
        self.sim_watch = BrainWatch(p.sim_node)
        self.last_odom_wall: float | None = None
        self.writer.write_json([], None, "waiting")

        self.pub = rospy.Publisher(topics.LAP_RESULTS, LapResult, queue_size=10, latch=True)
        # queue_size=None: every message rospy reads reaches its callback (a bounded queue drops unseen)
        rospy.Subscriber(topics.ODOM, Odometry, self.on_odom, queue_size=None, tcp_nodelay=True)
        rospy.Subscriber(topics.BRAIN_STATS, BrainStats, self.on_stats, queue_size=None, tcp_nodelay=True)
        rospy.Subscriber(topics.CMD_VEL, Twist, self.on_cmd, queue_size=None, tcp_nodelay=True)
        rospy.Subscriber(topics.CAMERA_INFO, CameraInfo, self.on_camera, queue_size=None, tcp_nodelay=True)
        rospy.on_shutdown(self.on_shutdown)
        self.thread = threading.Thread(target=self._loop, name="lap_metrics_wall", daemon=True)
        self.thread.start()
        rospy.loginfo(f"lap_metrics: {self.circuit!r}, {self.limits.laps} lap(s), timeout "
                      f"{self.tracker.timeout:.0f} s sim per lap; results in {self.folder}")

    # ------------------------------------------------------------------ callbacks
    def _ended(self, spans: list[LapSpan]) -> None:
        due = time.monotonic() + FINALIZE_GRACE
        for span in spans:
            self.pending.append((due, span))
            rospy.loginfo(f"lap_metrics: lap {span.lap} "
                          f"{'completed' if span.completed else 'DNF ' + span.dnf_reason} at t = {span.t_end:.2f} s"
                          f"{' (' + span.detail + ')' if span.detail else ''}")

    def _arm(self, t: float, what: str) -> None:
        if not self.tracker.armed:
            self._ended(self.tracker.arm(t))
            rospy.loginfo(f"lap_metrics: first {what} at t = {t:.3f} s: the run starts")

    def on_odom(self, msg: Odometry) -> None:
        pos = msg.pose.pose.position
        with self.lock:
            self.last_odom_wall = time.monotonic()
            if not self.finished:
                self._ended(self.tracker.add_odom(msg.header.stamp.to_sec(), pos.x, pos.y, wall=time.time(),
                                                  yaw=yaw_of(msg.pose.pose.orientation)))

    def on_stats(self, msg: BrainStats) -> None:
        with self.lock:
            if self.finished:
                return
            self.last_brain_wall = time.monotonic()
            self._arm(msg.header.stamp.to_sec(), "brain iteration (frame stamp)")
            self.tracker.add_stats(msg.header.stamp.to_sec(), msg.inference_time, msg.preprocess_time,
                                   msg.iteration_time, msg.period, msg.skipped_frames, msg.bad_frames,
                                   msg.bad_outputs, msg.v, msg.w, backend=msg.backend)

    def on_cmd(self, msg: Twist) -> None:
        with self.lock:
            if self.finished:
                return
            self.last_brain_wall = time.monotonic()
            t = rospy.get_rostime().to_sec()
            if self.first_cmd is None:
                self.first_cmd = (t, self.last_brain_wall)
            self.tracker.add_command(t, msg.linear.x, msg.angular.z)

    def on_camera(self, msg: CameraInfo) -> None:
        with self.lock:
            if not self.finished:
                self.tracker.add_camera(msg.header.stamp.to_sec())

    # ------------------------------------------------------------------ laps
    def _sample_cpu_wait(self) -> None:
        pids = (self.watch.pid, self.sim_watch.pid)
        if any(pid is not None for pid in pids):
            self.tracker.add_cpu_wait(time.time(), *(None if pid is None else cpuwait.run_queue_wait_s(pid)
                                                     for pid in pids))

    def _finalize(self, span: LapSpan) -> None:
        self._sample_cpu_wait()       # a sample after the lap's end, so its wait covers all of it
        lap = self.tracker.lap_metrics(span)
        self.results.append(lap)
        msg = LapResult()
        msg.header.stamp = rospy.Time.from_sec(max(span.t_end, 0.0))
        msg.header.frame_id = topics.ODOM_FRAME
        msg.circuit = self.circuit.name
        msg.backend = str(self.identity["backend"] or self.identity["brain"])
        msg.lap = span.lap
        msg.completed = span.completed
        msg.dnf_reason = span.dnf_reason
        msg.lap_time = float(lap["lap_time"])
        msg.distance = float(lap["distance"])
        msg.percentage = float(lap["percentage"])
        msg.average_speed = float(lap["average_speed"])
        msg.deviation_mae = float(lap["deviation_mae"])
        msg.real_time_factor = float(lap["real_time_factor"])
        # "final": the run's last lap; the recorder ends the bag with the odometry sample that
        # ended it ("record_until", sim s: the lap's end is interpolated up to that sample)
        final = self.tracker.done and span is self.tracker.laps[-1]
        until = span.t_decided if span.t_decided == span.t_decided else span.t_end
        extra = {"final": True, "record_until": max(span.t_end, until)} if final else {}
        msg.json = to_json({**lap, "identity": self.identity, **extra})
        try:
            self.pub.publish(msg)
        except rospy.ROSException:
            pass

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for due, span in self.pending:
            if force or now >= due:
                self._finalize(span)
            else:
                keep.append((due, span))
        self.pending = keep

    def _write_partial(self) -> None:
        cur = self.tracker.current
        partial = self.tracker.lap_metrics(cur) if cur is not None else None
        self.writer.write_json(self.results, partial, "running")

    def _finish(self, status: str, ending: str = "run finished") -> None:
        """Write every result file and print the table (once), then "<ending>: results in <folder>"."""
        if self.finished:
            return
        self._flush(force=True)
        self.finished = True
        tracks = [self.tracker.lap_track(s) for s in self.tracker.laps]
        table = self.writer.write_final(self.results, status, self.circuit, tracks, plots=self.plots)
        sys.stdout.write("\n" + table + f"\n{ending}: results in {self.folder}\n")
        sys.stdout.flush()

    def _loop(self) -> None:
        last_partial = last_wait = 0.0
        while not rospy.is_shutdown():
            time.sleep(BRAIN_POLL)
            with self.lock:
                if self.finished:
                    return
                now = time.monotonic()
                self._check_brain(now)
                if now - last_wait >= CPU_WAIT_PERIOD:
                    last_wait = now
                    self._sample_cpu_wait()
                if self.finished:         # recorded as refused
                    return
                self._flush()
                if self.tracker.done and not self.pending:
                    self._finish("done")
                    done = True
                else:
                    done = False
                    if now - last_partial >= self.partial_period:
                        last_partial = now
                        self._write_partial()
            if done:
                time.sleep(0.5)           # let the recorder take the last LapResult
                _end_launch()
                rospy.signal_shutdown("lap_metrics: run over")
                return

    def _check_brain(self, now: float) -> None:
        if self.tracker.done:
            return
        if not self.tracker.armed and self.first_cmd is not None and now - self.first_cmd[1] > NO_STATS_ARM:
            self._arm(self.first_cmd[0], "command (no brain stats)")
        culprit = self._sim_stopped(now)
        if culprit:
            rospy.logerr(f"lap_metrics: simulator died: {culprit}")
            span = self.tracker.abort("sim_died", detail=culprit)
            if span is not None:
                self._ended([span])
            return
        reason = ""
        alive = self.watch.alive()
        if alive is False:
            reason = f"the brain node {self.watch.node_name} is gone (process {self.watch.pid or '?'} ended)"
        elif self.tracker.armed and self.last_brain_wall is not None and \
                now - self.last_brain_wall > self.brain_timeout:
            reason = f"no brain stats or commands for {now - self.last_brain_wall:.1f} s wall (> {self.brain_timeout} s)"
        elif not self.tracker.armed and now - self.t_start_wall > self.startup_timeout:
            reason = f"no brain command within {self.startup_timeout:.0f} s wall of the start"
        if not self.tracker.armed and (reason or now >= self.next_refusal_check):
            # a refusing node waits for this record before it exits (and its exit ends the launch)
            self.next_refusal_check = now + REFUSAL_POLL
            refusal = self._refusal()
            if refusal is not None:
                self._finish_refused(refusal)
                if reason:
                    rospy.signal_shutdown("lap_metrics: run refused")
                return
        if reason:
            rospy.logerr(f"lap_metrics: brain died: {reason}")
            span = self.tracker.abort("brain_died", detail=reason)
            if span is not None:
                self._ended([span])

    def _sim_stopped(self, now: float) -> str:
        """Why the simulator is to blame ("" if it is not): its process ended, or it stopped (no
        odometry, and hence no camera frame for the brain to answer) for brain_timeout wall s."""
        if self.sim_watch.alive() is False:
            return f"the simulator node {self.sim_watch.node_name} is gone (process {self.sim_watch.pid or '?'} ended)"
        if self.tracker.armed and self.last_odom_wall is not None and now - self.last_odom_wall > self.brain_timeout:
            return (f"the simulator stopped: no odometry for {now - self.last_odom_wall:.1f} s wall "
                    f"(> {self.brain_timeout} s), so no camera frame for the brain either")
        return ""

    def _refusal(self) -> dict | None:
        """{node, message} of a node of this launch that refused to start (see ros/startup.py)."""
        if not self.run_token:
            return None
        try:
            found = rospy.get_param(startup.refusal_param(self.run_token), None)
        except Exception:
            return None
        return dict(found) if isinstance(found, dict) else None

    def _finish_refused(self, refusal: dict) -> None:
        """A run refused before it started: no lap, status refused, the refusing node's message."""
        self.finished = True
        self.writer.write_json([], None, "refused", extra={"refusal": {
            "by": str(refusal.get("node", "?")), "message": str(refusal.get("message", ""))}})
        sys.stdout.write(f"\nrun refused by {refusal.get('node')}: {refusal.get('message')}\nresults: {self.folder}\n")
        sys.stdout.flush()
        try:
            startup.mark_recorded(self.run_token)
        except Exception:   # the master is gone: the refusing node stops waiting on its own
            pass

    def on_shutdown(self) -> None:
        with self.lock:
            if self.finished:
                return
            refusal = None if self.tracker.armed else self._refusal()
            if refusal is not None:
                self._finish_refused(refusal)
                return
            if not self.tracker.done:
                alive = self.watch.alive()
                culprit = self._sim_stopped(time.monotonic())
                if culprit:
                    reason, detail = "sim_died", culprit
                elif alive is False:
                    reason, detail = "brain_died", "the brain process ended before the run"
                else:
                    reason, detail = "interrupted", "shutdown before the run ended"
                span = self.tracker.abort(reason, detail=detail)
                if span is not None:
                    self._ended([span])
            try:
                self._finish("done" if self.tracker.laps and self.tracker.laps[-1].dnf_reason != "interrupted"
                             else "interrupted", ending="run stopped before its end")
            except Exception as e:  # never lose the JSON to a plotting problem
                rospy.logerr(f"lap_metrics: writing results failed: {e}")
                self.writer.write_json(self.results, None, "interrupted")


def main() -> None:
    """Run the lap metrics node (``scripts/lap_metrics``, node name ``lap_metrics``).

    Subscribes ``/F1ROS/odom`` (nav_msgs/Odometry, stamps = sim time), ``/brain/stats``
    (pilotnet_brains/BrainStats), ``/F1ROS/cmd_vel`` (geometry_msgs/Twist) and
    ``/F1ROS/cameraL/camera_info`` (frame rate); publishes one pilotnet_brains/LapResult per lap
    on ``/lap_metrics/laps`` (latched) and sets ``~run`` = {dir: the run folder, token: ~run_token}
    for the recorder.
    Exits 0 when the laps are driven or a lap ends as DNF (a DNF ends the run).
    """
    from pilotnet_brains.helptext import node_help

    node_help(main, MetricsParams, LapLimits)   # --help: the ~params, and no node started
    startup.init_node("lap_metrics")
    try:
        node = LapMetricsNode()
    except (ValueError, OSError) as e:
        startup.refuse(f"lap_metrics cannot start: {e}", wait_recorded=False)
    startup.started()
    rospy.spin()
    node.thread.join(timeout=5.0)

