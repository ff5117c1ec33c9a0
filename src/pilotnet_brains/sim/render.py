"""The F1 camera in the Gazebo F1 worlds: road, red line and walls as f1_renault's camera sees them.

The world is the flat ground z = 0 (asphalt between the walls, with the red line painted on it,
grass behind) plus the walls: vertical faces ``wall_height`` m high standing at the asphalt edge,
``road_width / 2`` m either side of the red line, under a plain sky. A pinhole camera with no tilt
above flat ground sees, for each image row below the horizon, the ground at one depth; so a
frame is one compiled pass over its pixels (``_kernels.frame``): each pixel's ground point, a
bilinear sample of the distance field below, its colour.

- **Ground.** What is sampled is a **distance field**: for each texel (0.125 m) the exact
  signed distance (mm, int16) from its centre to the red line. The distance to a smooth curve is
  linear across a texel, so bilinear interpolation recovers it to a millimetre at any
  magnification, and a pixel's colour follows from it (red line, asphalt, grass). Each edge is
  blended over the pixel's footprint, measured as the distance's change to the neighbouring
  pixels, so the distant line is pre-filtered instead of shimmering and the near line is crisp.
  The asphalt carries a generated fine-gravel texture (one repeat per 0.305 m, as Gazebo's
  ``Asphalt_New``), sampled from a mip level chosen per row by the pixel footprint.
- **Walls.** Each image column is a vertical plane through the camera; it meets the walls first
  where its ground ray's distance to the line reaches the wall offset (the ray is sampled at
  geometric depths and the crossing interpolated). A wall taller than the camera hides
  everything behind it, so the first crossing is all a column needs: the wall spans the rows
  from ``cy - (wall_height - h) fx / Z`` to ``cy + h fx / Z`` (Z: the crossing's depth along the
  optical axis), ground below, sky above. Walls are lit as Gazebo's sun lights them: ambient +
  diffuse x (face normal . direction to the sun).
- **Clip.** Nothing nearer than 0.1 m or farther than 15 m along the optical axis (Gazebo's clip
  planes): beyond the far clip is background (the sky colour).

Camera model (f1_renault's ``cam_f1_left``): 640x480, horizontal FOV 1.57 rad (fx = fy = 320.26
px), principal point at the image centre, no tilt, mounted 0.45 m ahead, 0.04 m left of and
0.10 m above the car's origin (its odometry pose); the height is per circuit (``camera_height``).
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, replace

import cv2
import numpy as np

from pilotnet_brains.circuits import Circuit

#: Distance field: texel size (m), unit of its values (m: a quarter millimetre, so the 0.10 m
#: line's edges are placed to within a pixel even at the bottom row, 0.13 m ahead) and clamp value
#: (units: 8 m, beyond any road half-width + 2 m).
FIELD_TEXEL = 0.125
FIELD_UNIT = 0.00025
FIELD_CLAMP = 32000
#: Colour lookup: distance resolution 1 mm up to LUT_MAX_MM (beyond: grass), NG gradient levels.
LUT_MAX_MM = 8191
NG = 14
#: Asphalt texture: texels per tile side (a power of two), tile size (m), its contrast (std of
#: the grey-level offset), and the highest mip level used (coarser: the mean colour).
TEXTURE_SIZE = 128
TEXTURE_REPEAT = 0.305
TEXTURE_STD = 9.0
#: Wall ray-cast: samples per column ray, at geometric depths from the near to the far clip.
WALL_SAMPLES = 96
#: Gazebo's default sun (direction of travel of the light) and scene lighting.
SUN_DIRECTION = (-0.5, 0.1, -0.9)
AMBIENT = 0.4
DIFFUSE = 0.8


@dataclass(frozen=True)
class CameraConfig:
    """Pinhole camera on the car. Sizes in pixels, angles in rad, lengths in m."""

    width: int = 640
    height: int = 480
    hfov: float = 1.57
    mount_height: float = 0.10   # m above the road
    mount_forward: float = 0.45  # m ahead of the car's origin (odom pose)
    mount_left: float = 0.04     # m left of the car's origin
    near_clip: float = 0.1       # m
    far_clip: float = 15.0       # m (depth along the optical axis, like Gazebo's clip plane)

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

    def position(self, pose) -> tuple[float, float]:
        """World (x, y) m of the camera for the car at ``pose`` (x, y, yaw)."""
        x, y, yaw = (float(v) for v in pose)
        c, s = math.cos(yaw), math.sin(yaw)
        return (x + self.mount_forward * c - self.mount_left * s, y + self.mount_forward * s + self.mount_left * c)

    @classmethod
    def for_circuit(cls, circuit: Circuit, **overrides) -> CameraConfig:
        """The car's camera at the circuit's camera height (``overrides``: other fields)."""
        return cls(**{"mount_height": circuit.camera_height, **overrides})


def _cache_dir() -> str:
    return os.environ.get("PILOTNET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pilotnet_brains")


def distance_field(circuit: Circuit, texel: float = FIELD_TEXEL, use_cache: bool = True
                   ) -> tuple[np.ndarray, tuple[float, float], float]:
    """Signed distance (int16 in FIELD_UNIT m, positive left of the driving direction, clamped at
    +-FIELD_CLAMP) from each texel centre to the red line.

    Returns (field (H,W) int16, origin (x0, y0) m of texel (0, 0)'s centre, texel m); texel
    (r, c) is at world (x0 + c*texel, y0 + r*texel). Exact (segment projection) within the road
    band plus 2 m; beyond, the band's edge value with the side's sign (inside or outside the
    loop), so the field stays continuous. Signed, it is linear across the line itself, so the
    line's edges interpolate exactly. Cached on disk (keyed by the centerline): Montreal takes ~1 s.
    """
    margin = circuit.road_width
    x0, y0, x1, y1 = circuit.bounds(margin=margin)
    w = int(math.ceil((x1 - x0) / texel)) + 1
    h = int(math.ceil((y1 - y0) / texel)) + 1
    key = hashlib.sha256(np.ascontiguousarray(circuit.polyline).tobytes()
                         + repr((texel, circuit.road_width, FIELD_CLAMP, FIELD_UNIT, "signed", 4)).encode()).hexdigest()[:20]
    path = os.path.join(_cache_dir(), f"field_{circuit.name}_{key}.npy")
    if use_cache and os.path.isfile(path):
        try:
            field = np.load(path)
            if field.shape == (h, w) and field.dtype == np.int16:
                return field, (x0, y0), texel
        except (OSError, ValueError):
            pass
    band = circuit.road_width / 2 + 2.0
    mask = np.zeros((h, w), np.uint8)
    pts = np.round((circuit.polyline - (x0, y0)) / texel * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(mask, [pts], True, 255, thickness=int(math.ceil(2 * band / texel)) + 2,
                  lineType=cv2.LINE_8, shift=4)
    rows, cols = np.nonzero(mask)
    # Beyond the band: inside the loop is the right-hand side of a clockwise loop (negative),
    # the left-hand side of an anticlockwise one.
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [pts], 1, lineType=cv2.LINE_8, shift=4)
    p = circuit.polyline
    area = 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))
    inside_sign = 1 if area > 0 else -1
    edge = int(round(band / FIELD_UNIT))
    field = np.where(inside.astype(bool), inside_sign * edge, -inside_sign * edge).astype(np.int16)
    xy = np.stack([x0 + cols * texel, y0 + rows * texel], axis=1)
    for i in range(0, len(xy), 500_000):
        _, lat = circuit.project(xy[i:i + 500_000])
        field[rows[i:i + 500_000], cols[i:i + 500_000]] = np.clip(
            np.round(lat / FIELD_UNIT), -FIELD_CLAMP, FIELD_CLAMP).astype(np.int16)
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
class Look:
    """What the world looks like: colours (RGB 0-255, albedo), the road and line half-widths (m),
    the walls' height (m, 0 = none), the asphalt texture's contrast and the light (ambient and
    diffuse intensity, the sun's direction of travel). ``Look.of(circuit)`` is the circuit as
    built; ``varied`` a seeded domain-randomised variation for training."""

    road: tuple[int, int, int]
    line: tuple[int, int, int]
    wall: tuple[int, int, int]
    ground: tuple[int, int, int]
    sky: tuple[int, int, int]
    road_half: float
    line_half: float
    wall_height: float
    texture: float = TEXTURE_STD
    ambient: float = AMBIENT
    diffuse: float = DIFFUSE
    sun: tuple[float, float, float] = SUN_DIRECTION

    @classmethod
    def of(cls, circuit: Circuit) -> Look:
        s = circuit.style
        return cls(tuple(s["road"]), tuple(s["line"]), tuple(s["wall"]), tuple(s["ground"]), tuple(s["sky"]),
                   circuit.road_width / 2, circuit.line_width / 2, circuit.wall_height)

    def varied(self, rng: np.random.Generator) -> Look:
        """A seeded random variation: road width 2.3-3.5 m, line 0.08-0.16 m, wall colour from
        white to dark grey or tinted, asphalt tone and texture, sky, sun direction and strength."""
        tint = rng.uniform(0.92, 1.08, 3)

        def jitter(c, amount, gain=1.0):
            c = np.asarray(c, np.float64) * gain * tint + rng.uniform(-amount, amount, 3)
            return tuple(int(v) for v in np.clip(c, 0, 255))

        wall = tuple(int(v) for v in np.clip(rng.uniform(110, 255) * rng.uniform(0.9, 1.1, 3), 0, 255))
        az = rng.uniform(-math.pi, math.pi)
        el = rng.uniform(0.6, 1.4)                          # sun elevation (rad)
        return replace(
            self, road=jitter(self.road, 12, rng.uniform(0.7, 1.5)), line=jitter(self.line, 20, rng.uniform(0.75, 1.0)),
            wall=wall if self.wall_height > 0 else self.wall, ground=jitter(self.ground, 30),
            sky=jitter(self.sky, 50, rng.uniform(0.8, 1.3)), road_half=rng.uniform(1.15, 1.75),
            line_half=rng.uniform(0.04, 0.08), texture=rng.uniform(0.3, 1.6) * TEXTURE_STD,
            ambient=rng.uniform(0.3, 0.6), diffuse=rng.uniform(0.5, 1.0),
            sun=(-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), -math.sin(el)))

    def light(self, normal) -> float:
        """Brightness factor (0-1) of a surface with unit ``normal`` (x, y, z) under the sun."""
        sx, sy, sz = self.sun
        n = math.sqrt(sx * sx + sy * sy + sz * sz) or 1.0
        cos = -(normal[0] * sx + normal[1] * sy + normal[2] * sz) / n
        return min(1.0, self.ambient + self.diffuse * max(cos, 0.0))


def colour_lut(look: Look, ground_light: float | None = None) -> np.ndarray:
    """(LUT_MAX_MM+1, NG, 4) uint8: colour (RGB) and asphalt share (0-255) of a ground pixel at
    distance d mm from the red line with gradient level g.

    Gradient level g means the distance changes by about 2**g mm across the pixel; each edge
    (line/asphalt, asphalt/grass) is blended linearly over that width.
    """
    light = look.light((0.0, 0.0, 1.0)) if ground_light is None else ground_light
    d = np.arange(LUT_MAX_MM + 1, dtype=np.float64)[:, None] / 1000.0
    g = (2.0 ** np.arange(NG, dtype=np.float64))[None, :] / 1000.0

    def cover(edge):  # fraction of the pixel inside distance < edge
        return np.clip((edge - d) / g + 0.5, 0.0, 1.0)[..., None]

    road, line = cover(look.road_half), cover(look.line_half)
    c = np.broadcast_to(np.asarray(look.ground, np.float64), (LUT_MAX_MM + 1, NG, 3))
    c = c + (np.asarray(look.road, np.float64) - c) * road
    c = c + (np.asarray(look.line, np.float64) - c) * line
    out = np.empty((LUT_MAX_MM + 1, NG, 4), np.uint8)
    out[..., :3] = np.clip(np.round(c * light), 0, 255)
    out[..., 3] = np.clip(np.round((road - line)[..., 0] * 255 * light), 0, 255)
    return out


def gravel_texture(size: int = TEXTURE_SIZE, seed: int = 0) -> list[np.ndarray]:
    """A tileable fine-gravel texture: grey-level offsets (float32, zero mean, unit std) of one
    ``size`` x ``size`` tile, and its mip levels (each the 2x2 mean of the previous, 4 texels
    smallest). Stones of a few texels over a finer grain, generated from seeded noise."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    k = np.hypot(*np.meshgrid(f, f))
    t = np.zeros((size, size))
    for scale, weight in ((0.03, 0.35), (0.1, 0.7), (0.3, 1.0)):   # periodic by construction (FFT)
        spectrum = np.fft.fft2(rng.normal(size=(size, size))) * np.exp(-(k / scale) ** 2)
        t += weight * np.real(np.fft.ifft2(spectrum)) / max(np.std(np.real(np.fft.ifft2(spectrum))), 1e-12)
    t = np.sign(t) * np.abs(t) ** 0.8
    t = ((t - t.mean()) / t.std()).astype(np.float32)
    levels = [t]
    while levels[-1].shape[0] > 4:
        a = levels[-1]
        levels.append(((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4).astype(np.float32))
    return levels


def _packed_texture() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gravel texture's mip levels packed flat for the kernels: (values, offsets, sizes).
    Each n-square level is stored (n+1)-square, its first row and column repeated after the
    last (the tile wraps), so a bilinear sample's four texels are at fixed offsets."""
    levels = [np.pad(t, ((0, 1), (0, 1)), mode="wrap") for t in gravel_texture()]
    sizes = np.array([t.shape[0] - 1 for t in levels], np.int64)
    offsets = np.concatenate([[0], np.cumsum((sizes + 1) ** 2)[:-1]]).astype(np.int64)
    return np.concatenate([t.ravel() for t in levels]).astype(np.float32), offsets, sizes


def _cell_corners(field: np.ndarray, clamp: int) -> np.ndarray:
    """(H+1, W+1) int64: the four int16 corners of each cell of ``field`` packed into one word
    (bits 0-15: (y, x), 16-31: (y, x+1), 32-47: (y+1, x), 48-63: (y+1, x+1)), so the renderer's
    bilinear sample is one load; the (H-1) x (W-1) cells framed by a border of cells whose
    corners are all ``clamp`` (what the field reads outside)."""
    def pack(f00, f01, f10, f11):
        return (f00 & 0xFFFF) | ((f01 & 0xFFFF) << 16) | ((f10 & 0xFFFF) << 32) | (f11 << 48)

    f = field.astype(np.int64)
    c = np.int64(clamp)
    return np.pad(pack(f[:-1, :-1], f[:-1, 1:], f[1:, :-1], f[1:, 1:]), 1, constant_values=pack(c, c, c, c))


def _field_slope(field: np.ndarray) -> float:
    """The largest change (field units) between two neighbouring texels of ``field``, at least 1:
    the most its bilinear interpolation changes per texel moved along x or y."""
    f = field.astype(np.int32)
    return float(max(1, np.abs(np.diff(f, axis=0)).max(initial=0), np.abs(np.diff(f, axis=1)).max(initial=0)))


class Renderer:
    """Renders the camera image (H,W,3 uint8 RGB) of a circuit from a car pose.

    ``render(pose)`` takes the car pose (x m, y m, yaw rad; world frame). ``set_look`` changes the
    world's appearance (e.g. a seeded variation); ``noise_std`` (grey levels) adds seeded pixel
    noise. Deterministic: the same pose and look give the same bytes.
    """

    _texture = None

    def __init__(self, circuit: Circuit, camera: CameraConfig | None = None, look: Look | None = None,
                 use_cache: bool = True):
        from pilotnet_brains.sim import _kernels

        self._k = _kernels
        if Renderer._texture is None:
            Renderer._texture = _packed_texture()
        self.circuit = circuit
        self.camera = cam = camera or CameraConfig.for_circuit(circuit)
        self.field, (self._x0, self._y0), self._texel = distance_field(circuit, use_cache=use_cache)
        self.base_look = Look.of(circuit)
        self.row0 = max(cam.first_ground_row, int(math.floor(cam.cy)) + 1)
        rows = np.arange(self.row0, cam.height, dtype=np.float64)
        self._depth = cam.mount_height * cam.fx / (rows - cam.cy)            # forward (m) per row
        self._lateral = -(np.arange(cam.width, dtype=np.float64) - cam.cx) / cam.fx   # left (m) per m forward
        # Mip level per row from the pixel footprint (geometric mean of its width and depth, m);
        # -1 beyond the coarsest level: the texture's mean.
        foot = np.sqrt((self._depth / cam.fx) * (self._depth ** 2 / (cam.mount_height * cam.fx)))
        level = np.round(np.log2(np.maximum(foot / (TEXTURE_REPEAT / TEXTURE_SIZE), 1.0))).astype(np.int64)
        self._row_level = np.where(level < len(self._texture[1]), level, -1).astype(np.int64)
        self._quad = _cell_corners(self.field, FIELD_CLAMP)
        self._slope = _field_slope(self.field)
        self._dring = np.empty((3, cam.width), np.float32)
        self._tring = np.empty((2, cam.width), np.float32)
        self._wall_rgb = np.zeros((cam.width, 3), np.uint8)
        self._wall_depths = np.geomspace(cam.near_clip, cam.far_clip, WALL_SAMPLES)
        self._no_wall = np.full(cam.width, np.inf)
        self.set_look(look or self.base_look)

    # ------------------------------------------------------------------ appearance
    def set_look(self, look: Look) -> None:
        self.look = look
        light = look.light((0.0, 0.0, 1.0))
        # ground, asphalt, line colours lit by the sun; the texture's gain; edges in field units
        self._colours = (np.array([look.ground, look.road, look.line], np.float32) * np.float32(light))
        self._tex_gain = float(look.texture * light)
        self._edges = np.array([look.road_half / FIELD_UNIT, look.line_half / FIELD_UNIT], np.float32)
        self._sky = np.asarray(look.sky, np.uint8)
        self._wall_albedo = np.asarray(look.wall, np.float64)
        self._sun = np.asarray(look.sun, np.float64)

    # ------------------------------------------------------------------ geometry
    def _pose_args(self, pose) -> tuple:
        x, y = self.camera.position(pose)
        yaw = float(pose[2])
        return (self._quad, self._x0, self._y0, 1.0 / self._texel, x, y, math.cos(yaw), math.sin(yaw))

    def wall_depths(self, pose) -> np.ndarray:
        """Per column, the depth (m along the optical axis) of the wall it sees; inf: none
        within the far clip (or no walls)."""
        if self.look.wall_height <= 0:
            return self._no_wall
        return self._k.wall_hits(*self._pose_args(pose), self._lateral, self._wall_depths,
                                 self.look.road_half / FIELD_UNIT, self._slope)

    def _wall_colours(self, pose, depth: np.ndarray) -> np.ndarray:
        """(W, 3) uint8: each column's wall colour lit by the sun on the face it sees (black: no
        wall); the face's normal from the distance field's gradient there."""
        look = self.look
        x, y = self.camera.position(pose)
        yaw = float(pose[2])
        return self._k.wall_colours(self.field, self._x0, self._y0, self._texel, FIELD_CLAMP, FIELD_UNIT, x, y,
                                    math.cos(yaw), math.sin(yaw), self._lateral, depth, self._wall_albedo,
                                    self._sun, look.ambient, look.diffuse, self._wall_rgb)

    # ------------------------------------------------------------------ frames
    def render(self, pose, out: np.ndarray | None = None, noise_std: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """The RGB frame (H,W,3 uint8) seen from the car at ``pose`` (x, y, yaw)."""
        cam = self.camera
        depth = self.wall_depths(pose)
        if out is None:
            out = np.empty((cam.height, cam.width, 3), np.uint8)
        t, off, n = self._texture
        self._k.frame(*self._pose_args(pose), self._depth, self._lateral, self._row_level, t, off, n, TEXTURE_REPEAT,
                      self._tex_gain, self._colours, self._edges, depth, cam.cy, cam.mount_height * cam.fx,
                      (self.look.wall_height - cam.mount_height) * cam.fx, self._wall_colours(pose, depth),
                      self._sky, self._dring, self._tring, out)
        if noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng()
            noise = rng.normal(0.0, noise_std, out.shape).astype(np.float32)
            out[:] = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        return out


def render_top_view(circuit: Circuit, px_per_m: float = 2.0, start_pose: bool = True,
                    trajectory: np.ndarray | None = None, car_pose=None, base: np.ndarray | None = None
                    ) -> np.ndarray:
    """Top-down RGB picture of the circuit (north up, ``px_per_m`` pixels per metre): asphalt, red
    line, walls (drawn 0.15 m thick behind their inner face), grass, the start pose arrow, and a
    trajectory (N,2) m / a car pose if given. ``base``: a picture this function returned before
    without overlays (same circuit and scale), reused instead of re-rendering."""
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
        d = np.abs(cv2.remap(field, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.int32))
        d = np.round(d * (FIELD_UNIT * 1000.0)).astype(np.int32)          # mm
        look = Look.of(circuit)
        level = int(np.clip(round(math.log2(max(1000.0 / px_per_m, 1.0))), 0, NG - 1))
        # Thin lines stay visible at any scale: at least a pixel wide.
        half_px = 500.0 / px_per_m / 1000.0
        look = replace(look, line_half=max(look.line_half, half_px))
        img = np.ascontiguousarray(colour_lut(look, ground_light=1.0)[np.minimum(d, LUT_MAX_MM), level, :3])
        if circuit.wall_height > 0:
            dm = d.astype(np.float64) / 1000.0
            wall = (dm >= look.road_half) & (dm < look.road_half + max(0.15, 2 * half_px))
            img[wall] = np.asarray(look.wall, np.uint8) if sum(look.wall) < 600 else (120, 120, 120)

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
