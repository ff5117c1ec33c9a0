"""benchmark_brain's ROS part: brain nodes timed through a real master, camera publish -> command
received on loopback, one frame in flight."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from pilotnet_brains import PACKAGE_ROOT, topics
from pilotnet_brains.timing import summary


class Loopback:
    """This process as the camera publisher and the command/stats subscriber of one brain node at a
    time, on the master rospy was initialised against (a :func:`private_master`).

    ``receiver_batch``: the thread that receives the commands switches itself to SCHED_BATCH on its
    first command. A TCP send wakes its receiver with a synchronous wake-up, which Linux may answer
    by running the receiver on the sender's core at once, inside the sender's send(); a SCHED_BATCH
    task never preempts on wake-up, so the brain's send() then returns without waiting for it.
    :attr:`receiver_policy` is the policy the receiving thread of the last node ran with."""

    def __init__(self, receiver_batch: bool = False):
        import rospy
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image

        from pilotnet_brains.msg import BrainStats

        self.rospy = rospy
        self.Image = Image
        self.receiver_batch = receiver_batch
        self.receiver_policy: int | None = None
        self.cmd_event = threading.Event()
        self.cmd_t = 0
        self.stats: dict[int, Any] = {}
        self.pub = rospy.Publisher(topics.CAMERA_IMAGE, Image, queue_size=1)
        self.sub = rospy.Subscriber(topics.CMD_VEL, Twist, self._on_cmd, tcp_nodelay=True)
        self.stats_sub = rospy.Subscriber(topics.BRAIN_STATS, BrainStats, self._on_stats)

    def _on_cmd(self, _msg) -> None:
        self.cmd_t = time.perf_counter_ns()
        self.cmd_event.set()
        if self.receiver_policy is None:   # a node's first command, on rospy's thread for its connection
            if self.receiver_batch:
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))   # 0: this thread
            self.receiver_policy = os.sched_getscheduler(0)

    def _on_stats(self, m) -> None:
        self.stats[m.header.stamp.secs] = m

    def close(self) -> None:
        for topic in (self.pub, self.sub, self.stats_sub):
            topic.unregister()

    def run_node(self, name: str, path: str | None, threads: int, frames: list[np.ndarray],
                 count: int, warmup: int, log_dir: str, progress) -> dict[str, Any]:
        brain = "explicit" if name == "explicit" else "pilotnet"
        exe = os.path.join(PACKAGE_ROOT, "brains", f"{brain}_brain")
        argv = [sys.executable, exe, "__name:=brain", f"_backend:={name}", f"_threads:={threads}",
                "_watchdog_timeout:=0"]
        if path:
            argv.append(f"_model:={path}")
        log_path = os.path.join(log_dir, f"node_{name}.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            deadline = time.monotonic() + 120
            while self.pub.get_num_connections() == 0 or self.sub.get_num_connections() == 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path) as f:
                        raise RuntimeError(f"the {name} brain node did not come up: {f.read()[-800:]}")
                time.sleep(0.05)
            msgs = [self.Image(height=480, width=640, encoding="rgb8", step=1920, data=f.tobytes())
                    for f in frames]
            e2e: list[int] = []
            self.stats.clear()
            self.receiver_policy = None      # each node's connection has its own receiving thread
            for i in progress(range(warmup + count), desc=f"{name} end-to-end", leave=False):
                m = msgs[i % len(msgs)]
                m.header.stamp = self.rospy.Time(i + 1, 0)
                self.cmd_event.clear()
                t0 = time.perf_counter_ns()
                self.pub.publish(m)
                if not self.cmd_event.wait(5.0):
                    raise RuntimeError(f"the {name} brain node gave no command within 5 s")
                if i >= warmup:
                    e2e.append(self.cmd_t - t0)
                time.sleep(0.002)
            deadline = time.monotonic() + 10.0   # the last stats may trail their commands on a busy machine
            while time.monotonic() < deadline and sum(1 for k in list(self.stats) if k > warmup) < count:
                time.sleep(0.05)
            st = [self.stats[k] for k in sorted(self.stats) if k > warmup]
            it = [x.iteration_time * 1e9 for x in st]
            inf = [x.inference_time * 1e9 for x in st]
            own = [(x.iteration_time - x.inference_time) * 1e9 for x in st]
            rss = None
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) / 1024.0
            except OSError:
                pass
            return {"e2e_ns": e2e, "e2e": summary(e2e, "ms"), "node_iteration": summary(it, "ms"),
                    "node_inference": summary(inf, "ms"), "node_own": summary(own, "ms"),
                    "node_iteration_ns": [int(x) for x in it], "node_rss_mb": rss,
                    "skipped_frames": int(max((s.skipped_frames for s in self.stats.values()), default=0))}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
