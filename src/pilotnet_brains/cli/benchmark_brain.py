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
- the artifact size, the runtime's import time (fresh interpreter) and the node's RSS;
- what this machine charges a sender for waking an idle process on another core (and on the same
  one): the node pays it on every command's publish (:mod:`pilotnet_brains.wakeup`).

Results: ``results/benchmarks/brain/brain_<time>.json`` (every raw timing) and ``.md`` (the table,
with the machine and versions), written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import numpy as np

from pilotnet_brains import hostinfo, results_root, timing
from pilotnet_brains.backends.registry import benchmark_backends
from pilotnet_brains.helptext import HelpFormatter
from pilotnet_brains.reporting import md_table, save_result

DEFAULT_BACKENDS = benchmark_backends() + ["explicit"]
RESULTS_DIR = os.path.join(results_root(), "benchmarks", "brain")


# -- inputs -------------------------------------------------------------------------------------------

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
        brain = timing.measure(run_brain, msgs, args.min_count, args.min_seconds, args.warmup_seconds)
    else:
        raw, brain = timing.measure_alternating([policy.predict, run_brain], [xs, msgs], args.min_count,
                                         args.min_seconds, args.warmup_seconds)
        row["raw_ns"] = raw.tolist()
        row["raw"] = timing.summary(raw, "ms")
        # per pair: the brain call minus the raw call made just before it, under the same load
        row["overhead"] = timing.summary(brain - raw, "ms")
    pre = timing.measure(policy.preprocess, frames, args.min_count, min(args.min_seconds, 1.0), 0.2)
    row["brain_ns"] = brain.tolist()
    row["brain"] = timing.summary(brain, "ms")
    row["preprocess"] = timing.summary(pre, "ms")
    if "raw" in row:
        row["overhead_ms"] = row["overhead"]["p50"]
    return row


# -- report ---------------------------------------------------------------------------------------------

def _f(d: dict[str, float] | None, key: str, nd: int = 3) -> str:
    if not d or key not in d:
        return "–"
    return f"{d[key]:.{nd}f}"


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"# Brain overhead and end-to-end latency ({result['time']})", "",
             f"Machine: {hostinfo.text(env, libraries=False)}; "
             f"threads {env.get('threads')}. Times in ms; raw = backend.predict alone, brain = the pure "
             f"pipeline (decode + preprocess + predict + postprocess), measured alternately with raw so both "
             f"see the same load; overhead = p50 of (brain - raw) per alternate pair; node = the node's iteration "
             f"(pick-up -> command published, from BrainStats), node infer = its predict call, node own = "
             f"node - node infer per frame (the brain's own work, same process), e2e = camera publish -> command received through a ROS "
             f"master on loopback (one frame in flight).", ""]
    head = ("backend", "runtime", "size MB", "import+load s", "raw p50", "raw p99", "brain p50", "brain p99",
            "overhead p50", "(raw+overhead)/raw", "preprocess p50", "node p50", "node p99", "node infer p50",
            "node own p50", "e2e p50", "e2e p99", "RSS MB (load)", "node RSS MB")
    cells = []
    for r in result["rows"]:
        if "error" in r:
            cells.append([r["backend"], f"error: {r['error'][:120]}"] + [""] * (len(head) - 2))
            continue
        raw, brain = r.get("raw"), r.get("brain")
        ratio = f"{1.0 + r['overhead_ms'] / raw['p50']:.2f}" if raw and "overhead_ms" in r else "–"
        size = f"{r['size_bytes'] / 1e6:.2f}" if r.get("size_bytes") else "–"
        fresh = r.get("fresh") or {}
        imp = f"{fresh['import_s'] + fresh['load_s']:.2f}" if fresh else "–"
        over = f"{r['overhead_ms']:.3f}" if "overhead_ms" in r else "–"
        rss = f"{r['node_rss_mb']:.0f}" if r.get("node_rss_mb") else "–"
        rss_fresh = f"{fresh['rss_peak_mb']:.0f}" if fresh else "–"
        cells.append([r["backend"], f"{r.get('runtime') or '–'} {r.get('runtime_version') or ''}", size, imp,
                      _f(raw, "p50"), _f(raw, "p99"), _f(brain, "p50"), _f(brain, "p99"), over, ratio,
                      _f(r.get("preprocess"), "p50"), _f(r.get("node_iteration"), "p50"),
                      _f(r.get("node_iteration"), "p99"), _f(r.get("node_inference"), "p50"),
                      _f(r.get("node_own"), "p50"), _f(r.get("e2e"), "p50"), _f(r.get("e2e"), "p99"), rss_fresh, rss])
    lines += md_table(head, cells)
    lines += ["", "Targets: brain's own work (overhead, node own) p50 <= 0.15 ms; e2e p50 <= 3 ms with tflite_int8.", ""]
    if result.get("wake_up"):
        from pilotnet_brains import wakeup

        lines += [f"Machine: {wakeup.text(result['wake_up'])}. The node's own work includes one such send per "
                  f"frame: its command's publish wakes the command's subscriber (the simulator in a run, this "
                  f"benchmark here).", ""]
    if result.get("receiver_policy"):
        lines += [f"The command's receiver ran {result['receiver_policy']}"
                  + (" (--receiver-batch): it could not preempt the brain inside its send()." if
                     result["receiver_policy"] == "SCHED_BATCH" else
                     ": Linux may run it on the brain's core inside the brain's send(), and the node's own work "
                     "then includes part of the receiver's (--receiver-batch measures without)."), ""]
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
    timing.add_arguments(ap, min_count=500, min_seconds=2.0, warmup_seconds=0.5)
    ap.add_argument("--e2e-count", type=int, default=300, help="frames per backend through the ROS master; 0 = skip")
    ap.add_argument("--e2e-warmup", type=int, default=30, help="untimed frames first")
    ap.add_argument("--frames", type=int, default=8, help="distinct preloaded frames cycled through")
    ap.add_argument("--wake-count", type=int, default=1000,
                    help="sends timed per placement (peer on the same core / on another core) for the machine's "
                         "wake-up cost; 0 = skip")
    ap.add_argument("--receiver-batch", action="store_true",
                    help="the thread receiving the commands runs SCHED_BATCH, so Linux does not run it inside "
                         "the brain's send() (a socket send's synchronous wake-up may run the woken receiver on "
                         "the sender's core first, and the node's own work then includes the receiver's); "
                         "camera -> command may grow")
    ap.add_argument("--out", default=RESULTS_DIR, help="results folder (default: %(default)s)")
    args = ap.parse_args(argv)

    import cv2
    from tqdm import tqdm

    cv2.setNumThreads(1)   # as the brain node does: OpenCV's pool fights the runtimes' threads

    from pilotnet_brains.backends import resolve_path
    from pilotnet_brains.backends.registry import model_overrides
    from pilotnet_brains.evaluate import fresh_load, random_artifacts

    env = hostinfo.describe(args.threads)   # the load average at the start

    def log(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    try:
        overrides = model_overrides(args.model)
    except ValueError as e:
        ap.error(str(e))
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
                row["fresh"] = fresh_load(name, row.get("path"), args.threads)
        except Exception as e:
            row = {"backend": name, "error": f"{type(e).__name__}: {e}"}
            log(f"{name}: {row['error']}")
        rows.append(row)
    receiver = None
    if args.e2e_count > 0:
        from pilotnet_brains.ros.brain_loopback import Loopback
        from pilotnet_brains.ros.master import private_master

        with private_master("benchmark_brain"):
            loop = Loopback(receiver_batch=args.receiver_batch)
            for row in tqdm(rows, desc="end-to-end"):
                if "error" in row:
                    continue
                try:
                    row.update(loop.run_node(row["backend"], paths.get(row["backend"]), args.threads, frames,
                                             args.e2e_count, args.e2e_warmup, work, tqdm))
                except Exception as e:
                    row["e2e_error"] = str(e)
                    log(f"{row['backend']} end-to-end: {e}")
            loop.close()
            receiver = {os.SCHED_BATCH: "SCHED_BATCH", os.SCHED_OTHER: "SCHED_OTHER"}.get(loop.receiver_policy)
    wake = None
    if args.wake_count > 0:
        from pilotnet_brains import wakeup

        log("timing the machine's wake-up cost (a send that wakes an idle process)")
        wake = wakeup.measure(args.wake_count)
    result = {"environment": env, "args": vars(args), "rows": rows, "wake_up": wake,
              "receiver_policy": receiver}
    base, md = save_result(args.out, "brain", result, markdown)
    print(md)
    print(f"saved {base}.json and {base}.md (node logs and any random-weight artifacts: {work})")
    return 0
