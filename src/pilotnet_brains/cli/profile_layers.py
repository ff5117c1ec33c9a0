"""profile_layers: where a backend's batch-1 call spends its time, layer by layer.

The runtime's own profiler (ONNX Runtime's session profile, OpenVINO's PERF_COUNT; native_int8 times
its steps inside its kernels) reports every node it executes; each artifact is loaded as the brain loads it (same threads and settings) plus
profiling, warmed up, then called --count times on one preloaded frame. Per node: the p50 in µs,
its share of the nodes' sum, and for the convolutions and dense layers their multiply-adds (from
PilotNet's layer plan) and GMAC/s. The call's own p50 with profiling on is printed beside the sum:
the difference is the time outside the nodes (the call, input and output handling, the profiler).
Profiling slows a call a little; compare nodes with each other, and whole calls with
``scripts/benchmark_backends``.

Results: a table per backend on stdout; JSON (every per-call time) and Markdown in
``results/benchmarks/layers/layers_<time>.{json,md}``, written atomically.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Any

import numpy as np

from pilotnet_brains import hostinfo, results_root, timing
from pilotnet_brains.helptext import HelpFormatter
from pilotnet_brains.reporting import md_table, save_result

RESULTS_DIR = os.path.join(results_root(), "benchmarks", "layers")
#: Node kinds that compute a convolution or a dense layer (ONNX op types such as Conv, QLinearConv,
#: FusedGemm, QGemm; OpenVINO node types such as Convolution, FullyConnected...), not Convert.
COMPUTE_KINDS = re.compile(r"^(\w*Conv(?!ert)\w*|\w*Gemm\w*|\w*MatMul\w*|FullyConnected\w*)( |$)")
#: The PilotNet layer a node belongs to, from the names the exports give them (/conv1/Conv, /fc1/Gemm).
LAYER_NAME = re.compile(r"(?:^|[/_.])(conv\d|fc\d|outputs)(?:[/_.]|$)")


def layer_of(name: str, kind: str) -> str | None:
    """The PilotNet layer (conv1..conv5, fc1..fc4, outputs) a node computes, None for other nodes."""
    m = LAYER_NAME.search(name)
    return m.group(1) if m and COMPUTE_KINDS.match(kind) else None


def profile(name: str, path: str, threads: int, count: int, warmup: int, frame: np.ndarray) -> dict[str, Any]:
    from pilotnet_brains.backends import load_backend
    from pilotnet_brains.models import layer_macs

    clock = time.perf_counter_ns
    plain = load_backend(name, path, threads)       # the call as the brain makes it, no profiler
    try:
        calls = timing.measure(plain.predict, [frame], min_count=count, min_seconds=0.0, warmup_seconds=0.5)
    finally:
        plain.close()
    backend = load_backend(name, path, threads, profile=True)
    try:
        profiled = []
        for i in range(warmup + count):
            t0 = clock()
            backend.predict(frame)
            if i >= warmup:
                profiled.append(clock() - t0)
            backend.profile_step()
        nodes = backend.layer_times(skip=warmup)
        info = backend.describe()
    finally:
        backend.close()
    macs = dict(layer_macs())
    rows, seen = [], set()
    for node, kind, times in nodes:
        if not times:
            continue
        p50 = float(np.percentile(times, 50))
        layer = layer_of(node, kind)
        row = {"node": node, "kind": kind, "layer": layer, "p50_us": p50, "us": times}
        if layer in macs and layer not in seen:      # a layer's multiply-adds count once
            seen.add(layer)
            row["macs"] = macs[layer]
            row["gmacs"] = macs[layer] / (p50 * 1e-6) / 1e9 if p50 > 0 else None
        rows.append(row)
    total = sum(r["p50_us"] for r in rows)
    for r in rows:
        r["share"] = r["p50_us"] / total if total else 0.0
    return {"backend": name, "path": path, "runtime": f"{info['runtime']} {info['runtime_version']}",
            "threads": threads, "call": timing.summary(calls, "us"), "profiled_call": timing.summary(profiled, "us"),
            "nodes_sum_us": total, "nodes": rows,
            "layers_found": sorted(seen)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Per-layer times ({result['time']})", "",
             f"Machine: {hostinfo.text(result['environment'], libraries=False)}; threads {result['threads']}; "
             f"{result['count']} profiled batch-1 calls after {result['warmup']} warm-up calls, one preloaded "
             f"frame. p50 per node in µs as the runtime's profiler reports it; GMAC/s = the layer's "
             f"multiply-adds (PilotNet's layer plan) / its p50.", ""]
    for r in result["rows"]:
        lines += [f"## {r['backend']} ({r['runtime']})", ""]
        if "error" in r:
            lines += [f"error: {r['error']}", ""]
            continue
        cells = [[n["node"], n["kind"], f"{n['p50_us']:.1f}", f"{100 * n['share']:.1f}",
                  f"{n['macs'] / 1e6:.2f}" if "macs" in n else "", f"{n['gmacs']:.0f}" if n.get("gmacs") else ""]
                 for n in r["nodes"]]
        lines += md_table(("node", "kind", "p50 µs", "% of nodes", "M MACs", "GMAC/s"), cells)
        outside = r["call"]["p50"] - r["nodes_sum_us"]
        where = (f"{outside:.1f} µs outside the nodes, if profiling did not slow them" if outside >= 0 else
                 f"profiling slowed the nodes: their sum exceeds the plain call by {-outside:.1f} µs")
        lines += ["", f"Nodes' p50s add up to {r['nodes_sum_us']:.1f} µs; the call's p50 is {r['call']['p50']:.1f} µs "
                      f"without the profiler ({where}) and {r['profiled_call']['p50']:.1f} µs with it.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="profile_layers", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("backends", nargs="+", help="backend names whose runtime has a per-node profiler "
                                                 "(onnx_*, openvino_*)")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="artifact for a backend (repeatable); default: the backend's default artifact")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1, as the brain)")
    ap.add_argument("--count", type=int, default=2000, help="profiled calls per backend")
    ap.add_argument("--warmup", type=int, default=200, help="calls first, left out of the figures")
    ap.add_argument("--seed", type=int, default=0, help="seed of the frame (timing does not depend on it)")
    ap.add_argument("--out", default=RESULTS_DIR, help="results folder (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.count < 1 or args.warmup < 0:
        ap.error("--count must be >= 1 and --warmup >= 0")

    from pilotnet_brains.backends import BACKENDS, resolve_path
    from pilotnet_brains.backends.registry import model_overrides
    from pilotnet_brains.models import INPUT_SHAPE

    try:
        overrides = model_overrides(args.model)
    except ValueError as e:
        ap.error(str(e))
    unknown = [n for n in args.backends if n not in BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {sorted(BACKENDS)}")
    frame = np.random.default_rng(args.seed).random((1,) + INPUT_SHAPE, dtype=np.float32)
    env = hostinfo.describe(args.threads)
    rows = []
    for name in args.backends:
        path = resolve_path(name, overrides.get(name))
        try:
            rows.append(profile(name, path, args.threads, args.count, args.warmup, frame))
        except Exception as e:       # a backend that cannot be profiled or loaded: say so, go on
            rows.append({"backend": name, "path": path, "runtime": BACKENDS[name].runtime,
                         "error": f"{type(e).__name__}: {e}"})
            print(f"profile_layers: {name}: {rows[-1]['error']}", file=sys.stderr)
    result = {"environment": env, "threads": args.threads, "count": args.count, "warmup": args.warmup, "rows": rows}
    base, md = save_result(args.out, "layers", result, markdown)
    print(md)
    print(f"saved {base}.json and {base}.md")
    return 0 if all("error" not in r for r in rows) else 1
