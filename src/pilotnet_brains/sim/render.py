"""The F1 camera: an exact inverse perspective mapping of a flat textured ground, in a few ms.

The world is the ground plane z = 0 with the circuit painted on it, under a sky. A pinhole camera
with no tilt above a flat ground sees, for each image row below the horizon, the ground at one
depth; so a frame is a per-pixel world coordinate (a few array operations) plus one ``cv2.remap``.

What is remapped is not a colour texture but a **distance field**: for each texel (default
0.125 m) the exact distance (mm, uint16) from its centre to the red centerline. The distance to
a smooth curve is linear across a texel, so bilinear interpolation recovers it to within a
millimetre at any magnification, and the colour of a pixel follows from it (red line, asphalt,
white borders, ground). Anti-aliasing uses the screen-space gradient of the distance (metres of
distance per pixel): each edge is blended over one pixel footprint, so the distant red line and
borders are pre-filtered instead of shimmering (what mipmaps do for textures), and the near red
line stays crisp. The colour lookup is one table indexed by (distance mm, gradient level).

Camera model (matches the Gazebo F1 camera, DESIGN §2): 640x480, horizontal FOV 1.57 rad,
square pixels, principal point at the image centre, no tilt, far clip plane 15 m (beyond it:
background/sky colour, like Gazebo), mounted ``forward`` m ahead of the car's reference point
at ``height`` m. The F1 model's exact mounting is not published with the interface contract;
0.6 m high (about a driver's-eye height for a full-size car) and 0.4 m ahead were chosen and can
be changed (CameraConfig / ROS params).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from pilotnet_brains.circuits import Circuit

#: Distance field: texel size (m), clamp value (mm) and band half-width computed exactly (m).
FIELD_TEXEL = 0.125
FIELD_CLAMP_MM = 20000
#: Colour lookup: distance resolution 1 mm up to LUT_MAX_MM (beyond: ground), NG gradient levels.
LUT_MAX_MM = 8191
NG = 14


@dataclass(frozen=True)
class CameraConfig:
    """Pinhole camera on the car. Sizes in pixels, angles in rad, lengths in m."""

    width: int = 640
    height: int = 480
    hfov: float = 1.57
    mount_height: float = 0.6   # m above the ground
    mount_forward: float = 0.4  # m ahead of the car's reference point (odom pose)
    near_clip: float = 0.1      # m
    far_clip: float = 15.0      # m (depth along the optical axis, like Gazebo's clip plane)

    @property
    def fx(self) -> float:
        """Focal length (px), the same for both axes (square pixels)."""
        return self.width / (2.0 * math.tan(self.hfov / 2.0))

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    def intrinsics(self) -> np.ndarray:
        """3x3 camera matrix K (pixels; ROS convention, pixel centres at integer coordinates)."""
        return np.array([[self.fx, 0, self.cx], [0, self.fx, self.cy], [0, 0, 1]], dtype=np.float64)

    @property
    def first_ground_row(self) -> int:
        """First image row showing ground closer than the far clip plane."""
        return int(math.floor(self.cy + self.mount_height * self.fx / self.far_clip)) + 1


def _cache_dir() -> str:
    return os.environ.get("PILOTNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pilotnet_brains")


def distance_field(circuit: Circuit, texel: float = FIELD_TEXEL, use_cache: bool = True
                   ) -> tuple[np.ndarray, tuple[float, float], float]:
    """Distance (mm, uint16, clamped at FIELD_CLAMP_MM) from each texel centre to the centerline.

    Returns (field (H,W) uint16, origin (x0, y0) m of texel (0, 0)'s centre, texel m); texel
    (r, c) is at world (x0 + c*texel, y0 + r*texel). Exact (segment projection) within the road
    band plus 2 m; cached on disk (keyed by the centerline) because Montreal takes ~1 s.
    """
    margin = circuit.road_width
    x0, y0, x1, y1 = circuit.bounds(margin=margin)
    w = int(math.ceil((x1 - x0) / texel)) + 1
    h = int(math.ceil((y1 - y0) / texel)) + 1
    key = hashlib.sha256(np.ascontiguousarray(circuit.polyline).tobytes()
                         + repr((texel, circuit.road_width, FIELD_CLAMP_MM, 2)).encode()).hexdigest()[:20]
    path = os.path.join(_cache_dir(), f"field_{circuit.name}_{key}.npy")
    if use_cache and os.path.isfile(path):
        try:
            field = np.load(path)
            if field.shape == (h, w):
                return field, (x0, y0), texel
        except (OSError, ValueError):
            pass
    band = circuit.road_width / 2 + 2.0
    mask = np.zeros((h, w), np.uint8)
    pts = np.round((circuit.polyline - (x0, y0)) / texel * 16).astype(np.int32)
    cv2.polylines(mask, [pts.reshape(-1, 1, 2)], True, 255, thickness=int(math.ceil(2 * band / texel)) + 2,
                  lineType=cv2.LINE_8, shift=4)
    rows, cols = np.nonzero(mask)
    # Outside the band, the band's edge value: the field stays continuous (no false edges).
    field = np.full((h, w), int(band * 1000), np.uint16)
    xy = np.stack([x0 + cols * texel, y0 + rows * texel], axis=1)
    for i in range(0, len(xy), 500_000):
        _, lat = circuit.project(xy[i:i + 500_000])
        field[rows[i:i + 500_000], cols[i:i + 500_000]] = np.minimum(
            np.round(np.abs(lat) * 1000.0), FIELD_CLAMP_MM).astype(np.uint16)
    if use_cache:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, field)
            os.replace(tmp, path)
        except OSError:
            pass
    return field, (x0, y0), texel


@dataclass(frozen=True)
class Style:
    """Colours (RGB 0-255) and the border line width (m) used to paint the circuit."""

    road: tuple[int, int, int]
    line: tuple[int, int, int]
    border: tuple[int, int, int]
    ground: tuple[int, int, int]
    sky: tuple[int, int, int]
    border_width: float

    @classmethod
    def of(cls, circuit: Circuit) -> Style:
        s = circuit.style
        return cls(tuple(s["road"]), tuple(s["line"]), tuple(s["border"]), tuple(s["ground"]),
                   tuple(s["sky"]), float(s["border_width"]))

    def varied(self, rng: np.random.Generator) -> Style:
        """A seeded random variation (lighting, tint, colour) for dataset robustness."""
        gain = rng.uniform(0.65, 1.3)
        tint = rng.uniform(0.9, 1.1, 3)

        def jitter(c, amount):
            c = np.asarray(c, np.float64) * gain * tint + rng.uniform(-amount, amount, 3)
            return tuple(int(v) for v in np.clip(c, 0, 255))

        return Style(jitter(self.road, 20), jitter(self.line, 25), jitter(self.border, 15),
                     jitter(self.ground, 35), jitter(self.sky, 30),
                     self.border_width * rng.uniform(0.6, 1.4))


def colour_lut(circuit: Circuit, style: Style) -> np.ndarray:
    """(LUT_MAX_MM+1, NG, 3) uint8: colour of a pixel at distance d mm with gradient level g.

    Gradient level g means the distance changes by about 2**g mm across the pixel; each edge
    (line, road/border, border/ground) is blended linearly over that width.
    """
    d = np.arange(LUT_MAX_MM + 1, dtype=np.float64)[:, None] / 1000.0
    g = (2.0 ** np.arange(NG, dtype=np.float64))[None, :] / 1000.0

    def cover(edge):  # fraction of the pixel inside distance < edge
        return np.clip((edge - d) / g + 0.5, 0.0, 1.0)[..., None]

    half = circuit.road_width / 2
    c = np.broadcast_to(np.asarray(style.ground, np.float64), (LUT_MAX_MM + 1, NG, 3))
    c = c + (np.asarray(style.border, np.float64) - c) * cover(half)
    c = c + (np.asarray(style.road, np.float64) - c) * cover(half - style.border_width)
    c = c + (np.asarray(style.line, np.float64) - c) * cover(circuit.line_width / 2)
    return np.clip(np.round(c), 0, 255).astype(np.uint8)


def _grad_levels() -> np.ndarray:
    """Map |delta distance| (mm, 0..32767) to a gradient level 0..NG-1 (log2, rounded)."""
    x = np.arange(32768, dtype=np.float64)
    return np.clip(np.round(np.log2(np.maximum(x, 1.0))), 0, NG - 1).astype(np.int32)


_GRAD_LEVELS = _grad_levels()


class Renderer:
    """Renders the camera image (H,W,3 uint8 RGB) of a circuit from a car pose.

    ``render(pose)`` takes the car pose (x m, y m, yaw rad; world frame). ``set_style`` changes
    the colours (e.g. a seeded variation); ``noise_std`` (grey levels) adds seeded pixel noise.
    """

    def __init__(self, circuit: Circuit, camera: CameraConfig | None = None, style: Style | None = None,
                 use_cache: bool = True):
        self.circuit = circuit
        self.camera = cam = camera or CameraConfig()
        self.field, (self._x0, self._y0), self._texel = distance_field(circuit, use_cache=use_cache)
        self.base_style = Style.of(circuit)
        self.row0 = max(cam.first_ground_row, int(math.floor(cam.cy)) + 1)
        rows = np.arange(self.row0, cam.height, dtype=np.float64)
        cols = np.arange(cam.width, dtype=np.float64)
        depth = cam.mount_height * cam.fx / (rows - cam.cy)                   # forward (m)
        left = -(cols[None, :] - cam.cx) / cam.fx * depth[:, None]           # left (m)
        self._fwd = np.ascontiguousarray(np.broadcast_to(depth[:, None], left.shape), dtype=np.float32)
        self._left = np.ascontiguousarray(left, dtype=np.float32)
        self._tmp = np.empty_like(self._fwd)
        self._mx = np.empty_like(self._fwd)
        self._my = np.empty_like(self._fwd)
        self._ground_rows = cam.height - self.row0
        self.set_style(self.base_style)

    def set_style(self, style: Style) -> None:
        self.style = style
        lut = np.full((LUT_MAX_MM + 1) * NG, 0xFF000000, np.uint32).view(np.uint8).reshape(-1, 4)
        lut[:, :3] = colour_lut(self.circuit, style).reshape(-1, 3)
        self._lut = lut.view(np.uint32).ravel()  # RGBA packed: one gather per pixel
        self._background = np.empty((self.camera.height, self.camera.width, 3), np.uint8)
        self._background[:] = np.asarray(style.sky, np.uint8)

    def distance_image(self, pose) -> np.ndarray:
        """Distance (mm, uint16) to the centerline of the ground seen by each pixel of rows row0:."""
        x, y, yaw = (float(v) for v in pose)
        c, s = math.cos(yaw), math.sin(yaw)
        cam = self.camera
        px = (x + cam.mount_forward * c - self._x0) / self._texel
        py = (y + cam.mount_forward * s - self._y0) / self._texel
        k = 1.0 / self._texel
        # Texel coordinates of the ground point of every pixel: p + R(yaw) (fwd, left) / texel.
        np.multiply(self._fwd, np.float32(c * k), out=self._mx)
        np.multiply(self._left, np.float32(-s * k), out=self._tmp)
        self._mx += self._tmp
        self._mx += np.float32(px)
        np.multiply(self._fwd, np.float32(s * k), out=self._my)
        np.multiply(self._left, np.float32(c * k), out=self._tmp)
        self._my += self._tmp
        self._my += np.float32(py)
        return cv2.remap(self.field, self._mx, self._my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=FIELD_CLAMP_MM)

    def render(self, pose, out: np.ndarray | None = None, noise_std: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """The RGB frame (H,W,3 uint8) seen from the car at ``pose`` (x, y, yaw)."""
        d = self.distance_image(pose)
        di = d.astype(np.int32)
        g = np.zeros_like(di)
        np.abs(di[:, 1:] - di[:, :-1], out=g[:, 1:])
        g[:, 0] = g[:, 1]
        gv = np.abs(di[1:] - di[:-1])
        np.maximum(g[1:], gv, out=g[1:])
        np.maximum(g[:-1], gv, out=g[:-1])
        np.minimum(d, LUT_MAX_MM, out=d)
        idx = d.astype(np.int32)
        idx *= NG
        np.minimum(g, 32767, out=g)
        idx += np.take(_GRAD_LEVELS, g)
        rgba = np.take(self._lut, idx).view(np.uint8).reshape(idx.shape + (4,))
        if out is None:
            out = np.empty_like(self._background)
        out[:self.row0] = self._background[:self.row0]
        cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB, dst=out[self.row0:])
        if noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng()
            noise = rng.normal(0.0, noise_std, out.shape).astype(np.float32)
            out[:] = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        return out


def render_top_view(circuit: Circuit, px_per_m: float = 2.0, start_pose: bool = True,
                    trajectory: np.ndarray | None = None, car_pose=None, base: np.ndarray | None = None
                    ) -> np.ndarray:
    """Top-down RGB picture of the circuit (north up, ``px_per_m`` pixels per metre) with the start
    pose arrow, and a trajectory (N,2) m / a car pose if given. ``base``: a picture this function
    returned before without overlays (same circuit and scale), reused instead of re-rendering."""
    x0, y0 = circuit.bounds(margin=circuit.road_width)[:2]   # the distance field's origin
    if base is not None:
        img = base.copy()
        out_h = img.shape[0]
    else:
        field, (x0, y0), texel = distance_field(circuit)
        h, w = field.shape
        scale = px_per_m * texel
        out_h = int(round(h * scale))
        out_w = int(round(w * scale))
        # Pixel (r, c) -> texel coordinates (north up: picture rows run towards -y).
        cols = np.arange(out_w, dtype=np.float32) / scale
        rows = (out_h - 1 - np.arange(out_h, dtype=np.float32)) / scale
        mx, my = np.meshgrid(cols, rows)
        d = cv2.remap(field, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        lut = colour_lut(circuit, Style.of(circuit))
        level = int(np.clip(round(math.log2(max(1000.0 / px_per_m, 1.0))), 0, NG - 1))
        img = np.ascontiguousarray(lut[np.minimum(d, LUT_MAX_MM), level])

    def to_px(xy):
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return np.stack([(xy[:, 0] - x0) * px_per_m, out_h - 1 - (xy[:, 1] - y0) * px_per_m], axis=1)

    if trajectory is not None and len(trajectory) > 1:
        cv2.polylines(img, [np.round(to_px(trajectory) * 16).astype(np.int32).reshape(-1, 1, 2)], False,
                      (30, 60, 220), 2, cv2.LINE_AA, shift=4)
    arrows = []
    if start_pose:
        arrows.append((circuit.start_pose, (0, 200, 0)))
    if car_pose is not None:
        arrows.append((car_pose, (255, 200, 0)))
    for (x, y, yaw), colour in arrows:
        p = to_px((x, y))[0]
        q = to_px((x + 12 * math.cos(yaw), y + 12 * math.sin(yaw)))[0]
        cv2.arrowedLine(img, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, 3, cv2.LINE_AA,
                        tipLength=0.35)
        cv2.circle(img, tuple(int(v) for v in p), 5, colour, -1, cv2.LINE_AA)
    return img
