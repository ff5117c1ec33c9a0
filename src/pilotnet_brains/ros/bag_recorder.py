"""The run recorder node (``scripts/record_run``): a rosbag of the run in its run folder.

It subscribes the recorded topics as raw bytes (``rospy.AnyMsg``: nothing is deserialised), keeps
every Nth camera frame, and writes a standard ROS 1 bag (v2.0, lz4 chunks by default) with the
``rosbag`` library: ``<bag>.active`` while recording, renamed to ``<bag>`` once closed and indexed,
as ``rosbag record`` does. It closes on any shutdown (the launch ending, Ctrl-C, SIGTERM).

The run folder comes from the metrics node: it sets ``/lap_metrics/run`` = {dir, token} when it has
chosen the run id; the token (``$(anon ...)`` in metrics.launch, the same for both nodes) keeps a
stale value of an earlier run on a long-lived master from being taken. Messages that arrive
before that are buffered.
"""
from __future__ import annotations

import io
import os
import threading
import time

import rosbag
import rospy

from pilotnet_brains import topics

#: Topics recorded by default (the camera is added, throttled, when camera_every > 0).
DEFAULT_TOPICS = (topics.ODOM, topics.CLOCK, topics.CMD_VEL, topics.BRAIN_STATS, topics.LAP_RESULTS,
                  topics.CAMERA_INFO)
#: Messages kept in memory while the run folder is not known yet.
MAX_BUFFERED = 5000


class _Definition:
    """Stands in for a message class: rosbag only needs the definition text of a raw message."""

    def __init__(self, text: str, md5sum: str):
        self._full_text = text
        self._md5sum = md5sum


class BagRecorder:
    """See :func:`main`."""

    def __init__(self, bag_path: str, run_param: str, run_token: str, topic_names, camera_topic: str,
                 camera_every: int, compression: str, wait: float):
        self.lock = threading.Lock()
        self.bag = None
        self.path = bag_path
        self.compression = compression
        self.buffer: list = []
        self.closed = False
        self.camera_every = int(camera_every)
        self.camera_count = 0
        self.count = 0
        self.subs = []
        for name in topic_names:
            self.subs.append(rospy.Subscriber(name, rospy.AnyMsg, self._cb, callback_args=name, queue_size=500))
        if self.camera_every > 0 and camera_topic:
            self.subs.append(rospy.Subscriber(camera_topic, rospy.AnyMsg, self._camera_cb, callback_args=camera_topic,
                                              queue_size=2, buff_size=2 ** 24))
        rospy.on_shutdown(self.close)
        if not self.path:
            threading.Thread(target=self._wait_for_folder, args=(run_param, run_token, wait), daemon=True).start()
        else:
            self._open()

    def _wait_for_folder(self, param: str, token: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not rospy.is_shutdown() and time.monotonic() < deadline:
            run = rospy.get_param(param, {})
            if isinstance(run, dict) and run.get("dir") and str(run.get("token", "")) == token:
                self.path = os.path.join(run["dir"], rospy.get_param("~bag_name", "run.bag"))
                self._open()
                return
            time.sleep(0.05)
        if not rospy.is_shutdown():
            rospy.logerr(f"record_run: {param} with token {token!r} never set (is lap_metrics running?); "
                         f"nothing recorded")

    def _open(self) -> None:
        with self.lock:
            if self.closed:
                return
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.bag = rosbag.Bag(self.path + ".active", "w", compression=self.compression)
            for item in self.buffer:
                self._write(*item)
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
                self.bag.close()
                os.replace(self.path + ".active", self.path)
                print(f"record_run: {self.count} messages in {self.path}", flush=True)


def main() -> None:
    """Record a run to a bag (``scripts/record_run``, node name ``record_run``).

    ~params:
      ~bag (str, default ""): bag path; empty = ``<run folder>/<~bag_name>`` with the run folder read
        from ``~run_param``.
      ~bag_name (str, default run.bag): file name inside the run folder.
      ~run_param (str, default /lap_metrics/run): parameter {dir, token} set by lap_metrics.
      ~run_token (str, default ""): the token that parameter must carry (this launch's).
      ~wait (float wall s, default 60): how long to wait for that parameter.
      ~topics (list of str, default odom, clock, cmd_vel, /brain/stats, /lap_metrics/laps, camera_info).
      ~camera_topic (str, default /F1ROS/cameraL/image_raw), ~camera_every (int, default 10): keep
        every Nth camera frame; 0 = no camera.
      ~compression (str, default lz4): none | lz4 | bz2.
    """
    from pilotnet_brains.cli.helptext import node_help

    node_help(main)   # --help: the ~params, and no node started
    rospy.init_node("record_run")
    topic_names = rospy.get_param("~topics", list(DEFAULT_TOPICS))
    compression = str(rospy.get_param("~compression", "lz4"))
    if compression not in ("none", "lz4", "bz2"):
        rospy.logfatal(f"record_run: ~compression must be none, lz4 or bz2, got {compression!r}")
        raise SystemExit(1)
    BagRecorder(str(rospy.get_param("~bag", "")), str(rospy.get_param("~run_param", "/lap_metrics/run")),
                str(rospy.get_param("~run_token", "")), topic_names, str(rospy.get_param("~camera_topic", topics.CAMERA_IMAGE)),
                int(rospy.get_param("~camera_every", 10)), compression, float(rospy.get_param("~wait", 60.0)))
    rospy.spin()
