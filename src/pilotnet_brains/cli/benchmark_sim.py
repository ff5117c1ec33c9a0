"""``scripts/benchmark_sim``: how fast the embedded simulator renders, and how much faster than real time it runs.

1. Render: ms per 640x480 frame (the camera renderer alone, wall clock and the thread's CPU
   time, and a whole ``step_to_next_frame``: 50 physics steps + render) on poses along an expert
   lap; warm-up, then at least ``--frames`` frames and ``--min-time`` s; p50/p90/p99/max, OpenCV
   threads and load average stated.
2. Lockstep in the core (no ROS): expert lap with the camera in the loop; sim s / wall s.
3. Lockstep through ROS (:mod:`pilotnet_brains.ros.sim_benchmark`): a private master, launch/include/sim.launch in lockstep mode, and an
   expert driver node in this process answering each camera frame (deserializing the image and
   using the odometry stamped like it); sim s / wall s and frames per wall s over the run. This is
   the speed-up a brain as fast as the expert would see. The CPU ms per frame of the simulator
   process and of the driver say what the loop costs, less swayed by other jobs than wall time.
"""
from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from pilotnet_brains import hostinfo
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.expert import PurePursuitExpert
from pilotnet_brains.helptext import HelpFormatter
from pilotnet_brains.sim import Simulator
from pilotnet_brains.timing import summary
from pilotnet_brains.util import atomic_write_text


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
    """Render and whole-frame-step times (ms) on ``name`` and the core's lockstep speed-up (item 1-2
    of the module doc)."""
    c = load_circuit(name)
    sim = Simulator(c)
    poses = expert_poses(c, 2000)
    out = np.empty((480, 640, 3), np.uint8)
    for p in poses[:50]:  # warm-up
        sim.renderer.render(p, out=out)
    render_ns, cpu_ns, i, t_end = [], [], 0, time.perf_counter() + min_time
    while len(render_ns) < frames or time.perf_counter() < t_end:
        p = poses[i % len(poses)]
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        sim.renderer.render(p, out=out)
        render_ns.append(time.perf_counter_ns() - t0)
        cpu_ns.append(time.thread_time_ns() - c0)
        i += 1
    # Whole frame step (physics at 1 kHz + render) with the expert driving.
    expert = PurePursuitExpert(c)
    sim.reset()
    step_ns, t_end = [], time.perf_counter() + min_time
    wall0 = time.perf_counter()
    while len(step_ns) < frames or time.perf_counter() < t_end:
        sim.set_command(*expert(sim.pose))
        t0 = time.perf_counter_ns()
        sim.step_to_next_frame(out)
        step_ns.append(time.perf_counter_ns() - t0)
    wall = time.perf_counter() - wall0
    return {"circuit": name, "render_ms": summary(render_ns, "ms"), "render_cpu_ms": summary(cpu_ns, "ms"),
            "step_ms": summary(step_ns, "ms"), "core_lockstep_speedup": sim.time / wall}


def main(argv: list[str] | None = None) -> None:
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
    args = ap.parse_args(argv)
    cv2.setNumThreads(args.threads)
    env = hostinfo.describe(args.threads)
    opencv = {"version": cv2.__version__, "threads": cv2.getNumThreads()}
    results = {"environment": env, "opencv": opencv, "render": [], "ros": []}
    from tqdm import tqdm

    for name in tqdm(args.circuits, desc="render", unit="circuit"):
        results["render"].append(bench_render(name, args.frames, args.min_time))
    if args.ros_seconds > 0:
        from pilotnet_brains.ros.sim_benchmark import bench_ros_lockstep

        results["ros"].append(bench_ros_lockstep(args.circuits[0], args.ros_seconds))
    print(f"\nEmbedded simulator, {env['cpu']}, OpenCV {opencv['version']} with {opencv['threads']} thread(s)\n")
    print("| circuit | render ms p50 | p90 | p99 | max | render CPU ms p50 | p99 | frame step ms p50 | p99 "
          "| core lockstep x real time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results["render"]:
        a, c, b = r["render_ms"], r["render_cpu_ms"], r["step_ms"]
        print(f"| {r['circuit']} | {a['p50']:.2f} | {a['p90']:.2f} | {a['p99']:.2f} | {a['max']:.2f} | "
              f"{c['p50']:.2f} | {c['p99']:.2f} | {b['p50']:.2f} | {b['p99']:.2f} | "
              f"{r['core_lockstep_speedup']:.1f} |")
    print(f"\n(wall clock and this thread's CPU time; load average at start {env['load_average'][0]:.1f} on "
          f"{env['cpu_count']} cores: on a busy machine the wall-clock tail is other processes' time)")
    for r in results["ros"]:
        print(f"\nROS lockstep ({r['circuit']}, expert driver in the benchmark process, answering every frame): {r['sim_s']:.1f} sim s in "
              f"{r['wall_s']:.1f} wall s = x{r['ros_lockstep_speedup']:.1f} real time, {r['frames_per_s']:.0f} frames/s; "
              f"CPU per frame: f1_sim {r['sim_cpu_ms_per_frame']:.2f} ms, driver {r['driver_cpu_ms_per_frame']:.2f} ms")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
