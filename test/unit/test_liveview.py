"""The live view picture (plain Python): the camera with the PilotNet crop outlined, the gauges, the map."""
from __future__ import annotations

import numpy as np

from pilotnet_brains.liveview import CROP, PANEL_HEIGHT, Telemetry, compose
from pilotnet_brains.preprocess import Preprocessing


def _count(img, colour, rows=slice(None), cols=slice(None)) -> int:
    return int(np.all(img[rows, cols] == np.array(colour, np.uint8), axis=-1).sum())


def test_layout_crop_outline_and_map():
    camera = np.full((480, 640, 3), 90, np.uint8)
    top = np.zeros((300, 300, 3), np.uint8)
    top[:] = (10, 200, 10)
    img = compose(camera, top, Telemetry(v=10.0, w=0.5, speed=9.9, progress=0.5, deviation=0.1))
    assert img.shape == (480 + PANEL_HEIGHT, 640 + 480 + PANEL_HEIGHT, 3) and img.dtype == np.uint8
    prep = Preprocessing()
    # the outline sits on the crop's top row; rows above the crop are dimmed, the crop itself is not
    assert _count(img, CROP, rows=slice(prep.crop_top, prep.crop_top + 2), cols=slice(0, 640)) > 600
    assert img[prep.crop_top // 2, 320, 0] < 90 and img[(prep.crop_top + 480) // 2, 320, 0] == 90
    assert _count(img, (10, 200, 10), cols=slice(640, None)) > 0.9 * 680 * 680   # the map, scaled to the height


def test_gauges_follow_the_command():
    camera = np.zeros((480, 640, 3), np.uint8)
    top = np.zeros((100, 100, 3), np.uint8)
    green = (80, 200, 120)
    slow = _count(compose(camera, top, Telemetry(v=8.0, w=0.0)), green)
    fast = _count(compose(camera, top, Telemetry(v=20.0, w=0.0)), green)
    none = _count(compose(camera, top, Telemetry()), green)
    assert none == 0 < slow < fast


def test_no_frame_yet_still_draws():
    img = compose(None, np.zeros((100, 100, 3), np.uint8), Telemetry())
    assert img.shape[0] == 480 + PANEL_HEIGHT
