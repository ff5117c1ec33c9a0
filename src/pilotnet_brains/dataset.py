"""Datasets in DeepLearningStudio's layout: one folder per run, ``<int>.png`` frames (640x480 rgb,
stored as PNG in OpenCV's BGR order like any PNG) and ``data.csv`` with ``image_name,v,w,timestamp``.

Labels are physical: v in m/s, w in rad/s (DLS ranges v in [6.5, 24], w in [-7.1, 7.1]).
Reading validates every row and names the file and row of any problem.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from pilotnet_brains.preprocess import DEFAULT, V_RANGE, W_RANGE, Preprocessing

CSV_NAME = "data.csv"
CSV_HEADER = ["image_name", "v", "w", "timestamp"]
_TOL = 1e-6


class DatasetError(ValueError):
    """A dataset that cannot be used as it is; the message names the file and row."""


@dataclass
class Sample:
    path: str          # absolute path of the frame
    v: float           # m/s
    w: float           # rad/s
    timestamp: float   # s (sim time)


class RunWriter:
    """Writes one run folder; frames are encoded in background threads (PNG encoding releases the
    GIL and dominates the cost), data.csv is written on close (atomically), after every frame."""

    def __init__(self, folder: str, png_compression: int = 1, threads: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self._rows: list[list[str]] = []
        self._png = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._pending: list = []

    def _write(self, path: str, bgr: np.ndarray) -> None:
        if not cv2.imwrite(path, bgr, self._png):
            raise OSError(f"could not write {path}")

    def add(self, rgb: np.ndarray, v: float, w: float, timestamp: float) -> None:
        name = f"{len(self._rows)}.png"
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)   # a copy: the caller may reuse rgb
        self._pending.append(self._pool.submit(self._write, os.path.join(self.folder, name), bgr))
        if len(self._pending) > 16:                  # bound the memory held by queued frames
            self._pending.pop(0).result()
        self._rows.append([name, f"{v:.6f}", f"{w:.6f}", f"{timestamp:.6f}"])

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> str:
        from pilotnet_brains.util import atomic_write_text

        for f in self._pending:
            f.result()
        self._pending.clear()
        self._pool.shutdown()
        lines = [",".join(CSV_HEADER)] + [",".join(r) for r in self._rows]
        path = os.path.join(self.folder, CSV_NAME)
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path


def run_folders(root: str) -> list[str]:
    """Run folders under ``root`` (``root`` itself if it holds a data.csv), sorted."""
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder {root} does not exist")
    if os.path.exists(os.path.join(root, CSV_NAME)):
        return [root]
    found = sorted(os.path.join(d, "") .rstrip(os.sep) for d, _, files in os.walk(root) if CSV_NAME in files)
    if not found:
        raise DatasetError(f"no {CSV_NAME} found under {root}: a dataset is one folder per run, each "
                           f"with <int>.png frames and {CSV_NAME} ({','.join(CSV_HEADER)})")
    return found


def read_run(folder: str, check_files: bool = True) -> list[Sample]:
    """Read and validate one run folder's data.csv."""
    path = os.path.join(folder, CSV_NAME)
    if not os.path.exists(path):
        raise DatasetError(f"{path} is missing: each run folder needs a {CSV_NAME}")
    samples = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("image_name", "v", "w") if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: header lacks {missing}; expected {','.join(CSV_HEADER)}")
        for row_no, row in enumerate(reader, start=2):
            where = f"{path} row {row_no}"
            try:
                v, w = float(row["v"]), float(row["w"])
                ts = float(row.get("timestamp") or 0.0)
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: v/w/timestamp are not numbers: {row}") from None
            if not (V_RANGE[0] - _TOL <= v <= V_RANGE[1] + _TOL):
                raise DatasetError(f"{where}: v = {v} m/s is outside the label range {V_RANGE}")
            if not (W_RANGE[0] - _TOL <= w <= W_RANGE[1] + _TOL):
                raise DatasetError(f"{where}: w = {w} rad/s is outside the label range {W_RANGE}")
            image = os.path.join(folder, row["image_name"])
            if check_files and not os.path.exists(image):
                raise DatasetError(f"{where}: frame {row['image_name']} is listed but {image} does not exist")
            samples.append(Sample(image, v, w, ts))
    if not samples:
        raise DatasetError(f"{path} lists no frames")
    return samples


def read_dataset(root: str) -> list[Sample]:
    """Every sample of every run under ``root``."""
    return [s for folder in run_folders(root) for s in read_run(folder)]


def dataset_hash(samples: Sequence[Sample]) -> str:
    """sha256 over the sample listing (paths relative to their run's parent, labels)."""
    h = hashlib.sha256()
    for s in samples:
        rel = os.path.join(os.path.basename(os.path.dirname(s.path)), os.path.basename(s.path))
        h.update(f"{rel},{s.v:.6f},{s.w:.6f}\n".encode())
    return h.hexdigest()


def load_frame(path: str) -> np.ndarray:
    """A frame as rgb8; a clear error if it cannot be decoded."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode the image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_preprocessed(samples: Sequence[Sample], prep: Preprocessing = DEFAULT) -> Iterator[np.ndarray]:
    for s in samples:
        yield prep.image(load_frame(s.path))


def load_arrays(samples: Sequence[Sample], prep: Preprocessing = DEFAULT, cache_dir: str | None = None,
                progress: bool = True):
    """(X float32 (N,66,200,3), Y float32 (N,2) normalized labels), cached as .npy when cache_dir is set."""
    key = hashlib.sha256((dataset_hash(samples) + repr(sorted(prep.to_dict().items()))).encode()).hexdigest()[:20]
    if cache_dir:
        xp, yp = (os.path.join(cache_dir, f"{key}_{n}.npy") for n in ("x", "y"))
        if os.path.exists(xp) and os.path.exists(yp):
            return np.load(xp, mmap_mode="r"), np.load(yp)
    x = np.empty((len(samples),) + prep.input_shape, np.float32)
    it = enumerate(samples)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(samples), desc="preprocessing frames", unit="frame")
    for i, s in it:
        prep.image(load_frame(s.path), out=x[i])
    y = prep.labels([s.v for s in samples], [s.w for s in samples])
    if cache_dir:
        import io

        from pilotnet_brains.util import atomic_write_bytes

        for path, arr in ((xp, x), (yp, y)):
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(path, buf.getvalue())
    return x, y
