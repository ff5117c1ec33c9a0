"""The renderer's per-pixel loops, compiled by numba (imported by ``Renderer`` on first use, so
modules that only need the camera geometry do not pay numba's import).

The camera's ground point of a pixel is ``cam + depth * (cos, sin) + lateral * depth * (-sin,
cos)`` (world metres; ``depth`` per image row, ``lateral`` per column, camera frame forward and
left). ``field`` is the signed distance field (int16, from the red line, in the renderer's
field unit; texel (0, 0) at world (fx0, fy0), ``inv_texel`` texels per metre), sampled
bilinearly and taken unsigned; outside it, ``clamp``. Distances below are in field units. The
frame and the wall ray-cast read it as ``quad``, its cells' corners packed one word per cell
(``render._cell_corners``).

The arithmetic of each pixel is fixed (operation order, float32 vs float64, no fastmath): the
frames are bit-identical to those networks were trained on. Speed comes from the loops' shape
instead: one pass per frame, loops LLVM vectorises (no branches, no possibly aliasing stores
next to gathers, no negative-index wraparound), one load per bilinear sample.
"""
from __future__ import annotations

import math

import numpy as np
from numba import carray, njit, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic

#: Columns per stack block of the ground sampler.
CHUNK = 64


def _stack_buffer(dtype):
    """An intrinsic ``f(size)``: a ``dtype`` buffer of ``size`` (a literal) elements on the
    kernel's stack, as a pointer for ``numba.carray``. LLVM can prove that stores into it alias
    neither the distance field nor the texture, so a loop that gathers from them and writes
    here is vectorised (it is not when it writes into an argument array)."""
    @intrinsic
    def stack(typingctx, size):  # pragma: no cover - compiled
        if not isinstance(size, types.IntegerLiteral):
            return None

        def impl(context, builder, signature, args):
            n = context.get_constant(types.intp, size.literal_value)
            return cgutils.alloca_once(builder, context.get_value_type(dtype), size=n)
        return types.CPointer(dtype)(size), impl
    return stack


_stack_f32 = _stack_buffer(types.float32)
_stack_f64 = _stack_buffer(types.float64)


@njit(cache=True, nogil=True, inline="always")
def _field(quad, gx, gy, clamp):  # pragma: no cover - compiled
    """Unsigned distance at texel coordinates (gx, gy), bilinear; ``clamp`` outside the field.

    ``quad`` (H-1, W-1) int64 packs the four int16 corners of each field cell (bits 0-15: (y, x),
    16-31: (y, x+1), 32-47: (y+1, x), 48-63: (y+1, x+1)), so a sample is one load; the index is
    clamped into the field and unsigned (no negative-index wraparound) and the clamp value
    selected after, so a loop of samples has no branch and vectorises."""
    fw = quad.shape[1]
    fh = quad.shape[0]
    ix = int(math.floor(gx))
    iy = int(math.floor(gy))
    inside = (ix >= 0) & (iy >= 0) & (ix < fw) & (iy < fh)
    q = quad[uint64(min(max(iy, 0), fh - 1)), uint64(min(max(ix, 0), fw - 1))]
    f00 = float(np.int16(q))
    f01 = float(np.int16(q >> 16))
    f10 = float(np.int16(q >> 32))
    f11 = float(q >> 48)
    tx = gx - ix
    ty = gy - iy
    a = f00 + (f01 - f00) * tx
    b = f10 + (f11 - f10) * tx
    v = abs(a + (b - a) * ty)
    return v if inside else float(clamp)


@njit(cache=True, nogil=True)
def wall_hits(quad, fx0, fy0, inv_texel, clamp, camx, camy, cs, sn, lateral, depths,
              threshold):  # pragma: no cover - compiled
    """Depth (m, along the optical axis) at which each column's ground ray first reaches the
    walls (its distance to the red line reaches ``threshold``), sampled at ``depths`` (K,) m,
    increasing, and interpolated linearly between the two samples around the crossing; inf where
    the ray stays inside the road up to the last depth (the far clip).

    Columns are marched in blocks of CHUNK, one depth at a time for the whole block (a
    vectorised loop into a stack buffer), until every column of the block has crossed."""
    w = lateral.shape[0]
    out = np.full(w, np.inf)
    cur = carray(_stack_f64(CHUNK), (CHUNK,))
    prev = carray(_stack_f64(CHUNK), (CHUNK,))
    for c0 in range(0, w, CHUNK):
        m = min(CHUNK, w - c0)
        left = m
        for i in range(depths.shape[0]):
            z = depths[i]
            for j in range(m):
                lat = lateral[c0 + j]
                wx = camx + z * cs - lat * z * sn
                wy = camy + z * sn + lat * z * cs
                cur[j] = _field(quad, (wx - fx0) * inv_texel, (wy - fy0) * inv_texel, clamp)
            for j in range(m):
                d = cur[j]
                if d >= threshold and out[c0 + j] == np.inf:
                    if i == 0:
                        out[c0 + j] = z
                    else:
                        t = (threshold - prev[j]) / max(d - prev[j], 1e-9)
                        out[c0 + j] = depths[i - 1] + t * (z - depths[i - 1])
                    left -= 1
                prev[j] = d
            if left == 0:
                break
    return out


@njit(cache=True, nogil=True, inline="always")
def _ground_row(quad, fx0, fy0, inv_texel, clamp, ax, ay, cs, sn, z, lateral, tex, off, n, k,
                dist, texrow, dbuf, tbuf):  # pragma: no cover - compiled
    """One image row of ground at depth ``z`` (m; ``ax``, ``ay``: the camera's position plus ``z``
    along the optical axis): per column its distance to the red line (into ``dist`` (W,) float32,
    ``clamp`` outside the field) and the asphalt texture's value (into ``texrow``), from the mip
    level that is an ``n``-square tile at ``off`` (``k`` = n / repeat texels per m; n = 0: the
    mean, 0).

    ``quad``: the field's packed cells (see ``_field``). Columns are done in blocks of CHUNK
    through the stack buffers ``dbuf`` and ``tbuf``, which lets LLVM vectorise the loop with
    gathers; texture indices are unsigned (no negative-index wraparound)."""
    w = lateral.shape[0]
    mask = n - 1
    for c0 in range(0, w, CHUNK):
        m = min(CHUNK, w - c0)
        for j in range(m):
            lz = lateral[c0 + j] * z
            wx = ax - lz * sn
            wy = ay + lz * cs
            dbuf[j] = _field(quad, (wx - fx0) * inv_texel, (wy - fy0) * inv_texel, clamp)
            if n > 0:
                u = wx * k - 0.5
                vv = wy * k - 0.5
                iu = int(math.floor(u))
                iv = int(math.floor(vv))
                tu = u - iu
                tv = vv - iv
                u0 = uint64(iu & mask)
                u1 = uint64((iu + 1) & mask)
                r0 = uint64(off + (iv & mask) * n)
                r1 = uint64(off + ((iv + 1) & mask) * n)
                a2 = tex[r0 + u0] + (tex[r0 + u1] - tex[r0 + u0]) * tu
                b2 = tex[r1 + u0] + (tex[r1 + u1] - tex[r1 + u0]) * tu
                tbuf[j] = a2 + (b2 - a2) * tv
            else:
                tbuf[j] = 0.0
        for j in range(m):
            dist[c0 + j] = dbuf[j]
            texrow[c0 + j] = tbuf[j]


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _channel(orow, o, cr, cl, n, grass, road, line, gm, wm, wall, sky):  # pragma: no cover
    """Write byte ``o`` of an image row: the ground's channel (grass + (asphalt - grass) ``road``
    blended by the asphalt and line coverages ``cr``, ``cl``, plus the texture offset ``n``)
    where the byte mask ``gm`` is 255; else the wall's byte where ``wm`` is 255; else the sky's.
    Masks, not branches, so the row loop vectorises."""
    v = grass + road * cr
    v = v + (line - v) * cl + n
    gv = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
    orow[o] = (gv & gm) | (((wall[o] & wm) | (sky & ~wm)) & ~gm)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _pixel(orow, o, d, g, t, gain, road_e, line_e, col, gm, wm, wall, sky):  # pragma: no cover
    """Write pixel ``o`` (its first byte in ``orow``) of an image row: the ground colour of
    distance ``d`` with neighbour gradient ``g`` and texture ``t`` (see ``frame``) where the byte
    mask ``gm`` is 255, else the wall (``wall``: the row's wall colours) where ``wm`` is 255, else
    the sky (``sky``: 3 values). ``col``: 9 values, grass, asphalt - grass and line RGB."""
    g = max(g, np.float32(1.0))
    cr = min(max((road_e - d) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
    cl = min(max((line_e - d) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
    n = t * gain * (cr - cl) + np.float32(0.5)
    _channel(orow, o, cr, cl, n, col[0], col[3], col[6], gm, wm, wall, sky[0])
    _channel(orow, o + 1, cr, cl, n, col[1], col[4], col[7], gm, wm, wall, sky[1])
    _channel(orow, o + 2, cr, cl, n, col[2], col[5], col[8], gm, wm, wall, sky[2])


@njit(cache=True, nogil=True, error_model="numpy")
def frame(quad, fx0, fy0, inv_texel, clamp, camx, camy, cs, sn, depth, lateral, row_level,
          tex, tex_off, tex_n, tex_repeat, tex_gain, colours, edges, ground_start, wall_start,
          wall_rgb, sky, dring, tring, out):  # pragma: no cover - compiled
    """Write the frame ``out`` (H, W, 3) uint8 in one pass over its rows.

    Ground rows are the last ``len(depth)`` rows (``depth`` (R,) m per row, ``lateral`` (W,) per
    column); ``row_level`` (R,) their mip level (-1: the texture's mean); ``tex`` the mip pyramid
    packed flat (level l: a ``tex_n[l]``-square tile at ``tex_off[l]``, one tile per
    ``tex_repeat`` m, tiled over the world), scaled by ``tex_gain`` grey levels. Each row's
    distances are sampled into the ring ``dring`` (3, W) float32 (and its texture into ``tring``
    (2, W)) one row ahead of its shading, since a pixel's footprint needs the rows above and
    below: each edge (asphalt half-width ``edges[0]``, line half-width ``edges[1]``) is blended
    over the fraction (e - d) / g + 1/2, clipped to [0, 1], with g the largest change of the
    distance to a neighbouring pixel, at least 1 (anti-aliasing: the far line is pre-filtered,
    the near line crisp). ``colours`` (3, 3) float32: lit grass, asphalt and line RGB.

    Column c shows the ground in rows >= ``ground_start[c]``, its wall (``wall_rgb`` (W, 3)
    uint8) in rows >= ``wall_start[c]`` above that, the sky (``sky`` (3,) uint8) above the wall.
    """
    h, w = out.shape[0], out.shape[1]
    nr = depth.shape[0]
    row0 = h - nr
    gain = np.float32(tex_gain)
    road_e = edges[0]
    line_e = edges[1]
    col = (colours[0, 0], colours[0, 1], colours[0, 2], colours[1, 0] - colours[0, 0],
           colours[1, 1] - colours[0, 1], colours[1, 2] - colours[0, 2], colours[2, 0], colours[2, 1],
           colours[2, 2])
    sky_rgb = (sky[0], sky[1], sky[2])
    dbuf = carray(_stack_f32(CHUNK), (CHUNK,))
    tbuf = carray(_stack_f32(CHUNK), (CHUNK,))
    flat = out.reshape(h * w * 3)
    wall = wall_rgb.reshape(w * 3)
    zero = np.float32(0.0)
    for r in range(row0):
        orow = flat[r * w * 3:(r + 1) * w * 3]
        for c in range(w):
            _pixel(orow, 3 * c, zero, zero, zero, gain, road_e, line_e, col, np.uint8(0),
                   np.uint8(0) - np.uint8(r >= wall_start[c]), wall, sky_rgb)
    for i in range(-1, nr):
        j = i + 1
        if j < nr:
            z = depth[j]
            lvl = row_level[j]
            n = tex_n[lvl] if lvl >= 0 else 0
            off = tex_off[lvl] if lvl >= 0 else 0
            _ground_row(quad, fx0, fy0, inv_texel, clamp, camx + z * cs, camy + z * sn, cs, sn, z,
                        lateral, tex, off, n, n / tex_repeat, dring[j % 3], tring[j % 2], dbuf, tbuf)
        if i < 0:
            continue
        r = row0 + i
        d = dring[i % 3]
        up = dring[(i - 1) % 3] if i > 0 else d     # no row: a zero change
        down = dring[j % 3] if j < nr else d
        t = tring[i % 2]
        orow = flat[r * w * 3:(r + 1) * w * 3]
        g = max(abs(d[1] - d[0]), abs(d[0] - up[0]), abs(down[0] - d[0]))
        _pixel(orow, 0, d[0], g, t[0], gain, road_e, line_e, col,
               np.uint8(0) - np.uint8(r >= ground_start[0]), np.uint8(0) - np.uint8(r >= wall_start[0]),
               wall, sky_rgb)
        for c in range(1, w):
            dc = d[c]
            g = max(max(abs(dc - d[c - 1]), abs(dc - up[c])), abs(down[c] - dc))
            _pixel(orow, 3 * c, dc, g, t[c], gain, road_e, line_e, col,
                   np.uint8(0) - np.uint8(r >= ground_start[c]), np.uint8(0) - np.uint8(r >= wall_start[c]),
                   wall, sky_rgb)
    return out


@njit(cache=True, nogil=True, inline="always")
def _remap_linear(field, mx, my, clamp):  # pragma: no cover - compiled
    """``cv2.remap(field, mx, my, INTER_LINEAR, BORDER_CONSTANT, clamp)`` at one point (float32
    texel coordinates), computed as OpenCV computes it for int16: the coordinates rounded to 1/32
    texel, float32 weights from its 32x32 table (exact products of k/32), the weighted sum in
    float32 in OpenCV's order, rounded half to even to int16; taps outside the field read ``clamp``."""
    X = int(np.rint(mx * np.float32(32.0)))
    Y = int(np.rint(my * np.float32(32.0)))
    sx = X >> 5
    sy = Y >> 5
    ax = np.float32((X & 31) * np.float32(0.03125))
    ay = np.float32((Y & 31) * np.float32(0.03125))
    w0 = (np.float32(1.0) - ay) * (np.float32(1.0) - ax)
    w1 = (np.float32(1.0) - ay) * ax
    w2 = ay * (np.float32(1.0) - ax)
    w3 = ay * ax
    h, w = field.shape
    if sx >= w or sx + 1 < 0 or sy >= h or sy + 1 < 0:
        return clamp
    cv = np.float32(clamp)
    v0 = np.float32(field[sy, sx]) if sx >= 0 and sy >= 0 else cv
    v1 = np.float32(field[sy, sx + 1]) if sx + 1 < w and sy >= 0 else cv
    v2 = np.float32(field[sy + 1, sx]) if sx >= 0 and sy + 1 < h else cv
    v3 = np.float32(field[sy + 1, sx + 1]) if sx + 1 < w and sy + 1 < h else cv
    v = int(np.rint(v0 * w0 + v1 * w1 + v2 * w2 + v3 * w3))
    return min(max(v, -32768), 32767)


@njit(cache=True, nogil=True, inline="always")
def _field_mm(field, fx0, fy0, texel, clamp, unit, x, y):  # pragma: no cover - compiled
    """Unsigned distance (mm) to the red line at world (x, y) m, the field (``unit`` m per
    value) sampled by ``_remap_linear``."""
    d = _remap_linear(field, np.float32((x - fx0) / texel), np.float32((y - fy0) / texel), clamp)
    return abs(float(d)) * unit * 1000.0


@njit(cache=True, nogil=True)
def wall_colours(field, fx0, fy0, texel, clamp, unit, camx, camy, cs, sn, lateral, depth, wall,
                 sun, ambient, diffuse, out):  # pragma: no cover - compiled
    """Into ``out`` (W, 3) uint8: each column's wall colour (``wall`` (3,) RGB albedo) lit by the
    sun on the face it sees; black where ``depth`` (W,) m is inf (no wall).

    The face's normal is the distance field's gradient at the wall point (central differences
    one texel apart, each sample OpenCV's bilinear ``remap`` of the int16 field (``unit`` m per
    value), in mm): the face looks back at the road, against the gradient, so it is lit when the
    sun's light (``sun``: direction of travel) travels along the gradient: ambient + diffuse x
    max(cos, 0), at most 1.
    """
    sx, sy, sz = sun[0], sun[1], sun[2]
    s_norm = math.sqrt(sx * sx + sy * sy + sz * sz)
    if s_norm == 0.0:
        s_norm = 1.0
    for c in range(lateral.shape[0]):
        z = depth[c]
        if not math.isfinite(z):
            out[c, 0] = 0
            out[c, 1] = 0
            out[c, 2] = 0
            continue
        lat = lateral[c] * z
        px = camx + z * cs - lat * sn
        py = camy + z * sn + lat * cs
        e = texel
        gx = (_field_mm(field, fx0, fy0, texel, clamp, unit, px + e, py)
              - _field_mm(field, fx0, fy0, texel, clamp, unit, px - e, py))
        gy = (_field_mm(field, fx0, fy0, texel, clamp, unit, px, py + e)
              - _field_mm(field, fx0, fy0, texel, clamp, unit, px, py - e))
        norm = math.hypot(gx, gy)
        if norm == 0.0:
            norm = 1.0
        cos = (gx * sx + gy * sy) / norm / s_norm
        light = min(1.0, ambient + diffuse * max(cos, 0.0))
        for k in range(3):
            out[c, k] = np.uint8(min(max(np.rint(wall[k] * light), 0.0), 255.0))
    return out
