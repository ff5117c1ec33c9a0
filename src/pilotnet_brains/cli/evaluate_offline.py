"""``scripts/evaluate_offline``: the offline table of every PilotNet artifact on a test set.

Examples:
    scripts/evaluate_offline --test ~/datasets/dls/test                  # every artifact under models/
    scripts/evaluate_offline --models /tmp/models --test DIR --batch 64
    scripts/evaluate_offline tflite_int8 models/build/torch_static.pt --test DIR --threads 2

For each artifact (backend names use their default path under --models; paths get their backend from
their sidecar): size and gzip size, sparsity (pruned methods), MSE per evaluation circuit and overall
(normalized) and v/w RMSE (m/s, rad/s), max |Δ| vs the parent base model, batch-1 latency p50/p99 and
batch-N throughput, timed side by side: all models loaded in this process and measured round-robin
(--rounds), so every one sees the same machine load. Backends this machine cannot run
(TF-TRT, TensorRT) or that are not built are listed as skipped with the reason.

Output: results/offline/<run-id>/ with offline.csv (one row per artifact and circuit + overall),
offline.json (everything, raw timings included), offline.md (the table) and scatter.png / bars.png.
The folder appears complete or not at all. Paths inside the package are written relative to it.

Speed mode (--speed, what scripts/benchmark_backends runs): no test set and no accuracy; the same
round-robin timing on synthetic frames, plus each backend's import time, load time and RSS in a
fresh interpreter and the max |output - parent output|. Default artifacts: every backend this
machine can run that is built (with --random: built with random weights in a temporary folder,
the fine-tuned methods left out, they need training data). Output: results/benchmarks/backends/
<run-id>/ with speed.json (raw timings included) and speed.md; the table on stdout.

--pick-default (with --test): the default backend for this machine, the fastest artifact whose MSE
is within 5 % of its fp32 parent's: the evaluated artifacts ranked by their side-by-side batch-1
p50, written to default.md next to the offline table and printed. The launch files' default
(tflite_int8, which runs everywhere) is left as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from pilotnet_brains import timing
from pilotnet_brains.helptext import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate_offline", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("artifacts", nargs="*", metavar="NAME_OR_PATH",
                        help="backend names and/or model paths (default: every backend of the table)")
    parser.add_argument("--test", metavar="DIR",
                        help="test set (required unless --speed): DeepLearningStudio layout, one run folder per "
                             "evaluation circuit, folder names starting with the circuit name (simple_circuit_1, "
                             "montreal, ...)")
    parser.add_argument("--speed", action="store_true",
                        help="speed mode: synthetic frames instead of a test set, no accuracy; adds import/load "
                             "time and RSS in a fresh interpreter")
    parser.add_argument("--pick-default", action="store_true",
                        help="rank the artifacts by batch-1 p50 and pick the fastest within 5%% MSE of its fp32 "
                             "parent (needs --test); writes default.md")
    parser.add_argument("--random", action="store_true",
                        help="with --speed: random-weight artifacts built in a temporary folder instead of "
                             "--models")
    parser.add_argument("--models", metavar="DIR", help="models folder holding the base models and build/ "
                                                        "(default: the package's models/)")
    parser.add_argument("--out-dir", help="results root (default: results/offline, with --speed "
                                          "results/benchmarks/backends)")
    parser.add_argument("--run-id", help="sub-folder name (default: the current time, YYYYmmdd-HHMMSS)")
    timing.add_arguments(parser, min_count=200, min_seconds=2.0, warmup_seconds=0.5)
    parser.add_argument("--batch", type=int, default=32, help="throughput batch size N (default 32)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="round-robin timing rounds: every model gets its share of the runs in each "
                             "round, so all see the same machine load (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the timed inputs and synthetic frames (default 0)")
    parser.add_argument("--max-frames", type=int, default=0, help="subsample the test set (0 = all frames)")
    parser.add_argument("--cache-dir", help="folder for the preprocessed test-set cache (.npy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.threads < 1 or args.min_count < 1:
        parser.error("--batch, --threads and --min-count must be >= 1")
    if not args.speed and not args.test:
        parser.error("--test DIR is required (or --speed)")
    if args.random and not args.speed:
        parser.error("--random needs --speed (accuracy from random weights says nothing)")
    if args.pick_default and (args.speed or not args.test):
        parser.error("--pick-default needs --test DIR (the accuracy budget) and no --speed")
    if args.models and not os.path.isdir(args.models):
        print(f"evaluate_offline: models folder {args.models} does not exist", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="evaluate_offline_") as tmp:
        return _run(args, argv, tmp)


def _speed_selection(args, tmp: str) -> tuple[list[str], str | None]:
    """(backend names or paths, models folder) of a speed run; random-weight artifacts built in ``tmp``."""
    from pilotnet_brains import evaluate as ev
    from pilotnet_brains.backends.registry import BACKENDS, get_spec

    names = list(args.artifacts) or [n for n, s in BACKENDS.items()
                                     if not s.missing() and (not args.random or s.needs != "training")]
    if not args.random:
        return names, os.path.abspath(args.models) if args.models else None
    for name in names:
        get_spec(name)   # BackendError naming the valid backends
    folder = os.path.join(tmp, "models")
    print(f"building random-weight artifacts for {', '.join(names)}", file=sys.stderr, flush=True)
    ev.random_artifacts(names, folder, log=lambda m: print(m, file=sys.stderr))
    return names, folder


def _run(args, argv: list[str] | None, tmp: str) -> int:
    from tqdm import tqdm

    from pilotnet_brains import evaluate as ev
    from pilotnet_brains import hostinfo, results_root
    from pilotnet_brains.backends.base import BackendError
    from pilotnet_brains.backends.registry import BACKENDS
    from pilotnet_brains.util import atomic_write_text

    env = hostinfo.describe(args.threads)   # the load average at the start
    try:
        if args.speed:
            selection, models = _speed_selection(args, tmp)
            test = ev.synthetic_test_set(32, seed=args.seed)
        else:
            selection, models = args.artifacts, os.path.abspath(args.models) if args.models else None
            test = ev.load_test_set(args.test, max_frames=args.max_frames, progress=not args.quiet,
                                    cache_dir=args.cache_dir)
        arts = ev.discover(selection, models)
    except (ev.EvaluationError, BackendError, ValueError) as e:
        print(f"evaluate_offline: {e}", file=sys.stderr)
        return 2
    settings = ev.Settings(threads=args.threads, batch=args.batch, min_count=args.min_count,
                           min_seconds=args.min_seconds, warmup_seconds=args.warmup_seconds, seed=args.seed,
                           rounds=args.rounds)
    todo = [a for a in arts if not a.skip]
    skipped = [{"method": a.name, "path": ev.shown_path(a.path), "reason": a.skip} for a in arts if a.skip]
    rows, parents = [], {}
    bar = tqdm(todo, desc="outputs" if args.speed else "accuracy", unit="model", disable=args.quiet, file=sys.stderr)
    for art in bar:
        bar.set_postfix_str(art.name)
        try:
            row = ev.evaluate_artifact(art, test, settings, parents, models, keep_open=True)
        except BackendError as e:
            skipped.append({"method": art.name, "path": ev.shown_path(art.path), "reason": f"cannot load: {e}"})
            continue
        if args.speed:
            row["tolerance"] = BACKENDS[art.name].tolerance
            row["fresh"] = ev.fresh_load(art.name, art.path, args.threads, models)
        rows.append(row)
    ev.time_side_by_side(rows, test.x, settings, progress=not args.quiet)
    if not args.speed:
        ev.check_targets(rows)
    versions = {}
    for r in rows:
        versions[r["runtime"]] = r["runtime_version"]
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    env["load_average_end"] = hostinfo.describe()["load_average"]
    result = {"run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "command": " ".join(["evaluate_offline"] + (argv if argv is not None else sys.argv[1:])),
              "environment": env, "settings": settings.__dict__, "versions": versions,
              "test": {"root": ev.shown_path(test.root), "frames": int(len(test.x)),
                       "frames_per_circuit": {c: int(test.mask(c).sum()) for c in test.circuits},
                       "runs": {c: [os.path.relpath(r, test.root) for r in v] for c, v in test.runs.items()}},
              "rows": rows, "skipped": skipped, "int8_peak": hostinfo.int8_peak(args.threads)}
    if args.speed:
        result["models"] = ("random-weight PilotNet (seed 0), int8 calibrated on 100 synthetic frames"
                            if args.random else f"the artifacts under {ev.shown_path(models) if models else 'models/'}")
        files = {"speed.json": json.dumps(result, indent=1, default=float) + "\n",
                 "speed.md": ev.speed_markdown(result)}
        if hostinfo.busy(env):
            print(f"warning: load average {env['load_average'][0]:.1f} on {env['cpu_count']} cores: other "
                  f"processes shared the CPU; tails are not representative", file=sys.stderr)
    else:
        files = {"offline.json": json.dumps(result, indent=1, default=float) + "\n",
                 "offline.csv": ev.to_csv(result), "offline.md": ev.to_markdown(result)}
        if args.pick_default:
            files["default.md"] = ev.default_markdown(result)
    out_dir = os.path.abspath(args.out_dir or os.path.join(
        results_root(), *(("benchmarks", "backends") if args.speed else ("offline",))))
    final = os.path.join(out_dir, run_id)
    partial = os.path.join(out_dir, f".{run_id}.partial{os.getpid()}")
    os.makedirs(partial, exist_ok=True)
    try:
        for name, text in files.items():
            atomic_write_text(os.path.join(partial, name), text)
        if not args.speed:
            ev.plot(result, partial)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(partial, final)
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial, ignore_errors=True)
    if args.speed:
        print(ev.speed_table(rows))
        print(f"wrote {final}/speed.{{json,md}}")
    else:
        print(files.get("default.md") or ev.to_markdown(result))
        print(f"wrote {final}/offline.{{csv,json,md}}, scatter.png, bars.png"
              + (", default.md" if args.pick_default else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
