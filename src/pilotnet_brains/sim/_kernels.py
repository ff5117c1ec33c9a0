"""The renderer's per-pixel loops, compiled by numba (imported by ``Renderer`` on first use, so
modules that only need the camera geometry do not pay numba's import).

The camera's ground point of a pixel is ``cam + depth * (cos, sin) + lateral * depth * (-sin,
cos)`` (world metres; ``depth`` per image row, ``lateral`` per column, camera frame forward and
left). ``field`` is the signed distance field (int16, from the red line, in the renderer's
field unit; texel (0, 0) at world (fx0, fy0), ``inv_texel`` texels per metre), sampled
bilinearly and taken unsigned; outside it, ``clamp``. Distances below are in field units.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _field(field, gx, gy, clamp):  # pragma: no cover - compiled
    ix = int(math.floor(gx))
    iy = int(math.floor(gy))
    if ix < 0 or iy < 0 or ix >= field.shape[1] - 1 or iy >= field.shape[0] - 1:
        return float(clamp)
    tx = gx - ix
    ty = gy - iy
    a = float(field[iy, ix]) + (float(field[iy, ix + 1]) - float(field[iy, ix])) * tx
    b = float(field[iy + 1, ix]) + (float(field[iy + 1, ix + 1]) - float(field[iy + 1, ix])) * tx
    return abs(a + (b - a) * ty)


@njit(cache=True, nogil=True)
def wall_hits(field, fx0, fy0, inv_texel, clamp, camx, camy, cs, sn, lateral, depths,
              threshold):  # pragma: no cover - compiled
    """Depth (m, along the optical axis) at which each column's ground ray first reaches the
    walls (its distance to the red line reaches ``threshold``), sampled at ``depths`` (K,) m,
    increasing, and interpolated linearly between the two samples around the crossing; inf where
    the ray stays inside the road up to the last depth (the far clip)."""
    w = lateral.shape[0]
    out = np.full(w, np.inf)
    for c in range(w):
        lat = lateral[c]
        prev = 0.0
        for i in range(depths.shape[0]):
            z = depths[i]
            wx = camx + z * cs - lat * z * sn
            wy = camy + z * sn + lat * z * cs
            d = _field(field, (wx - fx0) * inv_texel, (wy - fy0) * inv_texel, clamp)
            if d >= threshold:
                if i == 0:
                    out[c] = z
                else:
                    t = (threshold - prev) / max(d - prev, 1e-9)
                    out[c] = depths[i - 1] + t * (z - depths[i - 1])
                break
            prev = d
    return out


@njit(cache=True, nogil=True)
def ground(field, fx0, fy0, inv_texel, clamp, camx, camy, cs, sn, depth, lateral, row_level,
           tex, tex_off, tex_n, tex_repeat, dist_out, tex_out):  # pragma: no cover - compiled
    """For each ground pixel (rows with ``depth`` (R,) m, columns with ``lateral`` (W,)): its
    distance to the red line (into ``dist_out`` (R, W) float32) and the asphalt
    texture's value (into ``tex_out`` (R, W) float32) from mip level ``row_level[row]``
    (-1: the mean, 0). ``tex`` is the mip pyramid packed flat: level l is a ``tex_n[l]``-square
    tile starting at ``tex_off[l]``, one tile per ``tex_repeat`` m, tiled over the world."""
    w = lateral.shape[0]
    for i in range(depth.shape[0]):
        z = depth[i]
        lvl = row_level[i]
        n = tex_n[lvl] if lvl >= 0 else 0
        off = tex_off[lvl] if lvl >= 0 else 0
        k = n / tex_repeat
        mask = n - 1
        for c in range(w):
            lz = lateral[c] * z
            wx = camx + z * cs - lz * sn
            wy = camy + z * sn + lz * cs
            d = _field(field, (wx - fx0) * inv_texel, (wy - fy0) * inv_texel, clamp)
            dist_out[i, c] = d
            if n == 0:
                tex_out[i, c] = 0.0
                continue
            u = wx * k - 0.5
            v = wy * k - 0.5
            iu = int(math.floor(u))
            iv = int(math.floor(v))
            tu = u - iu
            tv = v - iv
            u0 = iu & mask
            u1 = (iu + 1) & mask
            r0 = off + (iv & mask) * n
            r1 = off + ((iv + 1) & mask) * n
            a = tex[r0 + u0] + (tex[r0 + u1] - tex[r0 + u0]) * tu
            b = tex[r1 + u0] + (tex[r1 + u1] - tex[r1 + u0]) * tu
            tex_out[i, c] = a + (b - a) * tv


@njit(cache=True, nogil=True)
def compose(dist, tex, tex_gain, row0, colours, edges, top, base, wall_rgb, sky, out):  # pragma: no cover
    """Write the frame ``out`` (H, W, 3) uint8.

    ``dist`` (H - row0, W) float32: distance to the red line of the ground seen by each pixel of
    rows row0..H-1; ``tex`` (same shape) float32: the asphalt texture (unit std), scaled by
    ``tex_gain`` grey levels; ``colours`` (3, 3) float32: lit grass, asphalt and line RGB;
    ``edges`` (2,): the asphalt's and the line's half-widths. Each edge is blended over the
    pixel's footprint: the fraction of the pixel inside distance e is (e - d) / g + 1/2, clipped
    to [0, 1], with g the largest change of the distance to a neighbouring pixel (anti-aliasing:
    the far line is pre-filtered, the near line crisp). ``top``/``base`` (W,) float: image rows
    (fractional) of each column's wall top and base (a pixel whose centre row r has top <= r <
    base shows the wall, one with r >= base the ground, r < top the sky); ``wall_rgb`` (W, 3) uint8
    each column's lit wall colour; ``sky`` (3,) uint8.
    """
    h, w = out.shape[0], out.shape[1]
    nr = dist.shape[0]
    road_e = edges[0]
    line_e = edges[1]
    gain = np.float32(tex_gain)
    for r in range(h):
        i = r - row0
        for c in range(w):
            if i >= 0 and r >= base[c]:
                d = dist[i, c]
                if c > 0:
                    g = abs(d - dist[i, c - 1])
                else:
                    g = abs(dist[i, c + 1] - d)
                if i > 0:
                    g = max(g, abs(d - dist[i - 1, c]))
                if i + 1 < nr:
                    g = max(g, abs(dist[i + 1, c] - d))
                g = max(g, np.float32(1.0))
                cr = min(max((road_e - d) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
                cl = min(max((line_e - d) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
                n = tex[i, c] * gain * (cr - cl) + np.float32(0.5)
                for k in range(3):
                    v = colours[0, k] + (colours[1, k] - colours[0, k]) * cr
                    v = v + (colours[2, k] - v) * cl + n
                    out[r, c, k] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
            elif r >= top[c]:
                out[r, c, 0] = wall_rgb[c, 0]
                out[r, c, 1] = wall_rgb[c, 1]
                out[r, c, 2] = wall_rgb[c, 2]
            else:
                out[r, c, 0] = sky[0]
                out[r, c, 1] = sky[1]
                out[r, c, 2] = sky[2]
    return out
