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
The folder appears complete or not at all.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from pilotnet_brains.cli.helptext import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    from pilotnet_brains import results_root

    parser = argparse.ArgumentParser(prog="evaluate_offline", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("artifacts", nargs="*", metavar="NAME_OR_PATH",
                        help="backend names and/or model paths (default: every backend of the table)")
    parser.add_argument("--test", required=True, metavar="DIR",
                        help="test set: DeepLearningStudio layout, one run folder per evaluation circuit, "
                             "folder names starting with the circuit name (simple_circuit_1, montreal, ...)")
    parser.add_argument("--models", metavar="DIR", help="models folder holding the base models and build/ "
                                                        "(default: the package's models/)")
    parser.add_argument("--out-dir", default=os.path.join(results_root(), "offline"), help="results root")
    parser.add_argument("--run-id", help="sub-folder name (default: the current time, YYYYmmdd-HHMMSS)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per runtime (default 1)")
    parser.add_argument("--batch", type=int, default=32, help="throughput batch size N (default 32)")
    parser.add_argument("--min-count", type=int, default=200, help="batch-1 timed runs at least (default 200)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds at least (default 2)")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (default 0.5)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="round-robin timing rounds: every model gets its share of the runs in each "
                             "round, so all see the same machine load (default 5)")
    parser.add_argument("--max-frames", type=int, default=0, help="subsample the test set (0 = all frames)")
    parser.add_argument("--cache-dir", help="folder for the preprocessed test-set cache (.npy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    from pilotnet_brains import evaluate as ev
    from pilotnet_brains.backends.base import BackendError
    from pilotnet_brains.cli.benchmark_brain import environment
    from pilotnet_brains.util import atomic_write_text

    if args.batch < 1 or args.threads < 1 or args.min_count < 1:
        parser.error("--batch, --threads and --min-count must be >= 1")
    if args.models and not os.path.isdir(args.models):
        print(f"evaluate_offline: models folder {args.models} does not exist", file=sys.stderr)
        return 2
    try:
        arts = ev.discover(args.artifacts, os.path.abspath(args.models) if args.models else None)
        test = ev.load_test_set(args.test, max_frames=args.max_frames, progress=not args.quiet,
                                cache_dir=args.cache_dir)
    except (ev.EvaluationError, ValueError) as e:
        print(f"evaluate_offline: {e}", file=sys.stderr)
        return 2
    settings = ev.Settings(threads=args.threads, batch=args.batch, min_count=args.min_count,
                           min_seconds=args.min_seconds, warmup_seconds=args.warmup, rounds=args.rounds)
    todo = [a for a in arts if not a.skip]
    skipped = [{"method": a.name, "path": a.path, "reason": a.skip} for a in arts if a.skip]
    rows, parents = [], {}
    bar = tqdm(todo, desc="accuracy", unit="model", disable=args.quiet, file=sys.stderr)
    for art in bar:
        bar.set_postfix_str(art.name)
        try:
            rows.append(ev.evaluate_artifact(art, test, settings, parents, args.models, keep_open=True))
        except BackendError as e:
            skipped.append({"method": art.name, "path": art.path, "reason": f"cannot load: {e}"})
    ev.time_side_by_side(rows, test, settings, progress=not args.quiet)
    ev.check_targets(rows)
    versions = {}
    for r in rows:
        versions[r["runtime"]] = r["runtime_version"]
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S")
    result = {"run_id": run_id, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "command": " ".join(["evaluate_offline"] + (argv if argv is not None else sys.argv[1:])),
              "environment": environment(args.threads), "settings": settings.__dict__, "versions": versions,
              "test": {"root": test.root, "frames": int(len(test.x)),
                       "frames_per_circuit": {c: int(test.mask(c).sum()) for c in test.circuits},
                       "runs": {c: [os.path.relpath(r, test.root) for r in v] for c, v in test.runs.items()}},
              "rows": rows, "skipped": skipped}
    final = os.path.join(os.path.abspath(args.out_dir), run_id)
    tmp = os.path.join(os.path.abspath(args.out_dir), f".{run_id}.partial{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    try:
        atomic_write_text(os.path.join(tmp, "offline.json"), json.dumps(result, indent=1, default=float) + "\n")
        atomic_write_text(os.path.join(tmp, "offline.csv"), ev.to_csv(result))
        atomic_write_text(os.path.join(tmp, "offline.md"), ev.to_markdown(result))
        ev.plot(result, tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    print(ev.to_markdown(result))
    print(f"wrote {final}/offline.{{csv,json,md}}, scatter.png, bars.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
