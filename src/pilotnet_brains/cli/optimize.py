"""``scripts/optimize``: build optimized PilotNet artifacts, every method by its backend name.

Examples:
    scripts/optimize --list
    scripts/optimize tflite_int8 --data ~/datasets/dls/train
    scripts/optimize onnx_int8 --data frames.npy --out /tmp/m.onnx
    scripts/optimize --all --data ~/datasets/dls/train       # what `make models` runs
    scripts/optimize --init-random-base                       # random-weight smoke base models
"""
from __future__ import annotations

import argparse
import os
import sys

from pilotnet_brains.helptext import HelpFormatter


def _parse_params(items: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--param {item!r}: use NAME=VALUE (VALUE as JSON, or a plain string)")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def list_methods() -> str:
    from pilotnet_brains.backends import BACKENDS
    from pilotnet_brains.optimize import METHODS, is_up_to_date

    rows = [("method", "parent", "needs", "status", "artifact")]
    for name, spec in BACKENDS.items():
        if name not in METHODS:
            status = "base model (training)" if spec.method == "train" else "no build method registered yet"
        else:
            reason = METHODS[name].missing()
            if reason:
                status = "cannot run here"
            elif is_up_to_date(name):
                status = "up to date"
            elif os.path.exists(spec.default_path):
                status = "stale (base or method changed)"
            else:
                status = "missing"
        rows.append((name, spec.parent or "-", spec.needs or "-", status, spec.default_path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def build_all(data: str | None, force: bool, params: dict[str, object], progress: bool) -> int:
    from pilotnet_brains.backends import BACKENDS, base_model_path
    from pilotnet_brains.optimize import METHODS, OptimizeError, build, is_up_to_date

    failed = 0
    missing_base = {fw: base_model_path(fw) for fw in ("tf_keras", "torch") if not os.path.exists(base_model_path(fw))}
    for fw, path in missing_base.items():
        print(f"FAIL  the {fw} base model {path} does not exist: train it, or write a random-weight smoke "
              f"model with `scripts/optimize --init-random-base`; its methods are skipped", file=sys.stderr)
        failed += 1
    for name, spec in BACKENDS.items():
        if name not in METHODS:
            why = "a base model: comes from training" if spec.method == "train" else \
                f"no build method registered yet (needs {spec.needs or 'nothing'})"
            print(f"skip  {name}: {why}")
            continue
        method = METHODS[name]
        reason = method.missing()
        if reason:
            print(f"skip  {name}: this machine cannot run it; missing: {reason}")
            continue
        if method.parent in missing_base:
            print(f"skip  {name}: no {method.parent} base model")
            continue
        if not force and is_up_to_date(name):
            print(f"ok    {name}: up to date ({spec.default_path})")
            continue
        if method.needs and data is None:
            print(f"skip  {name}: needs {method.needs} data (pass --data DIR|FILE.npy|synthetic)")
            continue
        try:
            path = build(name, data=data, progress=progress, **params)
            print(f"built {name}: {path}")
        except OptimizeError as e:
            failed += 1
            print(f"FAIL  {name}: {e}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="optimize", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("methods", nargs="*", metavar="METHOD",
                        help="method(s) to build: backend names (see --list)")
    parser.add_argument("--list", action="store_true", help="list every method, what it needs and its status")
    parser.add_argument("--all", action="store_true",
                        help="build every method whose artifact is missing or stale, skipping (with the "
                             "reason) those this machine cannot run")
    parser.add_argument("--base", help="parent model (default: models/pilotnet_tf.keras or "
                                       "models/pilotnet_torch.pt, per method)")
    parser.add_argument("--data", help="representative/calibration data: a DeepLearningStudio folder "
                                       "(<int>.png + data.csv), a .npy of preprocessed frames, or "
                                       "'synthetic[:N]' for a smoke build")
    parser.add_argument("--out", help="artifact path (default: models/build/<method>.<ext>); one method only")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="method parameter, e.g. io_type=int8 or calibration_frames=200 (repeatable)")
    parser.add_argument("--force", action="store_true", help="with --all: rebuild up-to-date artifacts too")
    parser.add_argument("--init-random-base", action="store_true",
                        help="write random-weight base models (tf_keras + torch) to models/ first "
                             "(smoke/testing; refuses to overwrite unless --force)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --init-random-base (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    from pilotnet_brains.backends import base_model_path
    from pilotnet_brains.optimize import OptimizeError, build
    from pilotnet_brains.optimize.calibration import CalibrationError

    if args.list:
        print(list_methods())
        return 0
    if args.init_random_base:
        from pilotnet_brains.models import models_dir, save_random_base_models

        existing = [p for p in (base_model_path("tf_keras"), base_model_path("torch")) if os.path.exists(p)]
        if existing and not args.force:
            print(f"base models exist ({', '.join(existing)}); pass --force to overwrite them", file=sys.stderr)
            return 2
        for fw, path in save_random_base_models(models_dir(), args.seed).items():
            print(f"wrote random-weight {fw} base model {path}")
        if not (args.methods or args.all):
            return 0
    if not args.methods and not args.all:
        parser.error("name a METHOD, or use --all / --list / --init-random-base")
    if args.out and (args.all or len(args.methods) != 1):
        parser.error("--out needs exactly one METHOD")
    params = _parse_params(args.param)
    if args.all:
        return build_all(args.data, args.force, params, not args.quiet)
    status = 0
    for name in args.methods:
        try:
            path = build(name, base=args.base, data=args.data, out=args.out, progress=not args.quiet, **params)
        except (OptimizeError, CalibrationError) as e:
            print(f"optimize: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"built {name}: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
