"""Representative / calibration frames for post-training quantization.

Sources: a folder in the DeepLearningStudio layout (run folders of ``<int>.png`` + data.csv),
a ``.npy`` of preprocessed frames float32 (N, 66, 200, 3) in [0, 1], or ``synthetic[:N]``: frames
generated from a seed (a road-like scene: sky, ground, a red curve) for tests and smoke builds.
"""
from __future__ import annotations

import os

import numpy as np

from pilotnet_brains.models import INPUT_SHAPE


class CalibrationError(ValueError):
    """Representative data that cannot be used; names the path and the expected layout."""


def synthetic_frames(n: int, seed: int = 0) -> np.ndarray:
    """``n`` preprocessed-looking frames float32 (n, 66, 200, 3) in [0, 1]: sky, ground, a red line
    at a random lateral offset and curvature, plus noise. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    h, w, _ = INPUT_SHAPE
    rows = np.arange(h, dtype=np.float32)[:, None] / (h - 1)
    cols = np.arange(w, dtype=np.float32)[None, :] / (w - 1)
    out = np.empty((n,) + INPUT_SHAPE, np.float32)
    for i in range(n):
        horizon = rng.uniform(0.05, 0.3)
        sky = np.array(rng.uniform([0.5, 0.6, 0.7], [0.8, 0.9, 1.0]), np.float32)
        ground = np.array(rng.uniform(0.15, 0.45, 3), np.float32)
        img = np.where((rows < horizon)[..., None], sky, ground) * np.ones((h, w, 1), np.float32)
        centre = 0.5 + rng.uniform(-0.3, 0.3) + rng.uniform(-0.6, 0.6) * (1 - rows) ** 2
        width = 0.01 + 0.03 * rows
        line = (np.abs(cols - centre) < width) & (rows >= horizon)
        img[line] = (0.85, 0.1, 0.1)
        img += rng.normal(0, 0.02, img.shape).astype(np.float32)
        out[i] = np.clip(img, 0, 1)
    return out


def _check_path(source: str) -> bool:
    """Raise on a missing source or a file that is not a .npy; True if it is a (.npy) file."""
    if not os.path.exists(source):
        raise CalibrationError(f"representative data {source} does not exist: pass a DeepLearningStudio "
                               f"folder (<int>.png + data.csv) or a .npy of preprocessed frames")
    if os.path.isfile(source) and not source.endswith(".npy"):
        raise CalibrationError(f"representative data {source}: a file must be a .npy of preprocessed "
                               f"frames float32 (N, {', '.join(map(str, INPUT_SHAPE))})")
    return os.path.isfile(source)


def check_source(source: str | None) -> None:
    """Fail early (before any framework import) on a missing/empty/wrong data source."""
    if source is None or str(source).startswith("synthetic"):
        return
    if _check_path(source):
        return
    from pilotnet_brains.dataset import DatasetError, read_run, run_folders

    try:
        read_run(run_folders(source)[0])
    except DatasetError as e:
        raise CalibrationError(f"representative data folder {source}: {e}") from None


def load_representative(source: str | None, n: int = 100, seed: int = 0, progress: bool = True,
                        prep=None) -> np.ndarray:
    """``n`` preprocessed frames float32 (n, 66, 200, 3) from ``source`` (see the module doc).

    Folder sources take ``n`` frames evenly spread over the listing (all if fewer) and preprocess them
    with ``prep`` (a :class:`~pilotnet_brains.preprocess.Preprocessing`; default DEFAULT)."""
    if source is None or str(source).startswith("synthetic"):
        text = str(source or "synthetic")
        count = int(text.split(":", 1)[1]) if ":" in text else n
        return synthetic_frames(min(n, count), seed)
    if _check_path(source):
        x = np.load(source, mmap_mode="r")
        if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE or len(x) == 0:
            raise CalibrationError(f"{source} holds an array of shape {x.shape}; expected (N, "
                                   f"{', '.join(map(str, INPUT_SHAPE))}) preprocessed frames, N >= 1")
        idx = np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int)
        return np.ascontiguousarray(x[idx], dtype=np.float32)
    from pilotnet_brains.dataset import DatasetError, load_frame, read_dataset
    from pilotnet_brains.preprocess import DEFAULT

    prep = prep or DEFAULT

    try:
        samples = read_dataset(source)
    except DatasetError as e:
        raise CalibrationError(f"representative data folder {source}: {e}") from None
    idx = np.linspace(0, len(samples) - 1, min(n, len(samples))).round().astype(int)
    out = np.empty((len(idx),) + INPUT_SHAPE, np.float32)
    it = enumerate(idx)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(idx), desc="representative frames", unit="frame")
    for i, j in it:
        prep.image(load_frame(samples[j].path), out=out[i])
    return out
