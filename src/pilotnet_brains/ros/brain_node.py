"""The brain node: camera frames in, drive commands and per-iteration stats out (thin ROS glue).

The camera callback only hands the newest frame to a worker thread through a slot of one (a frame
replaced before the worker took it is counted as skipped); the worker runs the
:class:`pilotnet_brains.brain.Pipeline` and publishes the command, then the stats. The watchdog
lives in the worker too and runs on the wall clock, so a simulator that stops (and with it
``/clock``) still gets its car stopped.
"""
from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import cv2
import rospy
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Image

from pilotnet_brains import topics
from pilotnet_brains.brain import BRAINS, BrainStartError, Pipeline, make_brain
from pilotnet_brains.msg import BrainStats
from pilotnet_brains.params import BrainParams, read_params, ros_params
from pilotnet_brains.ros import startup

#: rospy's read size for camera frames (a 640x480 rgb8 frame is 0.9 MB; a larger one takes more
#: reads). Kept below glibc's mmap threshold as the node sets it
#: (:func:`~pilotnet_brains.ros.startup.keep_large_buffers_on_the_heap`), each read's buffer is reused
#: from the heap instead of being mapped and faulted in afresh: with 16 MB reads, receiving and
#: deserializing a frame took 590 us of CPU, with 1 MB reads on the heap 310 us.
CAMERA_BUFF_SIZE = 2 ** 20


class FrameSlot:
    """A queue of one that keeps only the newest item and counts the ones it dropped."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._item: Any = None
        self.skipped = 0
        self.closed = False

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.skipped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float) -> Any:
        """The newest item, or None after ``timeout`` wall seconds (or when closed)."""
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class BrainNode:
    """Subscribes the camera, publishes Twist commands and BrainStats. See :func:`main`."""

    def __init__(self, pipeline: Pipeline, params: BrainParams):
        self.pipeline = pipeline
        self.watchdog_timeout = params.watchdog_timeout
        self.slot = FrameSlot()
        # The command is published synchronously (queue_size=None): written to the socket on the
        # worker thread instead of handed to rospy's queue thread (0.09 vs 0.19 ms p50 measured here);
        # a 48-byte Twist never fills a socket buffer, so the write cannot block the worker.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)   # rospy warns about queue_size=None
            self.cmd_pub = rospy.Publisher(topics.CMD_VEL, Twist, queue_size=None, tcp_nodelay=True)
            # Stats too: a queue would drop them when the metrics node lags; a ~200-byte write does not block.
            self.stats_pub = rospy.Publisher(topics.BRAIN_STATS, BrainStats, queue_size=None)
        self._cmd = Twist()
        self._stats = BrainStats(backend=pipeline.label)
        self._last_start: float | None = None
        self._last_good = time.monotonic()
        # Armed by the first usable frame: before it the brain has commanded nothing to stop.
        self._stopped_by_watchdog = True
        self._worker = threading.Thread(target=self._run, name="brain_worker", daemon=True)
        self._worker.start()
        if params.wait_for_stats_subscriber > 0:
            # Subscribe the camera only once the metrics node listens to the stats: a lockstep
            # simulator (which waits for this subscription) then cannot run frames whose stats are lost,
            # so a run starts at the same frame every time.
            deadline = time.monotonic() + params.wait_for_stats_subscriber
            while self.stats_pub.get_num_connections() == 0 and time.monotonic() < deadline \
                    and not rospy.is_shutdown():
                time.sleep(0.01)
        # queue_size=None: rospy hands every frame it reads to the slot, which counts the ones the
        # worker had no time for (a bounded queue would drop them unseen, uncounted).
        self.sub = rospy.Subscriber(topics.CAMERA_IMAGE, Image, self.slot.put, queue_size=None,
                                    buff_size=CAMERA_BUFF_SIZE, tcp_nodelay=True)
        rospy.on_shutdown(self.slot.close)

    # -- worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        poll = max(0.01, min(0.1, self.watchdog_timeout / 4)) if self.watchdog_timeout > 0 else 0.1
        while not rospy.is_shutdown() and not self.slot.closed:
            msg = self.slot.take(poll)
            if msg is None:
                if self._watchdog():
                    self._publish_cmd(0.0, 0.0)
                continue
            try:
                self._handle(msg)
            except Exception as e:  # never let one frame kill the worker
                if rospy.is_shutdown():   # the launch is ending: publishers are already closed
                    break
                rospy.logerr_throttle(5.0, f"brain: frame failed: {type(e).__name__}: {e}")

    def _watchdog(self) -> bool:
        """True (once per stall, after logging it and forgetting the held command) when no usable
        frame came for ``watchdog_timeout`` wall seconds: the caller then publishes the stop (0, 0).
        Unusable frames (bad frames, failed inference) do not feed the watchdog."""
        if self.watchdog_timeout <= 0 or self._stopped_by_watchdog:
            return False
        idle = time.monotonic() - self._last_good
        if idle <= self.watchdog_timeout:
            return False
        self._stopped_by_watchdog = True
        self.pipeline.stop()
        rospy.logwarn(f"brain: no usable camera frame on {self.sub.resolved_name} for "
                      f"{idle:.1f} s (watchdog_timeout {self.watchdog_timeout} s): commanded a stop")
        return True

    def _publish_cmd(self, v: float, w: float) -> None:
        self._cmd.linear.x = v
        self._cmd.angular.z = w
        self.cmd_pub.publish(self._cmd)

    def _handle(self, msg: Image) -> None:
        start = time.perf_counter()
        step = self.pipeline.process_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        if not step.ok and self._watchdog():
            step.v = step.w = 0.0
        self._publish_cmd(step.v, step.w)   # an unusable frame holds the last command (lockstep sims wait for one)
        done = time.perf_counter()
        if step.status == "bad_frame":
            rospy.logwarn_throttle(5.0, f"brain: bad camera frame ({self.pipeline.bad_frames} so far): {step.error}")
            return
        if step.status == "bad_output":
            rospy.logwarn_throttle(5.0, f"brain: {step.error} ({self.pipeline.bad_outputs} so far); "
                                        f"commanded ({step.v}, {step.w})")
        else:
            self._last_good = time.monotonic()
            if self._stopped_by_watchdog:
                if self.pipeline.iterations > 1:
                    rospy.loginfo("brain: camera frames are back; driving again")
                self._stopped_by_watchdog = False
        s = self._stats
        s.header.stamp = msg.header.stamp
        s.header.frame_id = msg.header.frame_id
        s.iteration = self.pipeline.iterations
        s.preprocess_time = step.preprocess_time
        s.inference_time = step.inference_time
        s.iteration_time = done - start
        s.period = 0.0 if self._last_start is None else start - self._last_start
        s.skipped_frames = self.slot.skipped
        s.bad_frames = self.pipeline.bad_frames
        s.bad_outputs = self.pipeline.bad_outputs
        s.v = step.v
        s.w = step.w
        self._last_start = start
        self.stats_pub.publish(s)


def main(default_brain: str = BrainParams.brain) -> None:
    """Run a brain node (``brains/pilotnet_brain``, ``brains/explicit_brain``).

    Subscribes ``/F1ROS/cameraL/image_raw`` (sensor_msgs/Image; remap it), publishes
    ``/F1ROS/cmd_vel`` (geometry_msgs/Twist: linear.x = v m/s, angular.z = w rad/s) and
    ``/brain/stats`` (pilotnet_brains/BrainStats, one per processed frame).

    Exits non-zero with one message naming the brain, backend, path and what to do when the brain
    cannot start (missing/corrupt model, runtime not installed, GPU backend without a GPU).
    """
    from pilotnet_brains.helptext import node_help

    defaults = BrainParams(brain=default_brain)
    node_help(main, defaults)   # --help: the ~params, and no node started
    startup.keep_large_buffers_on_the_heap()   # the camera frames it receives
    startup.init_node("brain")
    # OpenCV's thread pool costs more to wake (~0.5 ms after an idle frame period) than the tiny
    # crop/resize/colour conversions of a frame take on one core.
    cv2.setNumThreads(1)
    try:
        params = read_params(defaults, ros_params)
        if params.brain not in BRAINS:
            raise BrainStartError(f"unknown brain {params.brain!r} (~brain); choose one of {sorted(BRAINS)}")
        policy = make_brain(params.brain, **params.brain_kwargs())
    except (BrainStartError, ValueError) as e:
        startup.refuse(str(e))
    width, height = params.image_width, params.image_height
    pipeline = Pipeline(policy, expected_size=(width, height) if width > 0 and height > 0 else None,
                        stop_on_bad_output=params.stop_on_bad_output)
    BrainNode(pipeline, params)
    startup.started()
    rospy.loginfo(f"brain: {params.brain} ({pipeline.label}) ready on {topics.CAMERA_IMAGE} -> {topics.CMD_VEL}")
    rospy.spin()
