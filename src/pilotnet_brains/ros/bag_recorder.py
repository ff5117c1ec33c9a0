"""The run recorder node (``scripts/record_run``): a rosbag of the run in its run folder.

It subscribes the recorded topics as raw bytes (``rospy.AnyMsg``: nothing is deserialised), keeps
every Nth camera frame, and writes a standard ROS 1 bag (v2.0, lz4 chunks by default) with the
``rosbag`` library: ``<bag>.active`` while recording, renamed to ``<bag>`` once closed and indexed,
as ``rosbag record`` does. It closes on any shutdown (the launch ending, Ctrl-C, SIGTERM), and as
soon as the metrics node publishes the run's last LapResult (its JSON says ``"final": true`` and
``record_until``, the stamp of the odometry sample that ended the run): the bag ends where the
run's laps end. So that nothing after the last lap's end slips in,
messages are written ``HOLD`` wall seconds after they arrive (the final LapResult comes half a
second after the lap's end); at the end, those stamped (receipt sim time) after the lap's end are
dropped.

The run folder comes from the metrics node: it sets ``/lap_metrics/run`` = {dir, token} when it has
chosen the run id; the token (``$(anon ...)`` in metrics.launch, the same for both nodes) keeps a
stale value of an earlier run on a long-lived master from being taken. Messages that arrive
before that are buffered.
"""
from __future__ import annotations

import collections
import io
import json
import os
import struct
import threading
import time

import rosbag
import rospy
from std_msgs.msg import String

from pilotnet_brains import topics
from pilotnet_brains.params import RecorderParams, read_params, ros_params
from pilotnet_brains.ros import startup

#: Messages kept in memory while the run folder is not known yet.
MAX_BUFFERED = 5000
#: Wall seconds a message waits before it is written (see the module docstring).
HOLD = 3.0


#: Message types whose serialisation starts with a std_msgs/Header (seq, stamp) or is a clock.
_HEADER_FIRST = ("nav_msgs/Odometry", "sensor_msgs/Image", "sensor_msgs/CameraInfo", "pilotnet_brains/BrainStats",
                 "pilotnet_brains/LapResult")


def _stamp(item) -> float:
    """Sim time (s) of a held message: its header stamp, the clock's value, or else its receipt
    time (the recorder's own clock may lag the simulator's, so receipt is the fallback)."""
    _, msg_type, data, _, _, t = item
    off = 4 if msg_type in _HEADER_FIRST else 0 if msg_type == "rosgraph_msgs/Clock" else -1
    if off >= 0 and len(data) >= off + 8:
        secs, nsecs = struct.unpack_from("<II", data, off)
        return secs + nsecs * 1e-9
    return t.to_sec()


class _Definition:
    """Stands in for a message class: rosbag only needs the definition text of a raw message."""

    def __init__(self, text: str, md5sum: str):
        self._full_text = text
        self._md5sum = md5sum


class BagRecorder:
    """See :func:`main`."""

    def __init__(self, params: RecorderParams):
        self.lock = threading.Lock()
        self.bag = None
        self.path = params.bag
        self.bag_name = params.bag_name
        self.compression = params.compression
        self.buffer: list = []
        self.closed = False
        self.camera_every = params.camera_every
        self.camera_count = 0
        self.count = 0
        self.held: collections.deque = collections.deque()   # (wall s, item) not written yet
        self.end_t: rospy.Time | None = None
        self.subs = []
        from pilotnet_brains.msg import LapResult

        self.subs.append(rospy.Subscriber(topics.LAP_RESULTS, LapResult, self._lap_cb, queue_size=50))
        for name in params.topics:
            self.subs.append(rospy.Subscriber(name, rospy.AnyMsg, self._cb, callback_args=name, queue_size=500))
        camera = params.camera_topic
        if self.camera_every > 0 and camera:
            self.subs.append(rospy.Subscriber(camera, rospy.AnyMsg, self._camera_cb, callback_args=camera,
                                              queue_size=2, buff_size=2 ** 24))
        rospy.on_shutdown(self.close)
        if not self.path:
            threading.Thread(target=self._wait_for_folder, args=(params.run_param, params.run_token, params.wait),
                             daemon=True).start()
        else:
            self._open()
        threading.Thread(target=self._writer, daemon=True).start()

    def _lap_cb(self, msg) -> None:
        """The run's last LapResult ends the recording at its lap's end."""
        try:
            doc = json.loads(msg.json)
        except ValueError:
            return
        if doc.get("final"):
            until = max(msg.header.stamp.to_sec(), float(doc.get("record_until", 0.0)))
            with self.lock:
                # received up to 40 ms after the last sample's stamp (clock steps), not the next one's
                self.end_t = rospy.Time.from_sec(until + 0.04)
            threading.Thread(target=self._end_soon, daemon=True).start()

    def _end_soon(self) -> None:
        time.sleep(0.2)   # the LapResult itself reaches the raw subscriber too
        self.close()

    def _writer(self) -> None:
        while True:
            time.sleep(0.2)
            with self.lock:
                if self.closed:
                    return
                self._write_held(time.monotonic() - HOLD)

    def _wait_for_folder(self, param: str, token: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not rospy.is_shutdown() and time.monotonic() < deadline:
            run = rospy.get_param(param, {})
            if isinstance(run, dict) and run.get("dir") and str(run.get("token", "")) == token:
                self.path = os.path.join(run["dir"], self.bag_name)
                self._open(str(run.get("identity", "")))
                return
            time.sleep(0.05)
        if not rospy.is_shutdown():
            rospy.logerr(f"record_run: {param} with token {token!r} never set (is lap_metrics running?); "
                         f"nothing recorded")

    def _open(self, identity: str = "") -> None:
        """Open the bag; ``identity`` (the metrics node's JSON) goes first, on RUN_IDENTITY, so a bag
        whose run was stopped before any lap result still says which run (circuit...) it holds."""
        with self.lock:
            if self.closed:
                return
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            taken = [p for p in (self.path, self.path + ".active") if os.path.exists(p)]
            if taken:   # another run's bag: never overwrite or rename over it
                rospy.logerr(f"record_run: {taken[0]} already exists (another run's bag); nothing recorded. "
                             f"Give this run its own run_id:= (or ~bag)")
                self.closed = True
                return
            self.bag = rosbag.Bag(self.path + ".active", "w", compression=self.compression)
            if identity:
                t = rospy.get_rostime()
                self.bag.write(topics.RUN_IDENTITY, String(data=identity), t if not t.is_zero() else rospy.Time(0, 1))
            for item in self.buffer:
                self.held.append((time.monotonic(), item))
            self.buffer = []
        rospy.loginfo(f"record_run: recording to {self.path}")

    def _camera_cb(self, msg, topic: str) -> None:
        self.camera_count += 1
        if (self.camera_count - 1) % self.camera_every == 0:
            self._cb(msg, topic)

    def _cb(self, msg, topic: str) -> None:
        t = rospy.get_rostime()
        if t.is_zero():
            t = rospy.Time.from_sec(time.time()) if not rospy.get_param("/use_sim_time", False) else rospy.Time(0, 1)
        if hasattr(msg, "_buff"):
            header = msg._connection_header
            item = (topic, header["type"], msg._buff, header["md5sum"], header.get("message_definition", ""), t)
        else:  # rospy hands a topic this node also uses typed (/clock) over deserialised
            buf = io.BytesIO()
            msg.serialize(buf)
            item = (topic, msg._type, buf.getvalue(), msg._md5sum, msg._full_text, t)
        with self.lock:
            if self.closed:
                return
            if self.bag is None:
                if len(self.buffer) < MAX_BUFFERED:
                    self.buffer.append(item)
                return
            self.held.append((time.monotonic(), item))

    def _write_held(self, before: float) -> None:
        """Write the held messages that arrived before wall time ``before`` (lock held); after the
        run's end, only those stamped up to it (and the LapResults)."""
        while self.held and self.held[0][0] <= before:
            item = self.held.popleft()[1]
            if self.end_t is None or item[0] == topics.LAP_RESULTS or _stamp(item) <= self.end_t.to_sec():
                self._write(*item)

    def _write(self, topic, msg_type, data, md5, definition, t) -> None:
        self.bag.write(topic, (msg_type, data, md5, None, _Definition(definition, md5)), t, raw=True)
        self.count += 1

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for s in self.subs:
                s.unregister()
            if self.bag is not None:
                self._write_held(float("inf"))
                self.bag.close()
                os.replace(self.path + ".active", self.path)
                print(f"record_run: {self.count} messages in {self.path}", flush=True)


def main() -> None:
    """Record a run to a bag (``scripts/record_run``, node name ``record_run``)."""
    from pilotnet_brains.helptext import node_help

    node_help(main, RecorderParams)   # --help: the ~params, and no node started
    startup.init_node("record_run")
    try:
        params = read_params(RecorderParams(), ros_params)
    except ValueError as e:
        rospy.logfatal(f"record_run: {e}")
        raise SystemExit(1) from None
    if params.compression not in ("none", "lz4", "bz2"):
        rospy.logfatal(f"record_run: ~compression must be none, lz4 or bz2, got {params.compression!r}")
        raise SystemExit(1)
    BagRecorder(params)
    startup.started()
    rospy.spin()
