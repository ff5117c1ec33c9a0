"""Training PilotNet (tf_keras and torch) on DeepLearningStudio-format datasets.

Both frameworks see the same arrays: frames preprocessed by :mod:`pilotnet_brains.preprocess`
(cached as .npy), labels min-max scaled to [0, 1], the same augmentation (numpy, per batch) and the
same oversampling of sharp turns. Validation is split by run folder, never by random frames.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from pilotnet_brains import dataset as ds
from pilotnet_brains.preprocess import DEFAULT, Preprocessing
from pilotnet_brains.reporting import pyplot, write_png


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    patience: int = 3             # epochs without validation improvement before stopping
    flip: bool = True             # mirror half the frames, w negated
    jitter: float = 0.25          # brightness/colour jitter amplitude (fraction)
    blur_prob: float = 0.1        # fraction of frames blurred (3x3 box)
    turn_oversample: float = 3.0  # sampling weight 1 + k * |w| / w_max
    val_fraction: float = 0.15    # of run folders held out (at least one)
    threads: int = 0              # 0 = the framework's default
    extra: dict = field(default_factory=dict)


class TrainError(ValueError):
    """Training cannot start as asked (no data, bad split...)."""


def split_by_run(samples: Sequence[ds.Sample], val_fraction: float, seed: int):
    """Hold out whole run folders (every k-th, deterministic): frames of one run are never on both sides."""
    runs = sorted({os.path.dirname(s.path) for s in samples})
    if len(runs) < 2:
        raise TrainError(f"validation is split by run folder and the dataset has {len(runs)} run(s): "
                         f"collect at least two runs")
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(runs) * val_fraction)))
    val_runs = set(rng.choice(runs, size=n_val, replace=False).tolist())
    train = [i for i, s in enumerate(samples) if os.path.dirname(s.path) not in val_runs]
    val = [i for i, s in enumerate(samples) if os.path.dirname(s.path) in val_runs]
    return np.array(train), np.array(val), sorted(val_runs)


def sampling_weights(y: np.ndarray, k: float) -> np.ndarray:
    """Oversample sharp turns: weight 1 + k * |w| / max|w| (y normalized, w centred at 0.5)."""
    turn = np.abs(y[:, 1] - 0.5) * 2.0
    w = 1.0 + k * turn
    return w / w.sum()


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, cfg: TrainConfig):
    """A fresh augmented copy of a batch: flip (w -> -w), per-channel gain jitter, occasional blur."""
    x = np.array(x, dtype=np.float32, copy=True)
    y = np.array(y, dtype=np.float32, copy=True)
    n = len(x)
    if cfg.flip:
        flip = rng.random(n) < 0.5
        x[flip] = x[flip, :, ::-1]
        y[flip, 1] = 1.0 - y[flip, 1]          # w = p1*14.2 - 7.1 is symmetric about p1 = 0.5
    if cfg.jitter > 0:
        gain = 1.0 + rng.uniform(-cfg.jitter, cfg.jitter, (n, 1, 1, 1)).astype(np.float32)
        colour = 1.0 + rng.uniform(-cfg.jitter / 3, cfg.jitter / 3, (n, 1, 1, 3)).astype(np.float32)
        np.multiply(x, gain * colour, out=x)
        np.clip(x, 0.0, 1.0, out=x)
    if cfg.blur_prob > 0:
        import cv2

        for i in np.flatnonzero(rng.random(n) < cfg.blur_prob):
            x[i] = cv2.blur(x[i], (3, 3))
    return x, y


def batches(n: int, weights: np.ndarray | None, batch_size: int, rng: np.random.Generator):
    idx = rng.choice(n, size=n, replace=True, p=weights) if weights is not None else rng.permutation(n)
    for i in range(0, n - batch_size + 1, batch_size):
        yield np.sort(idx[i:i + batch_size])   # sorted: faster gathers from a memory-mapped cache


# --- the two frameworks: (make_model, train_step, predict, save) behind one table -------------------

class _TF:
    name = "tf"

    def __init__(self, cfg: TrainConfig):
        import tensorflow as tf

        from pilotnet_brains.models import build_tf_pilotnet

        if cfg.threads:
            tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)
        self.tf = tf
        self.model = build_tf_pilotnet(cfg.seed)
        from pilotnet_brains.models.tf_pilotnet import keras_module

        keras = keras_module()

        self.opt = keras.optimizers.Adam(cfg.learning_rate)
        model, opt = self.model, self.opt

        @tf.function(reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        @tf.function(reduce_retracing=True)
        def infer(x):
            return model(x, training=False)

        self._step, self._infer = step, infer

    def step(self, x, y) -> float:
        return float(self._step(x, y))

    def predict(self, x) -> np.ndarray:
        return self._infer(x).numpy()

    def get_state(self):
        return self.model.get_weights()

    def set_state(self, state):
        self.model.set_weights(state)

    def save(self, path, extra):
        from pilotnet_brains.models.tf_pilotnet import save

        return save(self.model, path, extra=extra)


class _Torch:
    name = "torch"

    def __init__(self, cfg: TrainConfig):
        import torch

        from pilotnet_brains.models import build_torch_pilotnet

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.torch = torch
        torch.manual_seed(cfg.seed)
        self.model = build_torch_pilotnet(cfg.seed)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)

    def step(self, x, y) -> float:
        torch = self.torch
        self.model.train()
        self.opt.zero_grad()
        loss = torch.mean((self.model(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def predict(self, x) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def get_state(self):
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def set_state(self, state):
        self.model.load_state_dict(state)

    def save(self, path, extra):
        from pilotnet_brains.models.torch_pilotnet import save

        self.model.eval()
        return save(self.model, path, extra=extra)


FRAMEWORKS: dict[str, Callable[[TrainConfig], object]] = {"tf": _TF, "torch": _Torch}


def predict_in_batches(trainer, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([trainer.predict(np.asarray(x[i:i + batch], np.float32))
                           for i in range(0, len(x), batch)]) if len(x) else np.zeros((0, 2), np.float32)


def train(framework: str, data_dir: str, out_path: str, cfg: TrainConfig, cache_dir: str | None = None,
          prep: Preprocessing = DEFAULT, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train one framework's PilotNet on ``data_dir``; writes the model + sidecar to ``out_path``, a loss
    curve PNG and a history JSON beside it. Returns the training summary (also in the sidecar)."""
    if framework not in FRAMEWORKS:
        raise TrainError(f"unknown framework {framework!r}; choose one of {sorted(FRAMEWORKS)}")
    samples = ds.read_dataset(data_dir)
    train_idx, val_idx, val_runs = split_by_run(samples, cfg.val_fraction, cfg.seed)
    x, y = ds.load_arrays(samples, prep, cache_dir=cache_dir, progress=progress)
    np.random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    trainer = FRAMEWORKS[framework](cfg)
    x_val = np.asarray(x[val_idx])
    y_val = y[val_idx]
    weights = sampling_weights(y[train_idx], cfg.turn_oversample) if cfg.turn_oversample > 0 else None
    history = []
    best = (np.inf, None, -1)
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        losses = []
        it = batches(len(train_idx), weights, cfg.batch_size, rng)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(train_idx) // cfg.batch_size, desc=f"{framework} epoch {epoch}/{cfg.epochs}",
                      unit="batch", leave=False, file=sys.stderr)
        for b in it:
            sel = train_idx[b]
            xb, yb = augment(x[sel], y[sel], rng, cfg)
            losses.append(trainer.step(xb, yb))
        val_mse = float(np.mean((predict_in_batches(trainer, x_val) - y_val) ** 2))
        history.append({"epoch": epoch, "train_mse": float(np.mean(losses)), "val_mse": val_mse,
                        "seconds": time.perf_counter() - t0})
        log(f"{framework} epoch {epoch}: train mse {np.mean(losses):.5f}  val mse {val_mse:.5f}")
        if val_mse < best[0]:
            best = (val_mse, trainer.get_state(), epoch)
        elif epoch - best[2] >= cfg.patience:
            log(f"{framework} epoch {epoch}: early stop, no improvement for {cfg.patience} epochs (best epoch {best[2]})")
            break
    trainer.set_state(best[1])
    pred = predict_in_batches(trainer, x_val)
    v_err, w_err = np.sqrt(np.mean((np.stack(prep.outputs(pred), -1) - np.stack(prep.outputs(y_val), -1)) ** 2, axis=0))
    summary = {
        "framework": framework, "frames": len(samples), "train_frames": int(len(train_idx)),
        "val_frames": int(len(val_idx)), "val_runs": [os.path.relpath(r, data_dir) for r in val_runs],
        "best_epoch": best[2], "val_mse": best[0], "val_rmse_v_mps": float(v_err), "val_rmse_w_radps": float(w_err),
        "train_seconds": round(time.perf_counter() - t0, 1), "config": asdict(cfg),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "dataset_sha256": ds.dataset_hash(samples), "history": history,
    }
    if len(samples) < 2000:
        summary["smoke_build"] = f"trained on only {len(samples)} frames: a smoke build, not a driving model"
    trainer.save(out_path, extra={k: v for k, v in summary.items() if k != "history"})
    from pilotnet_brains.preprocess import read_meta, write_meta

    meta = read_meta(out_path)
    meta.dataset = summary["dataset_sha256"]
    meta.preprocessing = prep
    write_meta(out_path, meta)
    from pilotnet_brains.util import atomic_write_text

    atomic_write_text(out_path + ".history.json", json.dumps(summary, indent=2) + "\n")
    plot_history(history, out_path + ".loss.png", title=f"PilotNet ({framework}) training")
    return summary


def plot_history(history: list, path: str, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["train_mse"] for h in history], "o-", label="train (augmented)")
    ax.plot(ep, [h["val_mse"] for h in history], "s-", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (normalized labels)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_png(fig, path, dpi=100, tight=False)
