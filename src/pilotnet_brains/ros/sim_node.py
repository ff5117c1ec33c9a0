"""The f1_sim node: the embedded simulator behind the Gazebo F1 ROS interface.

Publishes the camera (+ camera_info) and odometry at their rates in sim time and /clock; holds
the last cmd_vel like Gazebo's planar-move plugin; serves the four /gazebo/* std_srvs/Empty
services. Two time modes:

- ``realtime``: sim time is paced to the wall clock x ``rtf`` (rtf > 1 runs faster than real
  time), /clock at ``clock_rate``. A command is applied at the sim time corresponding to its
  arrival (1 physics step precision), like a simulator that runs on its own.
- ``lockstep``: after each camera frame the simulator waits (wall clock, at most
  ``lockstep_timeout`` s) for a cmd_vel received after that frame, applies it at the frame's
  time and only then advances. Runs are then independent of machine load: same seed and same
  brain give a bit-identical trajectory, as fast as the brain answers. The simulator runs from
  one frame to the next without waiting for anything, so /clock is published only at the frame and
  odometry instants (the stamps other nodes receive), not at ``clock_rate``.

Unlike Gazebo's reset_simulation, resets never rewind /clock (a clock jumping backwards breaks
other nodes' timers); both reset services put the car at the start pose and zero the command.
"""
from __future__ import annotations

import copy
import io
import math
import os
import struct
import threading
import time
import warnings

import cv2
import numpy as np
import rospy
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Empty, EmptyResponse

from pilotnet_brains import topics
from pilotnet_brains.circuits import CircuitError, load_circuit
from pilotnet_brains.params import SimParams, read_params, ros_params
from pilotnet_brains.preflight import check_start_s
from pilotnet_brains.ros import startup
from pilotnet_brains.sim import CameraConfig, SimConfig, Simulator, render_top_view
from pilotnet_brains.util import atomic_write_bytes


def _stamp(t_ns: int) -> rospy.Time:
    return rospy.Time(int(t_ns // 1_000_000_000), int(t_ns % 1_000_000_000))


class _FrameImage(Image):
    """An Image whose ``data`` may be a C-contiguous uint8 numpy frame, serialized straight from
    its buffer (a plain Image needs ``bytes``: a ``tobytes()`` copy, then another in ``struct.pack``)."""

    def serialize(self, buff) -> None:
        frame, self.data = self.data, b""
        try:
            super().serialize(buff)   # ends with the empty data's 4-byte length
        finally:
            self.data = frame
        buff.seek(-4, io.SEEK_CUR)
        view = memoryview(frame).cast("B")
        buff.write(struct.pack("<I", view.nbytes))
        buff.write(view)


class SimNode:
    """ROS glue around :class:`pilotnet_brains.sim.Simulator`, run as ``params`` say (the ones
    about the simulator itself are in ``sim``'s config)."""

    def __init__(self, sim: Simulator, params: SimParams):
        params.check()
        self.sim = sim
        self.mode = params.mode
        self.rtf = params.rtf
        self.lockstep_timeout = params.lockstep_timeout
        self.lockstep_startup_timeout = params.lockstep_startup_timeout
        self.wait_for_odom_subscriber = params.wait_for_odom_subscriber
        self.odom_period_ns = int(round(1e9 / params.odom_rate))
        # realtime: /clock at its rate; lockstep: None, at the frame and odometry instants only
        self.clock_period_ns = int(round(1e9 / params.clock_rate)) if self.mode == "realtime" else None
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.paused = False
        self._pending: list[tuple[int, float, float]] = []   # realtime: (apply at ns, v, w)
        self._cmd_seq = 0
        self._latest_cmd = (0.0, 0.0)
        self._anchor_wall = time.monotonic()
        self._anchor_sim = sim.time_ns
        self.lockstep_timeouts = 0
        self.frames = 0
        self._trail: list[tuple[float, float]] = []
        self.headless = params.headless
        if not self.headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # OpenCV's Qt backend aborts the whole process without a display: refuse politely instead.
            rospy.logwarn("f1_sim: headless:=false but no DISPLAY: running headless (no viewer window)")
            self.headless = True
        self.topdown_png = os.path.expanduser(params.topdown_png)
        self.topdown_period = params.topdown_period
        self._next_view = 0.0
        self._map = None
        self._map_scale = None

        cam = sim.config.camera
        self._frame = np.empty((cam.height, cam.width, 3), np.uint8)
        self._image = _FrameImage(height=cam.height, width=cam.width, encoding="rgb8", is_bigendian=0, step=cam.width * 3)
        self._image.header.frame_id = params.camera_frame
        self._image.data = self._frame   # lockstep: rendered into in place, serialized from it
        k = cam.intrinsics()
        self._info = CameraInfo(height=cam.height, width=cam.width, distortion_model="plumb_bob",
                                D=[0.0] * 5, K=k.ravel().tolist(), R=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                                P=[k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0])
        self._info.header.frame_id = params.camera_frame
        self._odom = Odometry()
        self._odom.header.frame_id = topics.ODOM_FRAME
        self._odom.child_frame_id = topics.BASE_FRAME
        # The covariances Gazebo's planar-move plugin publishes (x, y exact; z, roll, pitch unknown).
        cov = [0.0] * 36
        cov[0], cov[7], cov[14], cov[21], cov[28], cov[35] = 1e-5, 1e-5, 1e12, 1e12, 1e12, 1e-3
        self._odom.pose.covariance = cov

        # lockstep: every publisher writes synchronously (queue_size=None): no hand-off to a queue
        # thread per message, and a lagging metrics node slows the run instead of losing samples
        sync = self._sync = self.mode == "lockstep"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)   # rospy warns about queue_size=None
            self.clock_pub = rospy.Publisher(topics.CLOCK, Clock, queue_size=None if sync else 10)
            self.image_pub = rospy.Publisher(topics.CAMERA_IMAGE, Image, queue_size=None if sync else 2)
            self.info_pub = rospy.Publisher(topics.CAMERA_INFO, CameraInfo, queue_size=None if sync else 2)
            self.odom_pub = rospy.Publisher(topics.ODOM, Odometry, queue_size=None if sync else 10)
        self.cmd_sub = rospy.Subscriber(topics.CMD_VEL, Twist, self._on_cmd, queue_size=10, tcp_nodelay=True)
        self.services = [
            rospy.Service(topics.RESET_WORLD, Empty, self._on_reset),
            rospy.Service(topics.RESET_SIMULATION, Empty, self._on_reset),
            rospy.Service(topics.PAUSE_PHYSICS, Empty, self._on_pause),
            rospy.Service(topics.UNPAUSE_PHYSICS, Empty, self._on_unpause),
        ]

    # ------------------------------------------------------------------ callbacks
    def _on_cmd(self, msg: Twist) -> None:
        v, w = float(msg.linear.x), float(msg.angular.z)
        if not (math.isfinite(v) and math.isfinite(w)):
            rospy.logwarn_throttle(5.0, f"f1_sim: ignoring a non-finite command (v={v}, w={w})")
            return
        with self.cond:
            self._latest_cmd = (v, w)
            self._cmd_seq += 1
            if self.mode == "realtime":
                if self.paused:
                    self.sim.set_command(v, w)
                else:
                    est = self._anchor_sim + int((time.monotonic() - self._anchor_wall) * self.rtf * 1e9)
                    step = self.sim.physics_step_ns
                    self._pending.append((-(-max(est, self.sim.time_ns) // step) * step, v, w))
            self.cond.notify_all()

    def _on_reset(self, _req) -> EmptyResponse:
        with self.cond:
            self.sim.reset(keep_time=True)
            self._pending.clear()
            self._latest_cmd = (0.0, 0.0)
            self._trail.clear()
            self.cond.notify_all()
        rospy.loginfo("f1_sim: reset: car at the start pose, command zeroed")
        return EmptyResponse()

    def _on_pause(self, _req) -> EmptyResponse:
        with self.cond:
            self.paused = True
            self.cond.notify_all()
        return EmptyResponse()

    def _on_unpause(self, _req) -> EmptyResponse:
        with self.cond:
            self.paused = False
            self._reanchor()
            self.cond.notify_all()
        return EmptyResponse()

    def _reanchor(self) -> None:
        self._anchor_wall = time.monotonic()
        self._anchor_sim = self.sim.time_ns

    # ------------------------------------------------------------------ publishing
    def _publish_clock(self, t_ns: int) -> None:
        self.clock_pub.publish(Clock(clock=_stamp(t_ns)))

    def _publish_odom(self, t_ns: int) -> None:
        x, y, yaw = self.sim.pose
        v, w = self.sim.command
        o = self._odom
        o.header.stamp = _stamp(t_ns)
        o.pose.pose.position.x, o.pose.pose.position.y, o.pose.pose.position.z = x, y, 0.0
        o.pose.pose.orientation.z, o.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        o.twist.twist.linear.x, o.twist.twist.angular.z = v, w
        self.odom_pub.publish(o)
        self._trail.append((x, y))
        if len(self._trail) > 20000:
            del self._trail[:10000]

    def _publish_frame(self) -> None:
        self.sim.take_frame(self._frame)
        stamp = _stamp(self.sim.time_ns)
        image = self._image
        if not self._sync:
            # realtime: the publisher's queue thread serializes later, while the next frame may be
            # rendered into the buffer: the message carries a copy of its own
            image = Image(header=copy.copy(image.header), height=image.height, width=image.width,
                          encoding=image.encoding, is_bigendian=0, step=image.step, data=self._frame.tobytes())
        image.header.stamp = stamp
        self.image_pub.publish(image)
        self._info.header.stamp = stamp
        self.info_pub.publish(self._info)
        self.frames += 1

    def _advance_and_publish(self, t_ns: int) -> None:
        """Advance to t_ns (applying queued realtime commands on the way) and publish what is due."""
        sim = self.sim
        if self._pending:
            self._pending.sort(key=lambda c: c[0])
            while self._pending and self._pending[0][0] <= t_ns:
                t_cmd, v, w = self._pending.pop(0)
                sim.advance_to(max(t_cmd, sim.time_ns))
                sim.set_command(v, w)
        sim.advance_to(t_ns)
        if self.clock_period_ns is None or t_ns % self.clock_period_ns == 0:
            self._publish_clock(t_ns)
        if t_ns % self.odom_period_ns == 0:
            self._publish_odom(t_ns)
        if t_ns == sim.next_frame_ns:
            self._publish_frame()

    def _next_event_ns(self) -> int:
        t = self.sim.time_ns
        nxt = [self.sim.next_frame_ns]
        for period in (self.clock_period_ns, self.odom_period_ns):
            if period is None:
                continue
            nxt.append((t // period + 1) * period)
        return min(nxt)

    # ------------------------------------------------------------------ loops
    def run(self) -> None:
        with self.cond:
            self._publish_clock(self.sim.time_ns)
            self._publish_odom(self.sim.time_ns)
        if self.mode == "lockstep":
            self._wait_for_subscriber()
        with self.cond:
            self._reanchor()
        while not rospy.is_shutdown():
            if self.mode == "realtime":
                self._realtime_step()
            else:
                self._lockstep_step()
            self._maybe_view()

    def _wait_for_subscriber(self) -> None:
        """Lockstep: hold sim time at 0 until something subscribes to the camera and publishes
        commands (the brain), so its first command is not lost to a connection still being made."""
        deadline = time.monotonic() + self.lockstep_startup_timeout
        while not rospy.is_shutdown() and (self.image_pub.get_num_connections() == 0
                                           or self.cmd_sub.get_num_connections() == 0):
            if time.monotonic() > deadline:
                rospy.logwarn(f"f1_sim: lockstep: no brain connected after {self.lockstep_startup_timeout} s; "
                              f"starting anyway")
                return
            rospy.loginfo_throttle(10.0, "f1_sim: lockstep: waiting for the brain (a camera subscriber and a cmd_vel publisher)")
            time.sleep(0.02)
        # then (when asked) for the lap metrics' odometry and camera_info subscriptions, so no sample
        # of the run is lost to a connection still being made (lockstep runs measure identically)
        deadline = time.monotonic() + self.wait_for_odom_subscriber
        while not rospy.is_shutdown() and time.monotonic() < deadline and (
                self.odom_pub.get_num_connections() == 0 or self.info_pub.get_num_connections() == 0):
            time.sleep(0.02)

    def _realtime_step(self) -> None:
        with self.cond:
            while self.paused and not rospy.is_shutdown():
                self.cond.wait(0.1)
            t_next = self._next_event_ns()
            wall_due = self._anchor_wall + (t_next - self._anchor_sim) * 1e-9 / self.rtf
        delay = wall_due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.25:
            # Cannot keep up with rtf: stop accumulating debt (the achieved rtf is lower).
            with self.cond:
                self._reanchor()
        with self.cond:
            if not self.paused and self.sim.time_ns < t_next:
                self._advance_and_publish(t_next)

    def _lockstep_step(self) -> None:
        with self.cond:
            while self.paused and not rospy.is_shutdown():
                self.cond.wait(0.1)
            frame_due = self.sim.next_frame_ns
            while self.sim.time_ns < frame_due:
                self._advance_and_publish(self._next_event_ns())
            seq = self._cmd_seq
            deadline = time.monotonic() + self.lockstep_timeout
            while self._cmd_seq == seq and not rospy.is_shutdown():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.lockstep_timeouts += 1
                    rospy.logwarn_throttle(
                        5.0, f"f1_sim: lockstep: no cmd_vel within {self.lockstep_timeout} s of frame "
                             f"{self.sim.frame_index}; holding the last command ({self.lockstep_timeouts} timeouts)")
                    break
                self.cond.wait(remaining)
            self.sim.set_command(*self._latest_cmd)

    # ------------------------------------------------------------------ viewer / PNG
    def _maybe_view(self) -> None:
        if self.headless and not self.topdown_png:
            return
        now = time.monotonic()
        if now < self._next_view:
            return
        self._next_view = now + (0.1 if not self.headless else self.topdown_period)
        img = self.top_view()
        if self.topdown_png:
            ok, buf = cv2.imencode(".png", img[:, :, ::-1])
            if ok:
                atomic_write_bytes(self.topdown_png, buf.tobytes())
        if not self.headless:
            try:
                cv2.imshow("f1_sim", img[:, :, ::-1])
                cv2.waitKey(1)
            except cv2.error as e:
                rospy.logwarn(f"f1_sim: no viewer window ({e}); continuing headless")
                self.headless = True

    def top_view(self) -> np.ndarray:
        """Top-down RGB picture of the circuit with the car's trail and pose."""
        c = self.sim.circuit
        if self._map is None:
            x0, y0, x1, y1 = c.bounds(margin=c.road_width)
            self._map_scale = float(min(2.0, 1200.0 / max(x1 - x0, y1 - y0)))
            self._map = render_top_view(c, self._map_scale, start_pose=False)
        return render_top_view(c, self._map_scale, start_pose=False, trajectory=np.asarray(self._trail[-4000:]) if self._trail
                               else None, car_pose=self.sim.pose, base=self._map)


def main() -> None:
    """f1_sim: the embedded F1 simulator node."""
    from pilotnet_brains.helptext import node_help

    node_help(main, SimParams)   # --help: the ~params, and no node started
    startup.keep_large_buffers_on_the_heap()
    startup.init_node("f1_sim")
    try:
        params = read_params(SimParams(), ros_params)
        cv2.setNumThreads(params.render_threads)
        circuit = load_circuit(params.circuit, reverse=params.reverse)
        height = {} if params.camera_height == "" else {"mount_height": float(params.camera_height)}
        camera = CameraConfig.for_circuit(circuit, mount_forward=params.camera_forward,
                                          mount_left=params.camera_left, **height)
        config = SimConfig(camera=camera, physics_rate=params.physics_rate, camera_rate=params.camera_rate,
                           seed=params.seed, variation=params.variation, noise_std=params.noise_std)
        start_pose = None
        check_start_s(circuit, params.start_s)
        if params.start_s >= 0:   # a point on the centerline, heading along the (possibly reversed) lap
            s = params.start_s
            start_pose = (*(float(v) for v in circuit.point_at(s)[0]), float(circuit.heading_at(s)[0]))
        sim = Simulator(circuit, config, start_pose=start_pose)
        node = SimNode(sim, params)
    except (CircuitError, ValueError) as e:
        startup.refuse(f"f1_sim: {e}", 2)
    startup.started()
    rospy.loginfo(f"f1_sim: {circuit!r}, mode {node.mode}" + (f", rtf {node.rtf}" if node.mode == "realtime" else "")
                  + f", start pose {sim.start_pose}")
    try:
        node.run()
    except rospy.ROSInterruptException:
        pass
