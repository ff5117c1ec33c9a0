"""``scripts/train``: train PilotNet (tf_keras and/or torch) on a DeepLearningStudio-format dataset.

Writes the model with its metadata sidecar (preprocessing, output scaling, dataset hash, command,
validation MSE), a loss-curve PNG and a history JSON beside it. Without --out it writes the
package's base models (models/pilotnet_tf.keras, models/pilotnet_torch.pt), which it replaces only
with --force.

Examples:
    scripts/train data/train --framework torch --epochs 20 --out /tmp/m.pt
    scripts/train data/train --force                 # both frameworks, replaces the base models
"""
from __future__ import annotations

import argparse
import os
import sys

from pilotnet_brains.helptext import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    from pilotnet_brains.train import FRAMEWORKS, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="train", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("data", help="dataset folder: run folders with <int>.png + data.csv")
    parser.add_argument("--framework", choices=sorted(FRAMEWORKS) + ["both"], default="both",
                        help="which model(s) to train")
    parser.add_argument("--out", help="model path (one framework only); default: the base model path")
    parser.add_argument("--force", action="store_true",
                        help="without --out: replace the existing base models under models/")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="maximum epochs")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="frames per batch")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="Adam learning rate")
    parser.add_argument("--patience", type=int, default=defaults.patience, help="early-stopping patience (epochs)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the weights and the shuffling")
    parser.add_argument("--threads", type=int, default=0, help="framework threads (0 = default)")
    parser.add_argument("--cache", default=None, help="folder for the preprocessed-array cache (default: <data>/.cache)")
    args = parser.parse_args(argv)

    from pilotnet_brains.dataset import DatasetError
    from pilotnet_brains.models import tf_base_path, torch_base_path
    from pilotnet_brains.train import TrainError, train

    frameworks = ["tf", "torch"] if args.framework == "both" else [args.framework]
    if args.out and len(frameworks) > 1:
        parser.error("--out needs a single --framework")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                      patience=args.patience, seed=args.seed, threads=args.threads)
    outs = {"tf": tf_base_path(), "torch": torch_base_path()}
    existing = [outs[fw] for fw in frameworks if not args.out and os.path.exists(outs[fw])]
    if existing and not args.force:
        print(f"train: refusing to overwrite the base model(s) {', '.join(existing)}: give --out PATH "
              f"(with --framework tf|torch) to write elsewhere, or --force to replace them", file=sys.stderr)
        return 2
    for fw in frameworks:
        out = args.out or outs[fw]
        try:
            summary = train(fw, args.data, out, cfg, cache_dir=args.cache or os.path.join(args.data, ".cache"))
        except (DatasetError, TrainError) as e:
            print(f"train: {e}", file=sys.stderr)
            return 2
        print(f"{fw}: {out}  val MSE {summary['val_mse']:.5f}  (v RMSE {summary['val_rmse_v_mps']:.3f} m/s, "
              f"w RMSE {summary['val_rmse_w_radps']:.3f} rad/s, best epoch {summary['best_epoch']}, "
              f"{summary['train_seconds']} s)")
    return 0
