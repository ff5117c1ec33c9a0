"""Shared parts of the fine-tuning methods (tfmot pruning/QAT/clustering, torch QAT/pruning).

- :func:`finetune_arrays`: the frames a method fine-tunes on. A DeepLearningStudio folder gives
  (frames, normalized labels), subsampled to ``fraction`` of the dataset (at most ``max_frames``,
  drawn with the method's seed) *before* any image is decoded. ``synthetic[:N]`` gives synthetic
  frames labelled by the parent model itself (self-distillation): a smoke build for tests. Fewer
  than :data:`SMOKE_FRAMES` frames also make a smoke build; both are recorded in the sidecar notes.
- :func:`batch_stream`: shuffled, augmented batches (the trainer's :func:`pilotnet_brains.train.augment`).
- :func:`sparsity`, :func:`gzip_size`: the figures pruned artifacts report in their sidecars.
- :class:`FinetuneRun`: what every fine-tuning method's run starts and ends with (its frames,
  schedule and recorded parameters; the gzip size of a pruned artifact).
"""
from __future__ import annotations

import gzip
import os
from typing import Any, Callable, Iterator

import numpy as np

from pilotnet_brains.optimize.registry import BuildContext, OptimizeError
from pilotnet_brains.util import companions

#: Below this many training frames a fine-tuned artifact is a smoke build (as for training).
SMOKE_FRAMES = 2000
#: Synthetic frames used by ``--data synthetic`` when no count is given.
DEFAULT_SYNTHETIC_FRAMES = 128


def finetune_arrays(ctx: BuildContext, parent_predict: Callable[[np.ndarray], np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(x float32 (N,66,200,3), y float32 (N,2) normalized, info) for fine-tuning.

    Params read from ``ctx.params``: fraction (of the dataset, 0-1], max_frames, seed, cache_dir
    (folder for the preprocessed-array cache; default ``<data>/.cache`` like the trainer's). ``parent_predict(x) -> (N, 2)`` labels
    synthetic frames."""
    from pilotnet_brains.optimize.calibration import synthetic_frames

    data = ctx.data
    seed = int(ctx.params.get("seed", 0))
    fraction = float(ctx.params.get("fraction", 1.0))
    max_frames = int(ctx.params.get("max_frames", 0) or 0)
    if not 0.0 < fraction <= 1.0:
        raise OptimizeError(f"{ctx.method}: fraction={fraction}; use a value in (0, 1]")
    if data is None or str(data).startswith("synthetic"):
        text = str(data or "synthetic")
        n = int(text.split(":", 1)[1]) if ":" in text else DEFAULT_SYNTHETIC_FRAMES
        if n < 1:
            raise OptimizeError(f"{ctx.method}: {text!r} asks for no frames; use synthetic:N with N >= 1")
        x = synthetic_frames(n, seed)
        y = np.asarray(parent_predict(x), np.float32)
        ctx.notes.append(f"smoke build: fine-tuned on {n} synthetic frames labelled by the parent model "
                         f"(self-distillation), not on driving data")
        # the parent's labels hold for these exact frames only: no flip/jitter augmentation
        ctx.params["augment"] = False
        return x, y, {"source": "synthetic", "frames": n, "frames_total": n}
    if os.path.isfile(data):
        raise OptimizeError(f"{ctx.method} fine-tunes the model and needs labelled frames: {data} is a file; "
                            f"pass --data DIR (DeepLearningStudio layout: run folders of <int>.png + data.csv)")
    if not os.path.isdir(data):
        raise OptimizeError(f"{ctx.method}: training data folder {data} does not exist; pass --data DIR "
                            f"(DeepLearningStudio layout) or --data synthetic for a smoke build")
    from pilotnet_brains.dataset import DatasetError, load_arrays, read_dataset

    try:
        samples = read_dataset(data)
    except DatasetError as e:
        raise OptimizeError(f"{ctx.method}: training data folder {data}: {e}") from None
    total = len(samples)
    k = max(1, int(round(total * fraction)))
    if max_frames:
        k = min(k, max_frames)
    if k < total:
        idx = np.sort(np.random.default_rng(seed).choice(total, size=k, replace=False))
        samples = [samples[i] for i in idx]
    # the trainer's cache convention (<data>/.cache): methods with the same subset share it
    cache = ctx.params.get("cache_dir") or os.path.join(data, ".cache")
    x, y = load_arrays(samples, prep=ctx.preprocessing(), cache_dir=cache, progress=ctx.progress)
    if total < SMOKE_FRAMES:
        ctx.notes.append(f"smoke build: the training data has only {total} frames (< {SMOKE_FRAMES})")
    return np.asarray(x, np.float32), np.asarray(y, np.float32), {"source": os.path.abspath(data),
                                                                  "frames": len(samples), "frames_total": total}


def schedule(n: int, ctx: BuildContext, epochs_key: str = "epochs") -> tuple[int, int, int]:
    """(epochs, steps_per_epoch, batch_size) for ``n`` frames; ``max_steps`` caps steps per epoch."""
    epochs = int(ctx.params.get(epochs_key, 2))
    batch = max(1, min(int(ctx.params.get("batch_size", 64)), n))
    steps = max(1, n // batch)
    cap = int(ctx.params.get("max_steps", 0) or 0)
    if cap:
        steps = min(steps, cap)
    if epochs < 1:
        raise OptimizeError(f"{ctx.method}: {epochs_key}={epochs}; fine-tuning needs at least 1 epoch")
    return epochs, steps, batch


def batch_stream(x: np.ndarray, y: np.ndarray, batch: int, seed: int, augment: bool = True
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled batches, augmented like training (flip with w mirrored, colour jitter, blur)."""
    from pilotnet_brains.train import TrainConfig
    from pilotnet_brains.train import augment as train_augment

    cfg = TrainConfig()
    rng = np.random.default_rng(seed)
    n = len(x)
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            sel = np.sort(order[i:i + batch])
            if augment:
                yield train_augment(x[sel], y[sel], rng, cfg)
            else:
                yield np.ascontiguousarray(x[sel]), np.ascontiguousarray(y[sel])


def sparsity(weights: list[np.ndarray]) -> float:
    """Fraction of exactly-zero values over all the given weight arrays."""
    total = sum(int(np.size(w)) for w in weights)
    zeros = sum(int(np.size(w) - np.count_nonzero(w)) for w in weights)
    return zeros / total if total else 0.0


def gzip_size(path: str) -> int:
    """Bytes of the artifact gzip-compressed (level 9; a folder or a file with :func:`companions`:
    the sum over its files)."""
    if os.path.isdir(path):
        return sum(gzip_size(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    parts = [c for c in companions(path) if os.path.exists(c)]
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9)) + sum(gzip_size(c) for c in parts)


def data_params(info: dict, epochs: int, steps: int, batch: int, ctx: BuildContext) -> dict:
    """The common fine-tuning parameters recorded in the sidecar."""
    return {"epochs": epochs, "steps_per_epoch": steps, "batch_size": batch,
            "learning_rate": float(ctx.params.get("learning_rate", 1e-4)), "fraction": ctx.params.get("fraction", 1.0),
            "max_frames": ctx.params.get("max_frames", 0), "augment": bool(ctx.params.get("augment", True)),
            "seed": int(ctx.params.get("seed", 0)), "frames": info["frames"], "frames_total": info["frames_total"],
            "data_source": info["source"]}


def progress_bar(ctx: BuildContext, total: int, desc: str):
    """A tqdm bar (or a no-op stand-in when progress is off)."""
    if ctx.progress:
        import sys

        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)

    class _Null:
        def update(self, n: int = 1) -> None:
            pass

        def set_postfix(self, **kw) -> None:
            pass

        def close(self) -> None:
            pass

    return _Null()


class FinetuneRun:
    """Base of one fine-tuning method's run (tfmot and torch): the frames it fine-tunes on
    (:func:`finetune_arrays`; ``parent_predict`` labels synthetic ones), its schedule (``epochs``,
    ``steps`` per epoch, ``batch``) and ``params``, the parameters recorded in the sidecar."""

    def __init__(self, ctx: BuildContext, parent_predict: Callable[[np.ndarray], np.ndarray]):
        self.ctx = ctx
        self.x, self.y, info = finetune_arrays(ctx, parent_predict)
        self.epochs, self.steps, self.batch = schedule(len(self.x), ctx)
        self.params: dict[str, Any] = data_params(info, self.epochs, self.steps, self.batch, ctx)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """A new endless stream of shuffled batches (augmented unless ``augment`` is off), seeded."""
        return batch_stream(self.x, self.y, self.batch, int(self.ctx.params["seed"]), bool(self.ctx.params["augment"]))

    def finish(self) -> dict[str, Any]:
        """The recorded parameters, with ``gzip_bytes`` of the written artifact when it is pruned."""
        if "sparsity" in self.params:
            self.params["gzip_bytes"] = gzip_size(self.ctx.out)
        return self.params
