"""The live view node (``scripts/live_view``): thin ROS glue around :mod:`pilotnet_brains.liveview`.

Callbacks keep the newest camera frame, command, pose and lap count; a wall-clock thread composes
the view at ``~rate`` Hz, shows it in a window and publishes it on ``~debug_image`` (when something
subscribes), so it keeps up however fast the simulator runs.
"""
from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np
import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image

from pilotnet_brains import topics
from pilotnet_brains.circuits import CircuitError, load_circuit
from pilotnet_brains.liveview import PANEL_HEIGHT, Telemetry, compose
from pilotnet_brains.msg import BrainStats, LapResult
from pilotnet_brains.params import LiveViewParams, read_params, ros_params
from pilotnet_brains.ros import startup
from pilotnet_brains.sim import render_top_view

WINDOW = "pilotnet_brains live view"


class LiveViewNode:
    def __init__(self, circuit, rate: float, window: bool, trail: int = 4000):
        self.circuit = circuit
        self.period = 1.0 / max(0.5, float(rate))
        self.window = window
        self.lock = threading.Lock()
        self.frame: np.ndarray | None = None
        self.t = Telemetry()
        self.s0: float | None = None
        self.trail: list[tuple[float, float]] = []
        self.max_trail = int(trail)
        self.pose = None
        x0, y0, x1, y1 = circuit.bounds(margin=circuit.road_width)
        self.scale = float(min(1200.0 / (x1 - x0), (480 + PANEL_HEIGHT) / (y1 - y0)))
        self.base = render_top_view(circuit, self.scale, start_pose=False)
        self.pub = rospy.Publisher("~debug_image", Image, queue_size=1)
        rospy.Subscriber(topics.CAMERA_IMAGE, Image, self.on_image, queue_size=1, buff_size=2 ** 24)
        rospy.Subscriber(topics.CMD_VEL, Twist, self.on_cmd, queue_size=10)
        rospy.Subscriber(topics.ODOM, Odometry, self.on_odom, queue_size=10)
        rospy.Subscriber(topics.BRAIN_STATS, BrainStats, self.on_stats, queue_size=10)
        rospy.Subscriber(topics.LAP_RESULTS, LapResult, self.on_lap, queue_size=10)
        self.frames_shown = 0
        self.thread = threading.Thread(target=self._loop, name="live_view", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ callbacks
    def on_image(self, msg: Image) -> None:
        if msg.encoding != "rgb8" or msg.step != msg.width * 3:
            rospy.logwarn_throttle(10.0, f"live_view: camera encoding {msg.encoding!r}: only rgb8 is shown")
            return
        frame = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        with self.lock:
            self.frame = frame

    def on_cmd(self, msg: Twist) -> None:
        with self.lock:
            self.t.v, self.t.w = float(msg.linear.x), float(msg.angular.z)

    def on_odom(self, msg: Odometry) -> None:
        p, q, tw = msg.pose.pose.position, msg.pose.pose.orientation, msg.twist.twist
        yaw = 2.0 * np.arctan2(q.z, q.w)
        s, lateral = self.circuit.project([[p.x, p.y]])
        with self.lock:
            if self.s0 is None:
                self.s0 = float(s[0])
            self.t.progress = float(((s[0] - self.s0) % self.circuit.length) / self.circuit.length)
            self.t.deviation = float(lateral[0])
            self.t.speed = float(np.hypot(tw.linear.x, tw.linear.y))
            self.t.sim_time = msg.header.stamp.to_sec()
            self.pose = (p.x, p.y, float(yaw))
            self.trail.append((p.x, p.y))
            if len(self.trail) > 2 * self.max_trail:
                del self.trail[:self.max_trail]

    def on_stats(self, msg: BrainStats) -> None:
        with self.lock:
            self.t.brain = msg.backend

    def on_lap(self, msg: LapResult) -> None:
        with self.lock:
            self.t.lap = int(msg.lap) + 1

    # ------------------------------------------------------------------ the view
    def view(self) -> np.ndarray:
        with self.lock:
            frame, pose = self.frame, self.pose
            trail = np.asarray(self.trail[-self.max_trail:]) if len(self.trail) > 1 else None
            t = Telemetry(**vars(self.t))
        top = render_top_view(self.circuit, self.scale, start_pose=False, trajectory=trail, car_pose=pose,
                              base=self.base)
        return compose(frame, top, t)

    def _loop(self) -> None:
        msg = Image(encoding="rgb8", is_bigendian=0)
        while not rospy.is_shutdown():
            start = time.monotonic()
            if self.window or self.pub.get_num_connections() > 0:
                img = self.view()
                if self.pub.get_num_connections() > 0:
                    msg.header.stamp = rospy.Time.now()
                    msg.height, msg.width = img.shape[:2]
                    msg.step = img.shape[1] * 3
                    msg.data = img.tobytes()
                    try:
                        self.pub.publish(msg)
                    except rospy.ROSException:
                        break
                if self.window:
                    self._show(img)
                self.frames_shown += 1
            time.sleep(max(0.0, self.period - (time.monotonic() - start)))
        if self.window:
            cv2.destroyAllWindows()

    def _show(self, img: np.ndarray) -> None:
        try:
            if not self.frames_shown:   # the picture alone: no toolbar (Qt), the window sized to it
                cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
            cv2.imshow(WINDOW, img[:, :, ::-1])
            cv2.waitKey(1)
        except cv2.error as e:
            rospy.logwarn(f"live_view: no window ({e}); still publishing ~debug_image")
            self.window = False


def main() -> None:
    """The live view (scripts/live_view, node name live_view): one window with the camera as the
    brain sees it (the PilotNet crop outlined, the network input), the command (v, w), lap progress,
    speed and deviation, beside the top-down map with the car's trail; the same picture is published
    on ~debug_image (sensor_msgs/Image rgb8) for any ROS image viewer (rqt_image_view).

    Subscribes /F1ROS/cameraL/image_raw, /F1ROS/cmd_vel, /F1ROS/odom, /brain/stats, /lap_metrics/laps.
    """
    from pilotnet_brains.helptext import node_help

    node_help(main, LiveViewParams)   # --help: the ~params, and no node started
    startup.init_node("live_view")
    cv2.setNumThreads(1)
    try:
        params = read_params(LiveViewParams(), ros_params)
        circuit = load_circuit(params.circuit, reverse=params.reverse)
    except (CircuitError, ValueError) as e:
        rospy.logfatal(f"live_view: {e}")
        raise SystemExit(2) from None
    window = params.window
    if window and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        rospy.logwarn("live_view: no DISPLAY: no window; the view is on ~debug_image")
        window = False
    LiveViewNode(circuit, rate=params.rate, window=window)
    startup.started()
    rospy.loginfo(f"live_view: {circuit.name}" + (", window open" if window else "")
                  + f"; picture on {rospy.resolve_name('~debug_image')}")
    rospy.spin()
