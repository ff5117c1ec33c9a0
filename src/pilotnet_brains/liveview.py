"""The live view, as plain Python: one RGB picture of what the brain sees and does.

Left: the camera frame with the PilotNet crop outlined, the network's input beside the command
gauges (v, w: bars with their numbers) and the lap's numbers (progress, speed, deviation). Right:
the top-down map with the car's trail and pose. The live view node (``scripts/live_view``) shows it
in a window and publishes it on ``~debug_image``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pilotnet_brains.preprocess import V_RANGE, W_RANGE, Preprocessing

#: Height of the panel under the camera (px): network input, gauges, numbers.
PANEL_HEIGHT = 200
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
DIM = (150, 150, 160)
ACCENT = (255, 200, 0)         # the car's colour on the map
CROP = (0, 220, 255)


@dataclass
class Telemetry:
    """What the view prints. None = not known yet (shown as "-")."""

    v: float | None = None             # commanded linear speed (m/s)
    w: float | None = None             # commanded angular speed (rad/s)
    speed: float | None = None         # the car's speed (m/s, odometry)
    progress: float | None = None      # fraction of the lap driven, 0..1
    lap: int = 1
    deviation: float | None = None     # signed distance to the centerline (m, + = left)
    sim_time: float | None = None      # s
    brain: str = ""                    # the brain's label (backend)


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.55, colour=TEXT,
          thickness: int = 1) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _bar(img: np.ndarray, x: int, y: int, w: int, h: int, value: float | None, lo: float, hi: float,
         centred: bool, colour) -> None:
    """A horizontal gauge from lo to hi (centred: filled from 0 towards the value)."""
    cv2.rectangle(img, (x, y), (x + w, y + h), DIM, 1)
    if value is None:
        return
    frac = float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))
    start = x + int(round(w * (-lo / (hi - lo)))) if centred else x
    end = x + int(round(w * frac))
    cv2.rectangle(img, (min(start, end), y + 2), (max(start, end), y + h - 2), colour, -1)
    if centred:
        cv2.line(img, (start, y - 3), (start, y + h + 3), TEXT, 1)


def camera_with_crop(camera_rgb: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """The camera frame with the rows the network sees outlined (the rest dimmed)."""
    img = camera_rgb.copy()
    top, bottom = prep.crop_top, min(prep.crop_bottom, img.shape[0])
    img[:top] = (img[:top] * 0.45).astype(np.uint8)
    img[bottom:] = (img[bottom:] * 0.45).astype(np.uint8)
    cv2.rectangle(img, (1, top), (img.shape[1] - 2, bottom - 2), CROP, 2)
    _text(img, f"PilotNet input: rows {top}-{bottom}, resized to {prep.width}x{prep.height}",
          (10, max(22, top - 10)), 0.55, CROP)
    return img


def compose(camera_rgb: np.ndarray | None, map_rgb: np.ndarray, t: Telemetry,
            prep: Preprocessing | None = None) -> np.ndarray:
    """The live view (RGB uint8): camera 640x480 + panel on the left, the map scaled to the same
    height on the right. ``camera_rgb`` None (no frame yet) shows an empty frame."""
    prep = prep or Preprocessing()
    cam_h, cam_w = (480, 640) if camera_rgb is None else camera_rgb.shape[:2]
    height = cam_h + PANEL_HEIGHT
    map_w = int(round(map_rgb.shape[1] * height / map_rgb.shape[0]))
    out = np.empty((height, cam_w + map_w, 3), np.uint8)
    out[:] = BACKGROUND
    if camera_rgb is None:
        _text(out, "waiting for the camera...", (20, cam_h // 2), 0.8, DIM)
    else:
        out[:cam_h, :cam_w] = camera_with_crop(camera_rgb, prep)
        net = cv2.resize(camera_rgb[prep.crop_top:prep.crop_bottom], (prep.width, prep.height),
                         interpolation=cv2.INTER_AREA)
        net = cv2.resize(net, (prep.width, prep.height * 2), interpolation=cv2.INTER_NEAREST)  # 1:2, readable
        y0 = cam_h + 30
        out[y0:y0 + net.shape[0], 10:10 + net.shape[1]] = net
        _text(out, "network input", (10, cam_h + 22), 0.5, DIM)
    out[:, cam_w:] = cv2.resize(map_rgb, (map_w, height), interpolation=cv2.INTER_AREA)

    # command gauges and numbers, right of the network input
    x, y = 230, cam_h + 22
    _text(out, f"command  v {_fmt(t.v, '5.2f')} m/s   w {_fmt(t.w, '+5.2f')} rad/s", (x, y), 0.55)
    _bar(out, x, y + 10, 390, 16, t.v, 0.0, V_RANGE[1], False, (80, 200, 120))
    _bar(out, x, y + 34, 390, 16, t.w, W_RANGE[0], W_RANGE[1], True, (90, 160, 255))
    _text(out, "v", (x - 16, y + 24), 0.5, DIM)
    _text(out, "w", (x - 16, y + 48), 0.5, DIM)
    pct = None if t.progress is None else 100.0 * t.progress
    _text(out, f"lap {t.lap}   progress {_fmt(pct, '5.1f')} %", (x, y + 82), 0.6)
    _bar(out, x, y + 90, 390, 12, t.progress, 0.0, 1.0, False, ACCENT)
    _text(out, f"speed {_fmt(t.speed, '5.2f')} m/s   deviation {_fmt(t.deviation, '+5.2f')} m", (x, y + 128), 0.6)
    _text(out, f"sim t {_fmt(t.sim_time, '7.2f')} s   {t.brain}", (x, y + 158), 0.5, DIM)
    return out
