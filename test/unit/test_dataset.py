"""DeepLearningStudio-format datasets: round trip, hash, and errors that name the file and row."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pilotnet_brains import dataset
from pilotnet_brains.preprocess import DEFAULT


def _write_run(folder, n=3, seed=0):
    rng = np.random.default_rng(seed)
    writer = dataset.RunWriter(str(folder))
    frames = []
    for i in range(n):
        rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        frames.append(rgb)
        writer.add(rgb, v=6.5 + i, w=-1.0 + i, timestamp=0.05 * i)
    writer.close()
    return frames


def test_round_trip_keeps_frames_and_labels(tmp_path):
    frames = _write_run(tmp_path / "run0")
    samples = dataset.read_dataset(str(tmp_path))
    assert [s.v for s in samples] == [6.5, 7.5, 8.5]
    assert [os.path.basename(s.path) for s in samples] == ["0.png", "1.png", "2.png"]
    np.testing.assert_array_equal(dataset.load_frame(samples[1].path), frames[1])  # PNG is lossless, rgb order kept
    x, y = dataset.load_arrays(samples, cache_dir=str(tmp_path / "cache"), progress=False)
    assert x.shape == (3, 66, 200, 3) and x.dtype == np.float32
    np.testing.assert_allclose(y[0], DEFAULT.labels(6.5, -1.0), atol=1e-6)
    x2, _ = dataset.load_arrays(samples, cache_dir=str(tmp_path / "cache"), progress=False)  # from the cache
    np.testing.assert_array_equal(np.asarray(x2), x)


def test_hash_changes_with_labels(tmp_path):
    _write_run(tmp_path / "a")
    samples = dataset.read_dataset(str(tmp_path))
    h = dataset.dataset_hash(samples)
    samples[0].v += 1
    assert dataset.dataset_hash(samples) != h


def test_missing_csv_names_the_folder(tmp_path):
    (tmp_path / "run0").mkdir()
    with pytest.raises(dataset.DatasetError, match="no data.csv found under"):
        dataset.read_dataset(str(tmp_path))
    with pytest.raises(dataset.DatasetError, match=r"run0/data.csv is missing"):
        dataset.read_run(str(tmp_path / "run0"))


def test_absent_frame_names_file_and_row(tmp_path):
    _write_run(tmp_path / "run0")
    os.unlink(tmp_path / "run0" / "1.png")
    with pytest.raises(dataset.DatasetError, match=r"data.csv row 3: frame 1.png is listed but .* does not exist"):
        dataset.read_dataset(str(tmp_path))


def test_label_out_of_range_names_file_and_row(tmp_path):
    _write_run(tmp_path / "run0")
    csv = tmp_path / "run0" / "data.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "1.png,30.0,0.0,0.05"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(dataset.DatasetError, match=r"row 3: v = 30.0 m/s is outside the label range"):
        dataset.read_dataset(str(tmp_path))


def test_corrupt_frame_is_a_clear_error(tmp_path):
    _write_run(tmp_path / "run0", n=1)
    (tmp_path / "run0" / "0.png").write_bytes(b"not a png")
    with pytest.raises(dataset.DatasetError, match="cannot decode the image"):
        dataset.load_frame(str(tmp_path / "run0" / "0.png"))
