"""benchmark_brain: what the brain adds on top of the raw backend, and camera -> command latency.

Per backend, in one run on one machine (warm up by time, then run until a minimum count
and a minimum duration are both met; perf_counter_ns; p50/p90/p99/max without clipping; preloaded
inputs; fixed seeds; threads stated):

- raw: ``backend.predict`` alone on preloaded preprocessed inputs;
- brain: the pure pipeline (:class:`pilotnet_brains.brain.Pipeline.process_image`: decode + preprocess
  + predict + postprocess) on preloaded camera frames;
- node: the brain node's own iteration time (frame pick-up -> command published, from BrainStats)
  and the end-to-end latency, camera publish -> command received, through a private ROS master on
  loopback (this process publishes 640x480 rgb8 frames one at a time and waits for each command);
- the artifact size, the runtime's import time (fresh interpreter) and the node's RSS.

Results: ``results/benchmarks/brain/brain_<time>.json`` (every raw timing) and ``.md`` (the table,
with the machine and versions), written atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from pilotnet_brains import PACKAGE_ROOT, results_root, topics
from pilotnet_brains.backends.registry import benchmark_backends
from pilotnet_brains.cli.helptext import HelpFormatter
from pilotnet_brains.util import atomic_write_text

DEFAULT_BACKENDS = benchmark_backends() + ["explicit"]
RESULTS_DIR = os.path.join(results_root(), "benchmarks", "brain")


# -- measuring --------------------------------------------------------------------------------------

def measure(fn, args_list: list[Any], min_count: int, min_seconds: float, warmup_seconds: float) -> np.ndarray:
    """Call ``fn(args_list[i % n])`` after a timed warm-up until ``min_count`` calls and
    ``min_seconds`` wall seconds are both reached; returns the per-call times in ns."""
    n = len(args_list)
    t_end = time.perf_counter() + warmup_seconds
    i = 0
    while time.perf_counter() < t_end or i < 3:
        fn(args_list[i % n])
        i += 1
    out: list[int] = []
    clock = time.perf_counter_ns
    t_end_ns = clock() + int(min_seconds * 1e9)
    i = 0
    while len(out) < min_count or clock() < t_end_ns:
        a = args_list[i % n]
        t0 = clock()
        fn(a)
        out.append(clock() - t0)
        i += 1
    return np.asarray(out, np.int64)


def measure_interleaved(fn_a, args_a: list[Any], fn_b, args_b: list[Any], min_count: int, min_seconds: float,
                        warmup_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`measure` for two functions called alternately (a, b, a, b...), so both see the
    same machine load; returns (times of a, times of b) in ns, paired by index."""
    na, nb = len(args_a), len(args_b)
    t_end = time.perf_counter() + warmup_seconds
    i = 0
    while time.perf_counter() < t_end or i < 3:
        fn_a(args_a[i % na])
        fn_b(args_b[i % nb])
        i += 1
    ta: list[int] = []
    tb: list[int] = []
    clock = time.perf_counter_ns
    t_end_ns = clock() + int(min_seconds * 1e9)
    i = 0
    while len(ta) < min_count or clock() < t_end_ns:
        a, b = args_a[i % na], args_b[i % nb]
        t0 = clock()
        fn_a(a)
        t1 = clock()
        fn_b(b)
        t2 = clock()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
        i += 1
    return np.asarray(ta, np.int64), np.asarray(tb, np.int64)


def summary_ms(ns) -> dict[str, float]:
    a = np.asarray(ns, np.float64) / 1e6
    if a.size == 0:
        return {}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def synthetic_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Camera-like 640x480 rgb8 frames: sky, asphalt with noise, a red line at varying offsets."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        img = np.empty((480, 640, 3), np.uint8)
        img[:240] = (150, 190, 235)
        img[240:] = np.clip(rng.normal(78, 6, (240, 640, 3)), 0, 255).astype(np.uint8)
        c = 320 + int(rng.integers(-80, 80))
        for r in range(240, 480, 4):
            half = 1 + (r - 240) // 60
            x = int(c + (r - 240) * (i % 5 - 2) * 0.2)
            img[r:r + 4, max(0, x - half):x + half] = (220, 20, 20)
        frames.append(img)
    return frames


def fresh_load(name: str, path: str | None, threads: int) -> dict[str, Any]:
    """Import + load of backend ``name`` in a fresh interpreter: seconds, and peak RSS (MB, VmHWM:
    ru_maxrss would carry this process's peak across exec) after a short warm-up."""
    code = ("import time; t = time.perf_counter()\n"
            "from pilotnet_brains.backends import load_backend\n"
            f"b = load_backend({name!r}, {path!r}, threads={threads})\n"
            "t1 = time.perf_counter(); b.warmup(3)\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
            "print(t1 - t, int(hwm[0].split()[1]) / 1024.0 if hwm else 0.0)")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        secs, rss = out.stdout.strip().splitlines()[-1].split()
        return {"load_seconds_fresh": float(secs), "rss_mb_fresh": float(rss)}
    except Exception:
        return {}


# -- models -------------------------------------------------------------------------------------------

def random_artifacts(names: list[str], folder: str, log) -> dict[str, str]:
    """Random-weight base models + every requested artifact built from them (synthetic calibration)."""
    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import build

    base = save_random_base_models(folder, seed=0)
    paths = {}
    for name in names:
        if name == "explicit":
            continue
        if name == "keras":
            paths[name] = base["tf_keras"]
            continue
        from pilotnet_brains.backends import get_spec

        spec = get_spec(name)
        out = os.path.join(folder, name + spec.suffix)
        parent = base[spec.parent or "tf_keras"]
        try:
            paths[name] = build(name, base=parent, data="synthetic", out=out, progress=False)
        except Exception as e:
            log(f"{name}: cannot build a random-weight artifact: {e}")
    return paths


# -- the pure part ------------------------------------------------------------------------------------

def bench_offline(name: str, path: str | None, threads: int, frames: list[np.ndarray], args) -> dict[str, Any]:
    from pilotnet_brains.brain import Pipeline, make_brain

    row: dict[str, Any] = {"backend": name, "path": path, "threads": threads}
    if name == "explicit":
        policy = make_brain("explicit")
        row["kind"] = "explicit"
    else:
        policy = make_brain("pilotnet", backend=name, model=path or "", threads=threads)
        row["kind"] = "pilotnet"
        d = policy.backend.describe()
        row.update({"runtime": d.get("runtime"), "runtime_version": d.get("runtime_version"),
                    "size_bytes": d.get("size_bytes"), "load_seconds": d.get("load_seconds"),
                    "path": d.get("path")})
        xs = [policy.preprocess(f).copy() for f in frames]
    pipe = Pipeline(policy)
    msgs = [("rgb8", 480, 640, 1920, f.tobytes()) for f in frames]
    run_brain = lambda m: pipe.process_image(*m)  # noqa: E731
    if name == "explicit":
        brain = measure(run_brain, msgs, args.min_count, args.min_seconds, args.warmup_seconds)
    else:
        raw, brain = measure_interleaved(policy.backend.predict, xs, run_brain, msgs, args.min_count,
                                         args.min_seconds, args.warmup_seconds)
        row["raw_ns"] = raw.tolist()
        row["raw"] = summary_ms(raw)
        # per pair: the brain call minus the raw call made just before it, under the same load
        row["overhead"] = summary_ms(brain - raw)
    pre = measure(policy.preprocess, frames, args.min_count, min(args.min_seconds, 1.0), 0.2)
    row["brain_ns"] = brain.tolist()
    row["brain"] = summary_ms(brain)
    row["preprocess"] = summary_ms(pre)
    if "raw" in row:
        row["overhead_ms"] = row["overhead"]["p50"]
    return row


# -- the node, through a real master ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loopback:
    """A private ROS master, this process as camera publisher and command/stats subscriber."""

    def __init__(self):
        import rosgraph
        import roslaunch.parent

        port = _free_port()
        self.uri = f"http://127.0.0.1:{port}/"
        os.environ["ROS_MASTER_URI"] = self.uri
        os.environ.setdefault("ROS_HOSTNAME", "127.0.0.1")
        self.core = roslaunch.parent.ROSLaunchParent("benchmark_brain_core", [], is_core=True, port=port)
        self.core.start()
        deadline = time.monotonic() + 20
        while not rosgraph.Master("/benchmark").is_online():
            if time.monotonic() > deadline:
                raise RuntimeError("the private ROS master did not come up")
            time.sleep(0.1)
        import rospy
        from geometry_msgs.msg import Twist
        from sensor_msgs.msg import Image

        from pilotnet_brains.msg import BrainStats

        rospy.init_node("benchmark_brain", anonymous=True, disable_signals=True)
        self.rospy = rospy
        self.Image = Image
        self.cmd_event = threading.Event()
        self.cmd_t = 0
        self.stats: dict[int, Any] = {}
        self.pub = rospy.Publisher(topics.CAMERA_IMAGE, Image, queue_size=1)
        self.sub = rospy.Subscriber(topics.CMD_VEL, Twist, self._on_cmd, tcp_nodelay=True)
        self.stats_sub = rospy.Subscriber(topics.BRAIN_STATS, BrainStats, self._on_stats)

    def _on_cmd(self, _msg) -> None:
        self.cmd_t = time.perf_counter_ns()
        self.cmd_event.set()

    def _on_stats(self, m) -> None:
        self.stats[m.header.stamp.secs] = m

    def close(self) -> None:
        self.rospy.signal_shutdown("benchmark over")
        self.core.shutdown()

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
            return {"e2e_ns": e2e, "e2e": summary_ms(e2e), "node_iteration": summary_ms(it),
                    "node_inference": summary_ms(inf), "node_own": summary_ms(own),
                    "node_iteration_ns": [int(x) for x in it], "node_rss_mb": rss,
                    "skipped_frames": int(max((s.skipped_frames for s in self.stats.values()), default=0))}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- report ---------------------------------------------------------------------------------------------

def _f(d: dict[str, float] | None, key: str, nd: int = 3) -> str:
    if not d or key not in d:
        return "–"
    return f"{d[key]:.{nd}f}"


def environment(threads: int) -> dict[str, Any]:
    env = {"python": platform.python_version(), "machine": platform.machine(), "cpu": platform.processor(),
           "cores": os.cpu_count(), "threads": threads, "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return env


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"# Brain overhead and end-to-end latency ({result['time']})", "",
             f"Machine: {env.get('cpu')} ({env.get('cores')} cores), Python {env.get('python')}, "
             f"threads {env.get('threads')}. Times in ms; raw = backend.predict alone, brain = the pure "
             f"pipeline (decode + preprocess + predict + postprocess), measured alternately with raw so both "
             f"see the same load; overhead = p50 of (brain - raw) per alternate pair; node = the node's iteration "
             f"(pick-up -> command published, from BrainStats), node infer = its predict call, node own = "
             f"node - node infer per frame (the brain's own work, same process), e2e = camera publish -> command received through a ROS "
             f"master on loopback (one frame in flight).", "",
             "| backend | runtime | size MB | import+load s | raw p50 | raw p99 | brain p50 | brain p99 | "
             "overhead p50 | (raw+overhead)/raw | preprocess p50 | node p50 | node p99 | node infer p50 | node own p50 | e2e p50 | e2e p99 | RSS MB (load) | node RSS MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['backend']} | error: {r['error'][:120]} |" + " |" * 17)
            continue
        raw, brain = r.get("raw"), r.get("brain")
        ratio = f"{1.0 + r['overhead_ms'] / raw['p50']:.2f}" if raw and "overhead_ms" in r else "–"
        size = f"{r['size_bytes'] / 1e6:.2f}" if r.get("size_bytes") else "–"
        imp = f"{r['load_seconds_fresh']:.2f}" if r.get("load_seconds_fresh") is not None else "–"
        over = f"{r['overhead_ms']:.3f}" if "overhead_ms" in r else "–"
        rss = f"{r['node_rss_mb']:.0f}" if r.get("node_rss_mb") else "–"
        rss_fresh = f"{r['rss_mb_fresh']:.0f}" if r.get("rss_mb_fresh") else "–"
        lines.append(f"| {r['backend']} | {r.get('runtime') or '–'} {r.get('runtime_version') or ''} | {size} | "
                     f"{imp} | {_f(raw, 'p50')} | {_f(raw, 'p99')} | {_f(brain, 'p50')} | {_f(brain, 'p99')} | "
                     f"{over} | {ratio} | {_f(r.get('preprocess'), 'p50')} | {_f(r.get('node_iteration'), 'p50')} | "
                     f"{_f(r.get('node_iteration'), 'p99')} | {_f(r.get('node_inference'), 'p50')} | "
                     f"{_f(r.get('node_own'), 'p50')} | {_f(r.get('e2e'), 'p50')} | {_f(r.get('e2e'), 'p99')} | "
                     f"{rss_fresh} | {rss} |")
    lines += ["", "Targets: brain's own work (overhead, node own) p50 <= 0.15 ms; e2e p50 <= 3 ms with tflite_int8.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="benchmark_brain", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("--backends", nargs="+", default=DEFAULT_BACKENDS,
                    help="backend names (and 'explicit' for the classical brain); default: " + " ".join(DEFAULT_BACKENDS))
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="artifact for a backend (repeatable); default: the backend's default artifact")
    ap.add_argument("--random", action="store_true",
                    help="build random-weight artifacts in a temporary folder for backends whose artifact is "
                         "missing (latency does not depend on the weights)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    ap.add_argument("--min-count", type=int, default=500, help="minimum timed calls per measure")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="minimum timed wall seconds per measure")
    ap.add_argument("--warmup-seconds", type=float, default=0.5, help="warm-up wall seconds per measure")
    ap.add_argument("--e2e-count", type=int, default=300, help="frames per backend through the ROS master; 0 = skip")
    ap.add_argument("--e2e-warmup", type=int, default=30, help="untimed frames first")
    ap.add_argument("--frames", type=int, default=8, help="distinct preloaded frames cycled through")
    ap.add_argument("--out", default=RESULTS_DIR, help="results folder (default: %(default)s)")
    args = ap.parse_args(argv)

    import cv2
    from tqdm import tqdm

    cv2.setNumThreads(1)   # as the brain node does: OpenCV's pool fights the runtimes' threads

    from pilotnet_brains.backends import resolve_path

    def log(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    overrides = {}
    for item in args.model:
        if "=" not in item:
            ap.error(f"--model {item!r}: write NAME=PATH")
        k, v = item.split("=", 1)
        overrides[k] = v
    work = tempfile.mkdtemp(prefix="benchmark_brain_")
    paths: dict[str, str | None] = {}
    missing = []
    for name in args.backends:
        if name == "explicit":
            paths[name] = None
            continue
        try:
            p = overrides.get(name) or resolve_path(name)
        except Exception as e:
            ap.error(str(e))
        paths[name] = p
        if not os.path.exists(p):
            missing.append(name)
    if missing:
        if not args.random:
            ap.error(f"no artifact for {missing}: build them (scripts/optimize) or pass --random for "
                     f"random-weight ones")
        log(f"building random-weight artifacts for {missing} in {work}")
        paths.update(random_artifacts(missing, work, log))
    frames = synthetic_frames(args.frames)
    rows: list[dict[str, Any]] = []
    for name in tqdm(args.backends, desc="raw + pipeline"):
        try:
            row = bench_offline(name, paths.get(name), args.threads, frames, args)
            if name != "explicit":
                row.update(fresh_load(name, row.get("path"), args.threads))
        except Exception as e:
            row = {"backend": name, "error": f"{type(e).__name__}: {e}"}
            log(f"{name}: {row['error']}")
        rows.append(row)
    if args.e2e_count > 0:
        loop = Loopback()
        try:
            for row in tqdm(rows, desc="end-to-end"):
                if "error" in row:
                    continue
                try:
                    row.update(loop.run_node(row["backend"], paths.get(row["backend"]), args.threads, frames,
                                             args.e2e_count, args.e2e_warmup, work, tqdm))
                except Exception as e:
                    row["e2e_error"] = str(e)
                    log(f"{row['backend']} end-to-end: {e}")
        finally:
            loop.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {"time": stamp, "environment": environment(args.threads), "args": vars(args), "rows": rows}
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"brain_{stamp}")
    atomic_write_text(base + ".json", json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    atomic_write_text(base + ".md", md)
    print(md)
    print(f"saved {base}.json and {base}.md (node logs and any random-weight artifacts: {work})")
    return 0
