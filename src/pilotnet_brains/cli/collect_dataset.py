"""``scripts/collect_dataset``: record a PilotNet dataset (DeepLearningStudio layout) in the embedded simulator.

Training runs drive the training circuits in both directions with a privileged pure-pursuit expert
whose executed command is perturbed (steering noise, swerves, offset starts) while every frame is
labelled with the expert's clean command; ``--test`` records one clean lap of each evaluation
circuit instead (offline evaluation only, never training).

Examples:
    scripts/collect_dataset data/train                     # ~22 k frames, about 9 minutes
    scripts/collect_dataset data/test --test               # simple_circuit, montreal, montmelo
    scripts/collect_dataset /tmp/tiny --episodes 1 --episode-frames 50 --circuits many_curves
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from pilotnet_brains.helptext import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    from pilotnet_brains.circuits import EVALUATION_CIRCUITS, TRAINING_CIRCUITS

    parser = argparse.ArgumentParser(prog="collect_dataset", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("out", help="output folder (one run folder per episode is created inside)")
    parser.add_argument("--test", action="store_true", help="record the test set: one clean lap per evaluation circuit")
    parser.add_argument("--circuits", nargs="+", default=None,
                        help=f"circuits (names or .yaml paths); default training: {' '.join(TRAINING_CIRCUITS)}; "
                             f"test: {' '.join(EVALUATION_CIRCUITS)}")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per circuit and direction (default 4)")
    parser.add_argument("--episode-frames", type=int, default=400, help="frames per episode, 20 Hz (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed: same seed, same dataset")
    parser.add_argument("--no-variation", action="store_true", help="no visual variation on training episodes")
    parser.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    args = parser.parse_args(argv)

    from pilotnet_brains import collect
    from pilotnet_brains.circuits import CircuitError

    if os.path.isdir(args.out) and os.listdir(args.out) and not args.force:
        print(f"collect_dataset: {args.out} is not empty; choose a new folder or pass --force", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.test:
            circuits = tuple(args.circuits or EVALUATION_CIRCUITS)
            stats = collect.collect_test(args.out, seed=args.seed, circuits=circuits)
            cfg = {"test": True, "seed": args.seed, "circuits": list(circuits)}
        else:
            cfg = collect.CollectConfig(episodes=args.episodes, episode_frames=args.episode_frames, seed=args.seed,
                                        variation=not args.no_variation)
            circuits = tuple(args.circuits or TRAINING_CIRCUITS)
            leak = sorted(set(circuits) & set(EVALUATION_CIRCUITS))
            if leak:
                print(f"collect_dataset: {leak} are evaluation circuits; training data must not come from them "
                      f"(use --test for the test set)", file=sys.stderr)
                return 2
            stats = collect.collect_training(args.out, cfg, circuits=circuits)
            cfg = dict({f.name: getattr(cfg, f.name) for f in fields(cfg)}, circuits=list(circuits))
    except CircuitError as e:
        print(f"collect_dataset: {e}", file=sys.stderr)
        return 2
    path = collect.write_summary(args.out, stats, cfg)
    total = sum(s["frames"] for s in stats.values())
    print(f"{total} frames in {len(stats)} runs -> {args.out} (summary: {path}, histograms: labels.png)")
    return 0
