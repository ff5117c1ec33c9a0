"""``scripts/benchmark_backends``: raw batch-1 latency, size, import time and memory of every backend,
side by side in one run: the speed mode of ``scripts/evaluate_offline`` (``--speed``).

All models are loaded in one process and timed round-robin (every model gets its share of the calls
in each round, so all see the same machine load): warm-up by time, then ``predict`` on preloaded
synthetic frames with perf_counter_ns until both --min-count calls and --min-seconds are reached.
Reported: p50, p90, p99, max (no clipping), model size, the runtime's import time, the load time and
the RSS in a fresh interpreter, and the max |output - parent model output| on 32 synthetic frames
(speed is never reported without accuracy).

By default the models are random-weight PilotNets (seed 0) built into a temporary folder with every
CPU method (calibrated on synthetic frames); --use-models measures the artifacts under models/
instead. Results: a table on stdout, JSON (with the raw timings) and Markdown under
results/benchmarks/backends/<timestamp>/speed.{json,md}.

--pick-default --test DIR: the default backend for this machine instead (``evaluate_offline
--pick-default``): every built artifact under --models timed side by side with its MSE on the test
set, ranked, the fastest within 5 % MSE of its fp32 parent chosen; written to
<out>/<timestamp>/default.md with the offline table.
"""
from __future__ import annotations

import argparse
import os

from pilotnet_brains import results_root, timing
from pilotnet_brains.helptext import HelpFormatter


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
    parser.add_argument("--pick-default", action="store_true",
                        help="rank the built artifacts by batch-1 p50 and pick the fastest within 5%% MSE of "
                             "its fp32 parent on --test")
    parser.add_argument("--test", metavar="DIR", help="with --pick-default: the test set")
    parser.add_argument("--models", metavar="DIR", help="with --pick-default: the models folder (default: models/)")
    timing.add_arguments(parser, min_count=2000, min_seconds=3.0, warmup_seconds=1.0)
    parser.add_argument("--batch", type=int, default=32, help="throughput batch size N")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    parser.add_argument("--out", default=os.path.join(results_root(), "benchmarks", "backends"), help="results folder")
    args = parser.parse_args(argv)

    from pilotnet_brains.cli import evaluate_offline

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    if args.pick_default:
        if not args.test:
            parser.error("--pick-default needs --test DIR")
        mode = ["--pick-default", "--test", args.test, *(["--models", args.models] if args.models else [])]
    elif args.test or args.models:
        parser.error("--test and --models go with --pick-default (--use-models measures models/)")
    else:
        mode = ["--speed", *([] if args.use_models else ["--random"])]
    return evaluate_offline.main(
        [*mode, *names, "--threads", str(args.threads),
         "--batch", str(args.batch), "--min-count", str(args.min_count), "--min-seconds", str(args.min_seconds),
         "--warmup-seconds", str(args.warmup_seconds), "--seed", str(args.seed),
         "--out-dir", args.out])
