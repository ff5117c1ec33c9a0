"""The renderer's per-pixel loops, compiled by numba (imported by ``Renderer`` on first use, so
modules that only need the camera geometry do not pay numba's import).

The camera's ground point of a pixel is ``cam + depth * (cos, sin) + lateral * depth * (-sin,
cos)`` (world metres; ``depth`` per image row, ``lateral`` per column, camera frame forward and
left). ``field`` is the signed distance field (int16, from the red line, in the renderer's
field unit; texel (0, 0) at world (fx0, fy0), ``inv_texel`` texels per metre), sampled
bilinearly and taken unsigned; outside it, the clamp value. Distances below are in field units.
The frame and the wall ray-cast read it as ``quad``, its cells' corners packed one word per cell
with a border of cells at the clamp value (``render._cell_corners``).

The arithmetic of each pixel is fixed (operation order, float32 vs float64, no fastmath): the
frames are bit-identical to those networks were trained on. Speed comes from the loops' shape
instead: points are taken CHUNK at a time through stack buffers, in separate loops for the
coordinate arithmetic (vectorised: floor, clamp and index in float64, converted to int32), the
loads (scalar: the CPU's gathers are no faster) and the interpolation (vectorised), with
unsigned indices (no negative-index wraparound) and no branch in the vectorised loops.
"""
from __future__ import annotations

import math

import numpy as np
from numba import carray, njit, types, uint64
from numba.core import cgutils
from numba.extending import intrinsic

#: Points per stack block of the samplers, and bytes of a block of RGB pixels.
CHUNK = 64
CHUNK_RGB = 3 * CHUNK


def _stack_buffer(dtype):
    """An intrinsic ``f(size)``: a ``dtype`` buffer of ``size`` (a literal) elements on the
    kernel's stack, as a pointer for ``numba.carray``. LLVM can prove that stores into it alias
    neither the distance field nor the texture nor the frame, so the loops that write here are
    vectorised (they are not when they write into an argument array)."""
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
_stack_i32 = _stack_buffer(types.int32)
_stack_i64 = _stack_buffer(types.int64)
_stack_u8 = _stack_buffer(types.uint8)


@njit(cache=True, nogil=True, inline="always")
def _field_point(quad, fx0, fy0, inv_texel, wx, wy, j, idx, tx, ty):  # pragma: no cover - compiled
    """Point ``j`` of a block: world (wx, wy) m as the flat index of its cell in ``quad`` (into
    ``idx``) and its position in the cell (into ``tx``, ``ty``).

    ``quad`` (H+1, W+1) holds the field's (H-1) x (W-1) cells framed by a border of cells whose
    four corners are the clamp value; texel coordinates are clamped into [-1, W-1] x [-1, H-1]
    first, so a point outside the field lands in the border, where the interpolation gives the
    clamp value exactly, and a point inside keeps its coordinates."""
    fw = float(quad.shape[1] - 2)
    fh = float(quad.shape[0] - 2)
    gx = min(max((wx - fx0) * inv_texel, -1.0), fw)
    gy = min(max((wy - fy0) * inv_texel, -1.0), fh)
    fx = np.floor(gx)
    fy = np.floor(gy)
    tx[j] = gx - fx
    ty[j] = gy - fy
    idx[j] = np.int32(fy * (fw + 2.0) + fx + (fw + 3.0))    # cell (fy + 1, fx + 1) of quad


@njit(cache=True, nogil=True, inline="always")
def _field_values(quad, m, idx, tx, ty, q, out):  # pragma: no cover - compiled
    """The unsigned distances of the ``m`` points ``_field_point`` put in ``idx``, ``tx``, ``ty``,
    bilinear, into ``out`` (``q``: a stack buffer for the cells' words).

    A word holds the cell's corners (y, x), (y, x+1) in its low, (y+1, x), (y+1, x+1) in its high
    32 bits (16 each, the first in the lower half); they are read as two int32 per point, which
    the vectorised loop splits with shifts."""
    flat = quad.reshape(quad.size)
    for j in range(m):
        q[j] = flat[uint64(idx[j])]
    q32 = q.view(np.int32)
    for j in range(m):
        lo = q32[uint64(2) * j]
        hi = q32[uint64(2) * j + uint64(1)]
        f00 = float(np.int16(lo))
        f01 = float(lo >> 16)
        f10 = float(np.int16(hi))
        f11 = float(hi >> 16)
        a = f00 + (f01 - f00) * tx[j]
        b = f10 + (f11 - f10) * tx[j]
        out[j] = abs(a + (b - a) * ty[j])


@njit(cache=True, nogil=True)
def wall_hits(quad, fx0, fy0, inv_texel, camx, camy, cs, sn, lateral, depths, threshold,
              slope):  # pragma: no cover - compiled
    """Depth (m, along the optical axis) at which each column's ground ray first reaches the
    walls (its distance to the red line reaches ``threshold``), sampled at ``depths`` (K,) m,
    increasing, and interpolated linearly between the two samples around the crossing; inf where
    the ray stays inside the road up to the last depth (the far clip).

    Columns are marched in blocks of CHUNK, one depth at a time for the whole block, until every
    column of the block has crossed. Depths that cannot reach the threshold are not sampled:
    within a cell the bilinear field changes by at most ``slope`` (the field's largest change
    between neighbouring texels, >= 1) per texel along x or y, so no point within (threshold - d
    - 1) / slope texels (in x + y) of a sample at distance d, and inside the field, reaches the
    threshold (the unit spared covers the rounding). From each depth the march goes on at the
    last depth all the block's uncrossed columns reach that way (sampled for the interpolation,
    not a crossing), or at the next."""
    w = lateral.shape[0]
    nk = depths.shape[0]
    # inside the field with a texel to spare: [1, cells - 1) on each axis
    gx_max = quad.shape[1] - 3.0
    gy_max = quad.shape[0] - 3.0
    inv_slope = 1.0 / slope
    out = np.full(w, np.inf)
    idx = carray(_stack_i32(CHUNK), (CHUNK,))
    tx = carray(_stack_f64(CHUNK), (CHUNK,))
    ty = carray(_stack_f64(CHUNK), (CHUNK,))
    q = carray(_stack_i64(CHUNK), (CHUNK,))
    cur = carray(_stack_f64(CHUNK), (CHUNK,))
    prev = carray(_stack_f64(CHUNK), (CHUNK,))
    z_per_texel = carray(_stack_f64(CHUNK), (CHUNK,))
    for c0 in range(0, w, CHUNK):
        m = uint64(min(CHUNK, w - c0))
        lat = lateral[c0:]
        res = out[c0:]
        for j in range(m):
            # the ray's ground point moves |dx| + |dy| texels per m of depth
            z_per_texel[j] = 1.0 / ((abs(cs - lat[j] * sn) + abs(sn + lat[j] * cs)) * inv_texel)
        left = m
        i = 0
        while i < nk:
            z = depths[i]
            ax = camx + z * cs
            ay = camy + z * sn
            for j in range(m):
                lz = lat[j] * z
                _field_point(quad, fx0, fy0, inv_texel, ax - lz * sn, ay + lz * cs, j, idx, tx, ty)
            _field_values(quad, m, idx, tx, ty, q, cur)
            for j in range(m):
                d = cur[j]
                if d >= threshold and res[j] == np.inf:
                    if i == 0:
                        res[j] = z
                    else:
                        t = (threshold - prev[j]) / max(d - prev[j], 1e-9)
                        res[j] = depths[i - 1] + t * (z - depths[i - 1])
                    left -= 1
                prev[j] = d
            if left == 0:
                break
            for j in range(m):
                lz = lat[j] * z
                gx = (ax - lz * sn - fx0) * inv_texel
                gy = (ay + lz * cs - fy0) * inv_texel
                r = min(min(min(min((threshold - cur[j] - 1.0) * inv_slope, gx - 1.0), gx_max - gx),
                            gy - 1.0), gy_max - gy)
                cur[j] = z + r * z_per_texel[j] if res[j] == np.inf else np.inf
            reach = np.inf
            for j in range(m):
                reach = min(reach, cur[j])
            k = i + 1
            while k < nk and depths[k] < reach:
                k += 1
            i = max(i + 1, k - 1)
    return out


@njit(cache=True, nogil=True, inline="always")
def _ground_row(quad, fx0, fy0, inv_texel, ax, ay, cs, sn, z, lateral, tex, off, n, k, dist,
                texrow, buf):  # pragma: no cover - compiled
    """One image row of ground at depth ``z`` (m; ``ax``, ``ay``: the camera's position plus ``z``
    along the optical axis): per column its distance to the red line (into ``dist`` (W,) float32)
    and the asphalt texture's value (into ``texrow``), from the mip level that is an
    ``n``-square tile at ``off`` (``k`` = n / repeat texels per m; n = 0: the mean, 0).

    ``quad``: the field's packed cells (see ``_field_point``); ``tex``'s tiles carry a copy of
    their first row and column after the last (see ``render._packed_texture``), so a sample's
    four texels are at i, i + 1, i + n + 1, i + n + 2 from the wrapped index i of its first.
    ``buf``: the stack buffers (see ``frame``)."""
    idx, tx, ty, q, tidx, tu, tv, t00, t01, t10, t11 = buf
    w = lateral.shape[0]
    fn = float(n)
    inv_n = 1.0 / fn if n > 0 else 0.0
    foff = float(off)
    one = uint64(1)
    n1 = uint64(n + 1)
    for c0 in range(0, w, CHUNK):
        m = uint64(min(CHUNK, w - c0))
        lat = lateral[c0:]
        dr = dist[c0:]
        tr = texrow[c0:]
        for j in range(m):
            lz = lat[j] * z
            wx = ax - lz * sn
            wy = ay + lz * cs
            _field_point(quad, fx0, fy0, inv_texel, wx, wy, j, idx, tx, ty)
            # texture coordinates and their index wrapped into the tile (iu & (n - 1), in float64)
            u = wx * k - 0.5
            v = wy * k - 0.5
            iu = np.floor(u)
            iv = np.floor(v)
            tu[j] = u - iu
            tv[j] = v - iv
            mu = iu - fn * np.floor(iu * inv_n)
            mv = iv - fn * np.floor(iv * inv_n)
            tidx[j] = np.int32(foff + mv * (fn + 1.0) + mu)
        _field_values(quad, m, idx, tx, ty, q, dr)
        if n > 0:
            for j in range(m):
                b = uint64(tidx[j])
                t00[j] = tex[b]
                t01[j] = tex[b + one]
                t10[j] = tex[b + n1]
                t11[j] = tex[b + n1 + one]
            for j in range(m):
                a2 = t00[j] + (t01[j] - t00[j]) * tu[j]
                b2 = t10[j] + (t11[j] - t10[j]) * tu[j]
                tr[j] = a2 + (b2 - a2) * tv[j]
        else:
            for j in range(m):
                tr[j] = 0.0


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _channel(cr, cl, nz, grass, road, line):  # pragma: no cover - compiled
    """One channel of a ground pixel: grass + (asphalt - grass) ``road`` blended by the asphalt
    and line coverages ``cr``, ``cl``, plus the texture offset ``nz``, as a byte."""
    v = grass + road * cr
    v = v + (line - v) * cl + nz
    return np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


@njit(cache=True, nogil=True, inline="always")
def _put(flat, o, rgb, k):  # pragma: no cover - compiled
    """Write the three bytes of pixel ``k`` of ``rgb`` (3-byte pixels) at byte ``o`` of ``flat``."""
    flat[o] = rgb[3 * k]
    flat[o + uint64(1)] = rgb[3 * k + 1]
    flat[o + uint64(2)] = rgb[3 * k + 2]


@njit(cache=True, nogil=True, error_model="numpy")
def frame(quad, fx0, fy0, inv_texel, camx, camy, cs, sn, depth, lateral, row_level, tex,
          tex_off, tex_n, tex_repeat, tex_gain, colours, edges, wall_depth, cy, base_scale,
          top_scale, wall_rgb, sky, dring, tring, out):  # pragma: no cover - compiled
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

    Column c with a wall at depth Z = ``wall_depth[c]`` (m; inf: none) shows it (``wall_rgb``
    (W, 3) uint8) from row ceil(cy - top_scale / Z) down to the row before ceil(cy + base_scale /
    Z) (clipped to the image, the latter to the ground rows; r >= v for an integer r is r >=
    ceil(v)), the ground below (every ground row where there is no wall), the sky (``sky`` (3,)
    uint8) above. Every ground row is shaded whole, then the wall and sky pixels of the ground
    rows are written over it; the rows above the ground are copies of a row buffer of the sky
    in which each column turns to its wall at the wall's top row.
    """
    h, w = out.shape[0], out.shape[1]
    nr = depth.shape[0]
    row0 = h - nr
    flat = out.reshape(h * w * 3)
    w3 = uint64(3 * w)
    # Per column the first ground row and the first wall row (h: none), and the columns in the
    # order of their first wall row (counting sort).
    ground_start = np.empty(w, np.int64)
    wall_start = np.empty(w, np.int64)
    count = np.zeros(h + 2, np.int64)
    for c in range(w):
        z = wall_depth[c]
        if math.isfinite(z):
            ground_start[c] = min(max(math.ceil(cy + base_scale / z), row0), h)
            wall_start[c] = min(max(math.ceil(cy - top_scale / z), 0), h)
        else:
            ground_start[c] = row0
            wall_start[c] = h
        count[wall_start[c] + 1] += 1
    for r in range(h):
        count[r + 1] += count[r]
    order = np.empty(w, np.int64)
    for c in range(w):
        order[count[wall_start[c]]] = c
        count[wall_start[c]] += 1
    # Rows above the ground: the sky, with each column's wall from its top row on.
    wall = wall_rgb.reshape(w * 3)
    row = np.empty(w3, np.uint8)
    for c in range(w):
        _put(row, uint64(3 * c), sky, 0)
    k = 0
    for r in range(row0):
        while k < w and wall_start[order[k]] <= r:
            _put(row, uint64(3 * order[k]), wall, order[k])
            k += 1
        orow = flat[uint64(r) * w3:]
        for b in range(w3):
            orow[b] = row[b]
    # Ground rows.
    gain = np.float32(tex_gain)
    road_e = edges[0]
    line_e = edges[1]
    g0, g1, g2 = colours[0, 0], colours[0, 1], colours[0, 2]
    a0, a1, a2 = colours[1, 0] - g0, colours[1, 1] - g1, colours[1, 2] - g2
    l0, l1, l2 = colours[2, 0], colours[2, 1], colours[2, 2]
    buf = (carray(_stack_i32(CHUNK), (CHUNK,)), carray(_stack_f64(CHUNK), (CHUNK,)),
           carray(_stack_f64(CHUNK), (CHUNK,)), carray(_stack_i64(CHUNK), (CHUNK,)),
           carray(_stack_i32(CHUNK), (CHUNK,)), carray(_stack_f64(CHUNK), (CHUNK,)),
           carray(_stack_f64(CHUNK), (CHUNK,)), carray(_stack_f32(CHUNK), (CHUNK,)),
           carray(_stack_f32(CHUNK), (CHUNK,)), carray(_stack_f32(CHUNK), (CHUNK,)),
           carray(_stack_f32(CHUNK), (CHUNK,)))
    gg = carray(_stack_f32(CHUNK), (CHUNK,))
    rgb = carray(_stack_u8(CHUNK_RGB), (CHUNK_RGB,))
    for i in range(-1, nr):
        j = i + 1
        if j < nr:
            z = depth[j]
            lvl = row_level[j]
            n = tex_n[lvl] if lvl >= 0 else 0
            off = tex_off[lvl] if lvl >= 0 else 0
            _ground_row(quad, fx0, fy0, inv_texel, camx + z * cs, camy + z * sn, cs, sn, z,
                        lateral, tex, off, n, n / tex_repeat, dring[j % 3], tring[j % 2], buf)
        if i < 0:
            continue
        d = dring[i % 3]
        up = dring[(i - 1) % 3] if i > 0 else d     # no row: a zero change
        down = dring[j % 3] if j < nr else d
        orow = flat[uint64(row0 + i) * w3:]
        for c0 in range(0, w, CHUNK):
            m = uint64(min(CHUNK, w - c0))
            dc = d[c0:]
            uc = up[c0:]
            wc = down[c0:]
            tc = tring[i % 2][c0:]
            # the change to the left neighbour (column 0: to the right one)
            gg[0] = abs(dc[0] - d[c0 - 1 if c0 > 0 else 1])
            for jj in range(uint64(1), m):
                gg[jj] = abs(dc[jj] - dc[jj - uint64(1)])
            for jj in range(m):
                x = dc[jj]
                g = max(max(max(gg[jj], abs(x - uc[jj])), abs(wc[jj] - x)), np.float32(1.0))
                cr = min(max((road_e - x) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
                cl = min(max((line_e - x) / g + np.float32(0.5), np.float32(0.0)), np.float32(1.0))
                nz = tc[jj] * gain * (cr - cl) + np.float32(0.5)
                rgb[uint64(3) * jj] = _channel(cr, cl, nz, g0, a0, l0)
                rgb[uint64(3) * jj + uint64(1)] = _channel(cr, cl, nz, g1, a1, l1)
                rgb[uint64(3) * jj + uint64(2)] = _channel(cr, cl, nz, g2, a2, l2)
            o = orow[uint64(3 * c0):]
            for b in range(uint64(3) * m):
                o[b] = rgb[b]
    # Ground rows a wall covers: its rows, and the sky above it.
    for c in range(w):
        for r in range(row0, ground_start[c]):
            o = uint64(r) * w3 + uint64(3 * c)
            if r >= wall_start[c]:
                _put(flat, o, wall, c)
            else:
                _put(flat, o, sky, 0)
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
