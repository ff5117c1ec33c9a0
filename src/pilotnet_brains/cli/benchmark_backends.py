"""``scripts/benchmark_backends``: raw batch-1 latency, size, import time and memory of every backend,
side by side in one run.

Each backend is measured in a fresh subprocess (so import time and RSS are its own): import its
runtime, load the artifact, warm up for --warmup-seconds, then time ``predict`` on preloaded inputs
with perf_counter_ns until both --min-count calls and --min-seconds are reached. Reported: p50, p90,
p99, max (no clipping), model size, import and load time, RSS, and the max |output - parent model
output| on fixed inputs (speed is never reported without accuracy).

By default the models are random-weight PilotNets (seed 0) built into a temporary folder with every
CPU method (calibrated on synthetic frames); --use-models measures the artifacts under models/
instead. Results: a table on stdout, JSON (with the raw timings) and Markdown under
results/benchmarks/backends/<timestamp>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from pilotnet_brains import results_root
from pilotnet_brains.cli.helptext import HelpFormatter
from pilotnet_brains.reporting import md_table


def _rss_mb() -> dict[str, float]:
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def worker(args: argparse.Namespace) -> int:
    """Measure one backend in this (fresh) process; print one JSON line."""
    import importlib

    import pilotnet_brains.preprocess  # noqa: F401  (numpy + OpenCV: every backend user has them loaded)
    from pilotnet_brains.backends import get_spec, load_backend

    rss0 = _rss_mb().get("VmRSS", 0.0)
    spec = get_spec(args.worker)
    t0 = time.perf_counter()
    from pilotnet_brains.backends.registry import runtime_modules

    for module in runtime_modules(spec):
        importlib.import_module(module)
    importlib.import_module("pilotnet_brains.backends." + spec.impl.split(":")[0])
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend = load_backend(args.worker, path=args.path, threads=args.threads)
    t_load = time.perf_counter() - t0
    rss_loaded = _rss_mb().get("VmRSS", 0.0)
    inputs = np.load(args.inputs)
    outputs = np.concatenate([backend.predict(inputs[i:i + 1]).copy() for i in range(len(inputs))])
    np.save(args.outputs, outputs)
    rng = np.random.default_rng(args.seed)
    pool = np.ascontiguousarray(inputs[rng.integers(0, len(inputs), 64)])
    frames = [pool[i:i + args.batch] for i in range(0, len(pool) - args.batch + 1)] or [pool[:args.batch]]
    predict = backend.predict
    clock = time.perf_counter_ns
    end = clock() + int(args.warmup_seconds * 1e9)
    warm = 0
    while clock() < end or warm < 10:
        predict(frames[warm % len(frames)])
        warm += 1
    times = []
    start = clock()
    min_ns = int(args.min_seconds * 1e9)
    i = 0
    while len(times) < args.min_count or clock() - start < min_ns:
        x = frames[i % len(frames)]
        t = clock()
        predict(x)
        times.append(clock() - t)
        i += 1
    duration = (clock() - start) / 1e9
    rss = _rss_mb()
    t_us = np.asarray(times, np.float64) / 1e3
    d = backend.describe()
    print(json.dumps({
        "backend": args.worker, "runtime": d.get("runtime"), "runtime_version": d.get("runtime_version"),
        "threads": args.threads, "batch": args.batch, "path": d.get("path"), "size_bytes": d.get("size_bytes"),
        "import_s": t_import, "load_s": t_load, "rss_base_mb": rss0, "rss_loaded_mb": rss_loaded,
        "rss_mb": rss.get("VmRSS"), "rss_peak_mb": rss.get("VmHWM"), "warmup_calls": warm,
        "count": len(times), "duration_s": duration,
        "p50_us": float(np.percentile(t_us, 50)), "p90_us": float(np.percentile(t_us, 90)),
        "p99_us": float(np.percentile(t_us, 99)), "max_us": float(t_us.max()), "min_us": float(t_us.min()),
        "mean_us": float(t_us.mean()), "times_us": [round(v, 2) for v in t_us.tolist()],
        "describe": {k: v for k, v in d.items() if isinstance(v, (str, int, float, list, type(None)))}}))
    return 0


def _build_random_models(folder: str, names: list[str]) -> None:
    from pilotnet_brains.backends import BACKENDS
    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import METHODS, build

    base = save_random_base_models(folder, seed=0)
    todo = [n for n in names if n in METHODS]
    try:
        from tqdm import tqdm

        todo_iter = tqdm(todo, desc="building random-weight artifacts", unit="method")
    except ImportError:
        todo_iter = todo
    for name in todo_iter:
        spec = BACKENDS[name]
        build(name, base=base[spec.parent], data="synthetic:100",
              out=os.path.join(folder, "build", name + spec.suffix), progress=False)


def _references(x: np.ndarray, base: dict[str, str]) -> dict[str, np.ndarray]:
    refs = {}
    if os.path.exists(base["tf_keras"]):
        from pilotnet_brains.models import tf_pilotnet

        refs["tf_keras"] = tf_pilotnet.load(base["tf_keras"])(x, training=False).numpy()
    if os.path.exists(base["torch"]):
        import torch

        from pilotnet_brains.models import torch_pilotnet

        with torch.inference_mode():
            refs["torch"] = torch_pilotnet.load(base["torch"])(torch.from_numpy(x)).numpy()
    return refs


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average": list(os.getloadavg())}


def _table(rows: list[dict[str, Any]], md: bool = False) -> str:
    head = ["backend", "runtime", "thr", "p50 ms", "p90 ms", "p99 ms", "max ms", "n", "size MB",
            "import s", "load s", "RSS MB", "max abs err", "tol"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["backend"], "-", "-", "error: " + r["error"][:80]] + [""] * (len(head) - 4))
            continue
        lines.append([r["backend"], f"{r['runtime']} {r['runtime_version']}", str(r["threads"]),
                      f"{r['p50_us'] / 1e3:.3f}", f"{r['p90_us'] / 1e3:.3f}", f"{r['p99_us'] / 1e3:.3f}",
                      f"{r['max_us'] / 1e3:.3f}", str(r["count"]), f"{r['size_bytes'] / 1e6:.2f}",
                      f"{r['import_s']:.2f}", f"{r['load_s']:.2f}", f"{r['rss_mb']:.0f}",
                      "-" if r.get("max_abs_err") is None else f"{r['max_abs_err']:.1e}",
                      "-" if r.get("tolerance") is None else f"{r['tolerance']:.0e}"])
    if md:
        return "\n".join(md_table(head, lines))
    widths = [max(len(head[i]), *(len(line[i]) for line in lines)) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(head)] + [fmt(line) for line in lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark_backends", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("--backends", default="",
                        help="comma-separated backend names (default: every backend this machine can run; "
                             "with random weights the post-training methods, with --use-models every "
                             "artifact present)")
    parser.add_argument("--use-models", action="store_true",
                        help="measure the artifacts under models/ (default: random-weight models built "
                             "into a temporary folder)")
    parser.add_argument("--threads", type=int, default=1, help="runtime intra-op threads (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--min-count", type=int, default=2000, help="minimum timed calls (default 2000)")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="minimum timed duration, s (default 3)")
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="warm-up duration, s (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--out", default=os.path.join(results_root(), "benchmarks", "backends"), help="results folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--outputs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    machine = _machine()   # load average at the start

    from pilotnet_brains.backends import BACKENDS, get_spec
    from pilotnet_brains.models import TF_BASE_NAME, TORCH_BASE_NAME, models_dir
    from pilotnet_brains.optimize import METHODS
    from pilotnet_brains.optimize.calibration import synthetic_frames
    from pilotnet_brains.util import atomic_write_text

    if args.backends:
        names = [n.strip() for n in args.backends.split(",") if n.strip()]
        from pilotnet_brains.backends import BackendError

        for n in names:
            try:
                get_spec(n)
            except BackendError as e:
                print(f"benchmark_backends: {e}", file=sys.stderr)
                return 2
    else:
        # default: what this machine can run; with random weights only the post-training methods
        # (fine-tuned variants need training data: measure them with --use-models or --backends)
        names = [n for n, s in BACKENDS.items() if not s.missing() and (n in METHODS or s.method == "train")
                 and (args.use_models or s.needs != "training")]
        if args.use_models:
            names = [n for n in names if os.path.exists(BACKENDS[n].default_path)]
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        folder = models_dir() if args.use_models else os.path.join(tmp, "models")
        if not args.use_models:
            _build_random_models(folder, names)
        base = {"tf_keras": os.path.join(folder, TF_BASE_NAME), "torch": os.path.join(folder, TORCH_BASE_NAME)}
        x = synthetic_frames(32, seed=args.seed)
        inputs = os.path.join(tmp, "inputs.npy")
        np.save(inputs, x)
        refs = _references(x, base)
        rows = []
        env = dict(os.environ, PILOTNET_MODELS_DIR=folder)
        for name in names:
            spec = BACKENDS[name]
            path = os.path.join(folder, spec.default)
            outputs = os.path.join(tmp, f"{name}.out.npy")
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, "-m", "pilotnet_brains.cli.benchmark_backends", "--worker", name,
                   "--path", path, "--threads", str(args.threads), "--batch", str(args.batch),
                   "--min-count", str(args.min_count), "--min-seconds", str(args.min_seconds),
                   "--warmup-seconds", str(args.warmup_seconds), "--seed", str(args.seed),
                   "--inputs", inputs, "--outputs", outputs]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"backend": name, "error": err})
                continue
            row = json.loads(lines[-1])
            parent = spec.parent or "tf_keras"
            if parent in refs and os.path.exists(outputs):
                row["max_abs_err"] = float(np.abs(np.load(outputs) - refs[parent]).max())
            row["tolerance"] = spec.tolerance
            rows.append(row)
    table = _table(rows)
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    settings = {"threads": args.threads, "batch": args.batch, "min_count": args.min_count,
                "min_seconds": args.min_seconds, "warmup_seconds": args.warmup_seconds, "seed": args.seed,
                "models": "models/ artifacts" if args.use_models else "random-weight PilotNet (seed 0), "
                          "int8 calibrated on 100 synthetic frames"}
    machine["load_average_end"] = list(os.getloadavg())
    if machine["load_average"][0] > (machine["cores"] or 1):
        print(f"warning: load average {machine['load_average'][0]:.1f} on {machine['cores']} cores: other "
              f"processes shared the CPU; tails are not representative", file=sys.stderr)
    result = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine, "settings": settings,
              "conventions": "perf_counter_ns around predict() only; warm-up by time; min count AND min "
                             "duration; percentiles without clipping; preloaded inputs; max abs err = max abs "
                             "difference from the parent base model on 32 synthetic frames (normalized units)",
              "results": rows}
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, f"{stamp}.json")
    mpath = os.path.join(args.out, f"{stamp}.md")
    atomic_write_text(jpath, json.dumps(result, indent=1) + "\n")
    md = [f"# Backend benchmark {result['created']}", "",
          f"Machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
          f"load average at start {machine['load_average'][0]:.2f}."
          + (" **The machine was busy (load > cores): tails and ratios are not representative.**"
             if machine["load_average"][0] > (machine["cores"] or 1) else ""),
          f"Settings: threads {args.threads}, batch {args.batch}, warm-up {args.warmup_seconds} s, then at least "
          f"{args.min_count} calls and {args.min_seconds} s; models: {settings['models']}.",
          "Latency = perf_counter_ns around predict() only (p50/p90/p99/max, no clipping); import = runtime "
          "import in a fresh process that already has numpy and OpenCV (the preprocessing) loaded; RSS after the timed run; max abs err vs the parent base model "
          "(normalized outputs), tol = the method's stated tolerance.", "", _table(rows, md=True), ""]
    atomic_write_text(mpath, "\n".join(md))
    print(f"wrote {jpath} and {mpath}", file=sys.stderr)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
