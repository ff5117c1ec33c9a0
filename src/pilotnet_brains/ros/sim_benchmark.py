"""benchmark_sim: how fast the embedded simulator renders, and how much faster than real time it runs.

1. Render: ms per 640x480 frame (the camera renderer alone, wall clock and the thread's CPU
   time, and a whole ``step_to_next_frame``: 50 physics steps + render) on poses along an expert
   lap; warm-up, then at least ``--frames`` frames and ``--min-time`` s; p50/p90/p99/max, OpenCV
   threads and load average stated.
2. Lockstep in the core (no ROS): expert lap with the camera in the loop; sim s / wall s.
3. Lockstep through ROS: a private master, launch/include/sim.launch in lockstep mode, and an
   expert driver node in this process answering each camera frame (deserializing the image and
   using the odometry stamped like it); sim s / wall s over the run. This is the speed-up a brain
   as fast as the expert would see.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import threading
import time

import cv2
import numpy as np

from pilotnet_brains import package_root
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.cli.helptext import HelpFormatter
from pilotnet_brains.expert import PurePursuitExpert
from pilotnet_brains.sim import Simulator
from pilotnet_brains.util import atomic_write_text


def _pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": int(len(a)), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def expert_poses(circuit, n: int) -> list[tuple]:
    """n poses along an expert lap (20 Hz), wrapping to the start."""
    sim = Simulator(circuit)
    expert = PurePursuitExpert(circuit)
    poses = []
    while len(poses) < n:
        sim.set_command(*expert(sim.pose))
        sim.advance_to(sim.next_frame_ns)
        sim.frame_index += 1
        poses.append(sim.pose)
        if sim.time > 400:
            sim.reset()
    return poses


def bench_render(name: str, frames: int, min_time: float) -> dict[str, object]:
    c = load_circuit(name)
    sim = Simulator(c)
    poses = expert_poses(c, 2000)
    out = np.empty((480, 640, 3), np.uint8)
    for p in poses[:50]:  # warm-up
        sim.renderer.render(p, out=out)
    render_ms, cpu_ms, i, t_end = [], [], 0, time.perf_counter() + min_time
    while len(render_ms) < frames or time.perf_counter() < t_end:
        p = poses[i % len(poses)]
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        sim.renderer.render(p, out=out)
        render_ms.append((time.perf_counter_ns() - t0) / 1e6)
        cpu_ms.append((time.thread_time_ns() - c0) / 1e6)
        i += 1
    # Whole frame step (physics at 1 kHz + render) with the expert driving.
    expert = PurePursuitExpert(c)
    sim.reset()
    step_ms, t_end = [], time.perf_counter() + min_time
    wall0 = time.perf_counter()
    while len(step_ms) < frames or time.perf_counter() < t_end:
        sim.set_command(*expert(sim.pose))
        t0 = time.perf_counter_ns()
        sim.step_to_next_frame(out)
        step_ms.append((time.perf_counter_ns() - t0) / 1e6)
    wall = time.perf_counter() - wall0
    return {"circuit": name, "render_ms": _pct(render_ms), "render_cpu_ms": _pct(cpu_ms), "step_ms": _pct(step_ms),
            "core_lockstep_speedup": sim.time / wall}


def bench_ros_lockstep(name: str, sim_seconds: float) -> dict[str, object]:
    """Lockstep through ROS with an in-process expert driver; returns sim/wall speed-up."""
    import rosgraph
    import roslaunch.parent
    import roslaunch.rlutil
    import rospy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from pilotnet_brains import topics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["ROS_MASTER_URI"] = f"http://127.0.0.1:{port}/"
    os.environ.setdefault("ROS_LOG_DIR", os.path.join(package_root(), ".build", "ros_log"))
    core = roslaunch.parent.ROSLaunchParent("bench_core", [], is_core=True, port=port)
    core.start()
    launch = None
    try:
        while not rosgraph.Master("/bench").is_online():
            time.sleep(0.1)
        rospy.init_node("benchmark_sim_driver", anonymous=True, disable_signals=True)
        c = load_circuit(name)
        expert = PurePursuitExpert(c)
        cond = threading.Condition()
        odom: dict[int, tuple] = {}
        frames: list[tuple] = []
        pub = rospy.Publisher(topics.CMD_VEL, Twist, queue_size=10, tcp_nodelay=True)

        def on_odom(m):
            q = m.pose.pose.orientation
            with cond:
                odom[m.header.stamp.to_nsec()] = (m.pose.pose.position.x, m.pose.pose.position.y,
                                                  2.0 * np.arctan2(q.z, q.w))
                cond.notify_all()

        def on_image(m):
            t = m.header.stamp.to_nsec()
            np.frombuffer(m.data, np.uint8).reshape(m.height, m.width, 3)  # what a brain would do first
            with cond:
                if not cond.wait_for(lambda: t in odom, timeout=2.0):
                    return
                pose = odom.pop(t)
                frames.append((time.perf_counter(), t))
                cond.notify_all()
            v, w = expert(pose)
            cmd = Twist()
            cmd.linear.x, cmd.angular.z = v, w
            pub.publish(cmd)

        subs = [rospy.Subscriber(topics.ODOM, Odometry, on_odom, queue_size=100, tcp_nodelay=True),
                rospy.Subscriber(topics.CAMERA_IMAGE, Image, on_image, queue_size=1, buff_size=2 ** 24,
                                 tcp_nodelay=True)]
        uuid = roslaunch.rlutil.get_or_generate_uuid(None, False)
        path = os.path.join(package_root(), "launch", "include", "sim.launch")
        launch = roslaunch.parent.ROSLaunchParent(uuid, [(path, [f"circuit:={name}", "mode:=lockstep"])],
                                                  is_core=False)
        launch.start()
        n = int(round(sim_seconds * 20))
        with cond:
            if not cond.wait_for(lambda: len(frames) >= n + 10, timeout=600):
                raise RuntimeError(f"lockstep run got {len(frames)} of {n + 10} frames in 600 s")
            sel = frames[10:n + 10]   # skip connection start-up
        wall = sel[-1][0] - sel[0][0]
        sim_s = (sel[-1][1] - sel[0][1]) * 1e-9
        for s_ in subs:
            s_.unregister()
        return {"circuit": name, "sim_s": sim_s, "wall_s": wall, "ros_lockstep_speedup": sim_s / wall}
    finally:
        if launch is not None:
            launch.shutdown()
        try:
            import rospy

            rospy.signal_shutdown("benchmark done")
        except Exception:  # noqa: BLE001
            pass
        core.shutdown()


def main() -> None:
    """benchmark_sim: render ms/frame (p50/p99) and lockstep speed-up over real time (see module doc)."""
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="benchmark_sim",
        description="Benchmark the embedded F1 simulator: camera render ms/frame (p50/p90/p99/max) per "
                    "evaluation circuit, the whole frame step, the lockstep speed-up over real time in the "
                    "core and through ROS (private master, f1_sim in lockstep, an expert driver answering "
                    "every frame). Prints a Markdown table; --json writes the raw figures.")
    ap.add_argument("--circuits", nargs="*", default=list(EVALUATION_CIRCUITS), help="circuits (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=1000, help="minimum frames per measurement (default: %(default)s)")
    ap.add_argument("--min-time", type=float, default=2.0, help="minimum seconds per measurement (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (default: %(default)s: one core)")
    ap.add_argument("--ros-seconds", type=float, default=30.0,
                    help="sim seconds of the ROS lockstep run, 0 = skip it (default: %(default)s)")
    ap.add_argument("--json", default="", help="write the figures to this JSON file")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    env = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
           "numpy": np.__version__, "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads(),
           "cores": os.cpu_count(), "loadavg": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    results = {"environment": env, "render": [], "ros": []}
    from tqdm import tqdm

    for name in tqdm(args.circuits, desc="render", unit="circuit"):
        results["render"].append(bench_render(name, args.frames, args.min_time))
    if args.ros_seconds > 0:
        results["ros"].append(bench_ros_lockstep(args.circuits[0], args.ros_seconds))
    print(f"\nEmbedded simulator, {env['cpu']}, OpenCV {env['opencv']} with {env['opencv_threads']} thread(s)\n")
    print("| circuit | render ms p50 | p90 | p99 | max | render CPU ms p50 | p99 | frame step ms p50 | p99 "
          "| core lockstep x real time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results["render"]:
        a, c, b = r["render_ms"], r["render_cpu_ms"], r["step_ms"]
        print(f"| {r['circuit']} | {a['p50']:.2f} | {a['p90']:.2f} | {a['p99']:.2f} | {a['max']:.2f} | "
              f"{c['p50']:.2f} | {c['p99']:.2f} | {b['p50']:.2f} | {b['p99']:.2f} | "
              f"{r['core_lockstep_speedup']:.1f} |")
    print(f"\n(wall clock and this thread's CPU time; load average at start {env['loadavg'][0]:.1f} on "
          f"{env['cores']} cores: on a busy machine the wall-clock tail is other processes' time)")
    for r in results["ros"]:
        print(f"\nROS lockstep ({r['circuit']}, expert driver in the benchmark process, answering every frame): {r['sim_s']:.1f} sim s in "
              f"{r['wall_s']:.1f} wall s = x{r['ros_lockstep_speedup']:.1f} real time")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
