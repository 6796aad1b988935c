"""Numba kernels of the camera chain.

Every kernel is a small pure function on numpy arrays, compiled serial and
``nogil`` so that several cameras of one event run on separate Python threads
(``parallel=True`` would abort under the workqueue threading layer when called
from several threads, see docs/engineering-notes.md).

Conventions shared with :mod:`reference` (the plain numpy/scipy oracle):

* a pixel passes zero suppression when ``raw < clip`` and ``d > thr`` with
  ``d = float32(raw) - mean`` and ``thr = float32(nsigma * sigma)``; the
  kernels use the equivalent integer cut ``raw >= cut`` where ``cut`` is the
  smallest uint16 value that passes (:func:`threshold_cut`), so the hot loop
  compares integers only;
* the value of a kept pixel on the clustering map is ``raw - rint(mean)``,
  an integer (the frame pass streams a uint16 rounded mean, not the float32
  one, and the cut as a uint8 offset over it: 5 bytes per pixel with the
  frame, 3 in the rows where both fit in one byte, see :func:`packed_maps`);
  cluster features use ``d`` from
  the float32 mean;
* the 2x2 median of pixel ``(i, j)`` is the *upper* median (third smallest)
  of ``z[i-1:i+1, j-1:j+1]`` with indices below 0 clamped to 0 - exactly
  ``scipy.ndimage.median_filter(z, size=2, mode="nearest")``;
* rebinning is the block mean (trailing rows/cols that do not fill a block are
  dropped), accumulated in float64: sums of float32 values are exact there,
  so the result does not depend on summation order.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# Columns of the per-cluster feature table (see clusters.FEATURES for units).
F_INTEGRAL = 0
F_SIZE = 1
F_NHITS = 2
F_ROW = 3
F_COL = 4
F_ROW_MIN = 5
F_ROW_MAX = 6
F_COL_MIN = 7
F_COL_MAX = 8
F_LENGTH = 9
F_WIDTH = 10
F_ANGLE = 11
F_RMS = 12
F_SLIMNESS = 13
F_DENSITY = 14
F_SIGMA_LONG = 15
F_SIGMA_LAT = 16
F_MAX = 17
F_NBLOCKS = 18
F_TRACK_LENGTH = 19
F_FIT_RMS = 20
NFEATURES = 21

# Per-frame statistics written by frame_pass (indices into ``stats``).
S_RAW_SUM = 0
S_RAW_SUMSQ = 1
S_PED_SUM = 2
S_PED_SUMSQ = 3
S_N_ZS = 4
S_N_CLIPPED = 5
S_N_HOT = 6
S_N_HOT_OVER = 7
NSTATS = 8

_NJIT = {"nogil": True, "cache": True}


@numba.njit(**_NJIT)
def threshold_cut(mean, thr):
    """Smallest uint16 ``r`` with ``float32(r) - mean > thr`` per pixel
    (65535 when even that fails: such a pixel passes only at saturation,
    which the clip removes)."""
    rows, cols = mean.shape
    out = np.empty((rows, cols), np.uint16)
    for i in range(rows):
        for j in range(cols):
            m = mean[i, j]
            t = thr[i, j]
            c = int(np.floor(np.float64(m) + np.float64(t))) - 1
            if c < 0:
                c = 0
            # float32 rounding may move the boundary by one: step to it exactly
            while c > 0 and np.float32(c - 1) - m > t:
                c -= 1
            while c < 65535 and not (np.float32(c) - m > t):
                c += 1
            out[i, j] = c
    return out


@numba.njit(**_NJIT)
def zero_suppress(raw, mean, cut, clip, r0, r1, c0, c1):
    """Stage kernel (tests, reference comparison): clip + pedestal subtraction
    + zero suppression + acceptance rectangle ``[r0, r1) x [c0, c1)``; the
    value of a kept pixel is ``raw - rint(mean)`` (an integer, as in
    :func:`frame_pass`)."""
    rows, cols = raw.shape
    out = np.zeros((rows, cols), np.float32)
    for i in range(max(r0, 0), min(r1, rows)):
        for j in range(max(c0, 0), min(c1, cols)):
            r = raw[i, j]
            if r < clip and r >= cut[i, j]:
                m = min(max(np.rint(np.float64(mean[i, j])), 0.0), 65535.0)
                out[i, j] = np.float32(np.float64(r) - m)
    return out


@numba.njit(**_NJIT)
def median2x2(z):
    """Upper median of each 2x2 window ``z[i-1:i+1, j-1:j+1]`` (edges clamped)."""
    rows, cols = z.shape
    out = np.empty_like(z)
    for i in range(rows):
        ip = i - 1 if i > 0 else 0
        for j in range(cols):
            jp = j - 1 if j > 0 else 0
            a = z[ip, jp]
            b = z[ip, j]
            c = z[i, jp]
            d = z[i, j]
            lo1 = min(a, b)
            hi1 = max(a, b)
            lo2 = min(c, d)
            hi2 = max(c, d)
            out[i, j] = max(min(hi1, hi2), max(lo1, lo2))
    return out


@numba.njit(**_NJIT)
def rebin_mean(z, factor):
    """Block mean (float64) of a 2-D array; incomplete edge blocks dropped."""
    rows = z.shape[0] // factor
    cols = z.shape[1] // factor
    out = np.zeros((rows, cols), np.float64)
    for i in range(rows * factor):
        bi = i // factor
        for bj in range(cols):
            s = 0.0
            base = bj * factor
            for k in range(factor):
                s += z[i, base + k]
            out[bi, bj] += s
    area = np.float64(factor * factor)
    for bi in range(rows):
        for bj in range(cols):
            out[bi, bj] /= area
    return out


#: the row kernels sum squares in 32-bit lanes per chunk of ``_CHUNK``
#: pixels, exact while every raw and mean_q value of the chunk is below
#: ``_NARROW`` (1024 squares < 2048^2 sum below 2^32); a chunk with a larger
#: value is summed again in int64 (bright pixels are rare: a few chunks per frame)
_CHUNK = 1024
_NARROW = 2048


@numba.njit(nogil=True, cache=True)
def _chunk_sums64(rr, rq, j0, j1, base):
    """Exact int64 sums of raw, raw^2, e = raw - mean_q and e^2 over ``[j0, j1)``
    (``rq``, ``base``: the mean as in :func:`_mean_of`)."""
    rs = np.int64(0)
    rsq = np.int64(0)
    es = np.int64(0)
    esq = np.int64(0)
    for jj in range(j1 - j0):
        j = np.uint64(j0) + np.uint64(jj)
        r = np.int64(rr[j])
        e = r - np.int64(_mean_of(rq[j], base))
        rs += r
        rsq += r * r
        es += e
        esq += e * e
    return rs, rsq, es, esq


def _cut_of(q16, c):
    """The zero-suppression cut of a pixel from its entry ``c`` of the cut
    map: a uint16 cut map holds the cut itself, a uint8 map the offset over
    the rounded mean ``q16`` (1 byte per pixel less to stream; see
    :func:`cut_offsets`). Only callable from numba code."""
    raise TypeError("_cut_of is only callable from numba-compiled code")


@overload(_cut_of, jit_options={"cache": True})
def _cut_of_impl(q16, c):
    if isinstance(c, types.Integer) and c.bitwidth == 8:
        return lambda q16, c: np.uint16(q16 + np.uint16(c))
    return lambda q16, c: c


def _mean_of(p, base):
    """The rounded mean ``mean_q`` of a pixel from its entry ``p`` of the
    mean map: a uint16 map holds it (``base`` unused), a uint8 map is the
    packed map of :func:`packed_maps` (the mean is the row's ``base`` plus
    the low 4 bits). Only callable from numba code."""
    raise TypeError("_mean_of is only callable from numba-compiled code")


@overload(_mean_of, jit_options={"cache": True})
def _mean_of_impl(p, base):
    if isinstance(p, types.Integer) and p.bitwidth == 8:
        return lambda p, base: np.uint16(base + (np.uint16(p) & np.uint16(15)))
    return lambda p, base: p


def _maps_of(p, c, base):
    """(mean_q, cut) of a pixel from its entries ``p`` of the mean map and
    ``c`` of the cut map (:func:`_mean_of`, :func:`_cut_of`); with a packed
    ``p`` the cut is the mean plus the high 4 bits and ``c`` is unused.
    Only callable from numba code."""
    raise TypeError("_maps_of is only callable from numba-compiled code")


@overload(_maps_of, jit_options={"cache": True})
def _maps_of_impl(p, c, base):
    if isinstance(p, types.Integer) and p.bitwidth == 8:

        def packed(p, c, base):
            q = _mean_of(p, base)
            return q, np.uint16(q + (np.uint16(p) >> np.uint16(4)))

        return packed
    return lambda p, c, base: (p, _cut_of(p, c))


@numba.njit(**_NJIT)
def cut_offsets(cut, mean_q):
    """The cut map as uint8 offsets over the rounded mean (``cut - mean_q``,
    >= 0 by construction) and, per row, whether some offset does not fit
    (a pixel noisier than ~196 ADU at nsigma 1.3): such rows are streamed
    with the uint16 cut map, so the result is exact either way."""
    rows, cols = cut.shape
    off = np.zeros((rows, cols), np.uint8)
    wide = np.zeros(rows, np.bool_)
    for i in range(rows):
        for j in range(cols):
            d = np.int64(cut[i, j]) - np.int64(mean_q[i, j])
            if d < 0 or d > 255:
                wide[i] = True
            else:
                off[i, j] = np.uint8(d)
    return off, wide


@numba.njit(**_NJIT)
def packed_maps(mean_q, cut_off, wide):
    """The mean and cut maps packed in one byte per pixel where a whole row
    fits: low 4 bits ``mean_q - base`` (``base`` = the row's smallest
    ``mean_q``), high 4 bits ``cut - mean_q`` (both < 16: a row's pedestal
    within 15 ADU and its cut margins below 16 ADU, i.e. noise below ~12 ADU
    at nsigma 1.3). The frame pass streams 3 bytes per pixel in such rows
    (``packed`` True) instead of 5; other rows (a hot pixel's high mean, a
    ``wide`` row) keep ``mean_q`` and the cut maps, so the result is exact
    either way."""
    rows, cols = mean_q.shape
    pk = np.zeros((rows, cols), np.uint8)
    base = np.zeros(rows, np.uint16)
    packed = np.zeros(rows, np.bool_)
    for i in range(rows):
        if cols == 0 or wide[i]:
            continue
        lo = mean_q[i, 0]
        for j in range(cols):
            lo = min(lo, mean_q[i, j])
        fits = True
        for j in range(cols):
            d = np.int64(mean_q[i, j]) - np.int64(lo)
            c = np.int64(cut_off[i, j])
            if d > 15 or c > 15:
                fits = False
                break
            pk[i, j] = np.uint8(d | (c << 4))
        if fits:
            base[i] = lo
            packed[i] = True
        else:
            pk[i, :] = 0
    return pk, base, packed


@numba.njit(nogil=True, cache=True)
def _row_pass(rr, rq, rc, base, last, inside, out, edges, seg):
    """Everything per pixel of one row in one loop of narrow lanes: sums of
    raw and raw^2 and of e^2 with ``e = raw - mean_q`` (``mean_q`` = the
    pedestal mean rounded to an integer; the sum of e is the raw sum minus
    the map's, so it is not summed here), clipped pixels, the largest
    ``raw - cut`` over the cut (whether the row can hold a pixel over the
    hot cut: see :func:`_frame_pass`), and the zero-suppressed value ``e``
    (uint16) where ``cut <= raw <= last`` (``last`` = clip - 1) and
    ``inside``, else 0, written to ``out``. The maps: ``rq`` the rounded
    mean (uint16) and ``rc`` the cut (uint16) or its uint8 offset, or ``rq``
    the packed row of :func:`packed_maps` over ``base`` (``rc`` unused).

    The row is summed in segments ``[edges[k], edges[k + 1])`` (at most
    ``_CHUNK`` pixels each; see :func:`segment_edges`): the sums of raw,
    raw^2 and e^2 of segment k go to ``seg[k, :3]``, so that the box
    statistics are sums of segments and cost nothing per pixel, and the
    segment's largest ``raw - cut`` to ``seg[k, 3]`` (the hot counters are
    updated only in the segments that can hold a pixel over the hot cut).

    Exact integers: the comparisons and counts run in uint16 lanes (a row
    has < 65536 pixels); the squares are products of int16 values summed in
    32-bit lanes per segment (the multiply-add instructions of the vector
    unit), exact while raw and mean_q are below ``_NARROW`` (see there;
    the 32-bit sum wraps but the true one is < 2^32, so it is read back
    unsigned); a segment with a larger value is summed again in int64.
    Indices are unsigned so that numba emits no negative-index fix-up,
    which would stop the loop from vectorising."""
    rs = np.int64(0)
    rsq = np.int64(0)
    esq = np.int64(0)
    nc = np.uint16(0)
    dmax = np.uint16(0)
    nk = np.uint16(0)
    zero = np.uint16(0)
    one = np.uint16(1)
    for k in range(edges.shape[0] - 1):
        j0 = edges[k]
        j1 = edges[k + 1]
        a = np.int32(0)
        b = np.int32(0)
        d = np.int32(0)
        m = np.uint16(0)
        dm = np.uint16(0)
        for jj in range(j1 - j0):
            j = np.uint64(j0) + np.uint64(jj)
            r16 = rr[j]
            q16, c16 = _maps_of(rq[j], rc[j], base)
            # int16 views: exact in a narrow chunk (both values < 2048)
            rs16 = np.int32(np.int16(r16))
            e16 = np.int32(np.int16(r16 - q16))
            m = max(m, np.uint16(r16 | q16))
            a = np.int32(a + rs16)
            b = np.int32(b + rs16 * rs16)
            d = np.int32(d + e16 * e16)
            ge = r16 >= c16
            keep = ge & (r16 <= last) & inside
            out[j] = np.uint16(r16 - q16) if keep else zero
            nk = np.uint16(nk + (one if keep else zero))
            nc = np.uint16(nc + (one if r16 > last else zero))
            dm = max(dm, np.uint16(r16 - c16) if ge else zero)
        if m < _NARROW:
            w = np.int64(a)
            x = np.int64(np.uint32(b))
            z = np.int64(np.uint32(d))
        else:
            w, x, _, z = _chunk_sums64(rr, rq, j0, j1, base)
        seg[k, 0] = w
        seg[k, 1] = x
        seg[k, 2] = z
        seg[k, 3] = dm
        dmax = max(dmax, dm)
        rs += w
        rsq += x
        esq += z
    return rs, rsq, esq, np.int64(nc), np.int64(dmax), np.int64(nk)


@numba.njit(**_NJIT)
def segment_edges(cols, boxes):
    """Edges of the row segments of :func:`_row_pass`: every box column edge
    (clamped to the row) and the row's ends, pieces longer than ``_CHUNK``
    split; and per box the range ``[k0, k1)`` of the segments it covers."""
    pts = np.empty(2 * boxes.shape[0] + 2, np.int64)
    pts[0] = 0
    pts[1] = cols
    for b in range(boxes.shape[0]):
        pts[2 + 2 * b] = min(max(boxes[b, 2], 0), cols)
        pts[3 + 2 * b] = min(max(boxes[b, 3], 0), cols)
    pts = np.unique(pts)
    n = 1
    for k in range(pts.shape[0] - 1):
        n += (pts[k + 1] - pts[k] + _CHUNK - 1) // _CHUNK
    edges = np.empty(n, np.int64)
    edges[0] = 0
    e = 1
    for k in range(pts.shape[0] - 1):
        a = pts[k]
        while a < pts[k + 1]:
            a = min(a + _CHUNK, pts[k + 1])
            edges[e] = a
            e += 1
    ranges = np.zeros((boxes.shape[0], 2), np.int64)
    for b in range(boxes.shape[0]):
        ranges[b, 0] = np.searchsorted(edges, min(max(boxes[b, 2], 0), cols))
        ranges[b, 1] = max(np.searchsorted(edges, min(max(boxes[b, 3], 0), cols)), ranges[b, 0])
    return edges, ranges


@numba.njit(nogil=True, cache=True)
def _row_hot(rr, rc, rd, hc, hot_frames, j0, j1):
    """Update the hot counters of the columns ``[j0, j1)`` of one row
    (branch-free: rows with bright tracks are common); over the hot cut =
    ``raw >= cut + hot_delta``; returns (pixels at >= hot_frames, non-zero
    counters, pixels over the hot cut)."""
    nhot = np.uint16(0)
    nz = np.uint16(0)
    nover = np.uint16(0)
    one = np.uint8(1)
    zero = np.uint8(0)
    top = np.uint8(255)
    o16 = np.uint16(1)
    z16 = np.uint16(0)
    for jj in range(j1 - j0):
        j = np.uint64(j0) + np.uint64(jj)
        r = rr[j]
        c = rc[j]
        over = (r >= c) & (np.uint16(r - c) >= np.uint16(rd[j]))
        nover = np.uint16(nover + (o16 if over else z16))
        h = hc[j]
        up = np.uint8(h + (one if h < top else zero))
        h2 = up if over else zero
        hc[j] = h2
        nhot = np.uint16(nhot + (o16 if h2 >= hot_frames else z16))
        nz = np.uint16(nz + (o16 if h2 != zero else z16))
    return np.int64(nhot), np.int64(nz), np.int64(nover)


@numba.njit(nogil=True, cache=True)
def _row_median_add(prev, cur, colsum):
    """Add the 2x2 upper median of uint16 rows (prev, cur) to ``colsum``
    (its length = the columns used); ``colsum`` is uint16 when ``factor``
    medians cannot overflow it (so the loop runs in 16-bit lanes), else int32."""
    n = colsum.shape[0]
    if n == 0:
        return
    colsum[0] += max(prev[0], cur[0])
    a = prev[: n - 1]
    b = prev[1:n]
    c = cur[: n - 1]
    d = cur[1:n]
    cs = colsum[1:n]
    for j in range(cs.shape[0]):
        x = a[j]
        y = b[j]
        u = c[j]
        v = d[j]
        cs[j] = cs[j] + max(min(max(x, y), max(u, v)), max(min(x, y), min(u, v)))


@numba.njit(nogil=True, cache=True)
def _block_row(colsum, factor, out):
    """One row of block means from the column sums of ``factor`` median rows
    (exact: integer sums)."""
    area = np.float64(factor * factor)
    if factor == 4:
        for bj in range(out.shape[0]):
            k = 4 * bj
            s = (np.int32(colsum[k]) + np.int32(colsum[k + 1])) + (
                np.int32(colsum[k + 2]) + np.int32(colsum[k + 3])
            )
            out[bj] = np.float64(s) / area
    else:
        for bj in range(out.shape[0]):
            sb = np.int64(0)
            for k in range(factor):
                sb += colsum[bj * factor + k]
            out[bj] = np.float64(sb) / area


@numba.njit(nogil=True, cache=True)
def _median4_sum(t, r0, r1, r2, r3, colsum):
    """``colsum[j]`` = the sum of the four 2x2 upper medians of the row
    pairs (t, r0), (r0, r1), (r1, r2), (r2, r3) at columns (j - 1, j) (the
    first column clamped): a block row of a factor 4 rebin from its five
    rows in one loop, each row's pair min/max computed once for the two
    medians that use it (half the loads and stores of adding row pairs one
    by one). Written, not added; the sums run in ``colsum``'s lanes."""
    n = colsum.shape[0]
    if n == 0:
        return
    colsum[0] = (max(t[0], r0[0]) + max(r0[0], r1[0])) + (max(r1[0], r2[0]) + max(r2[0], r3[0]))
    at = t[: n - 1]
    bt = t[1:n]
    a0 = r0[: n - 1]
    b0 = r0[1:n]
    a1 = r1[: n - 1]
    b1 = r1[1:n]
    a2 = r2[: n - 1]
    b2 = r2[1:n]
    a3 = r3[: n - 1]
    b3 = r3[1:n]
    c = colsum[1:n]
    for jj in range(c.shape[0]):
        j = np.uint64(jj)
        lt = min(at[j], bt[j])
        ht = max(at[j], bt[j])
        l0 = min(a0[j], b0[j])
        h0 = max(a0[j], b0[j])
        l1 = min(a1[j], b1[j])
        h1 = max(a1[j], b1[j])
        l2 = min(a2[j], b2[j])
        h2 = max(a2[j], b2[j])
        l3 = min(a3[j], b3[j])
        h3 = max(a3[j], b3[j])
        m0 = max(min(ht, h0), max(lt, l0))
        m1 = max(min(h0, h1), max(l0, l1))
        m2 = max(min(h1, h2), max(l1, l2))
        m3 = max(min(h2, h3), max(l2, l3))
        c[j] = (m0 + m1) + (m2 + m3)


@numba.njit(nogil=True, cache=True)
def _median_block_row(zrows, i, factor, r0, r1, colsum, out):
    """Block row ``i // factor`` of the rebinned map (``i`` = its last row)
    from the ring ``zrows`` of the last ``factor + 1`` zero-suppressed rows
    (row k in slot ``k % (factor + 1)``; the row above the first is row 0,
    clamped). A block row whose rows and the one above are all outside the
    acceptance rows ``[r0, r1)`` is 0 without a look (a quarter of LIME's)."""
    nring = zrows.shape[0]
    first = i - factor + 1
    top = max(first - 1, 0)
    if top >= r1 or i < r0:
        out[:] = 0.0
        return
    n = colsum.shape[0]
    if factor == 4:
        _median4_sum(
            zrows[top % nring, :n],
            zrows[first % nring, :n],
            zrows[(first + 1) % nring, :n],
            zrows[(first + 2) % nring, :n],
            zrows[(first + 3) % nring, :n],
            colsum,
        )
    else:
        colsum[:] = 0
        for k in range(first, i + 1):
            _row_median_add(zrows[max(k - 1, 0) % nring], zrows[k % nring], colsum)
    _block_row(colsum, factor, out)


@numba.njit(nogil=True, cache=True)
def _count_keep(rr, rc, last):
    nk = 0
    for j in range(rr.shape[0]):
        nk += (rr[j] >= rc[j]) & (rr[j] <= last)
    return nk


@numba.njit(nogil=True, cache=True)
def _frame_pass(
    raw,
    mean_q,
    cut,
    hot_delta,
    hot_count,
    hot_rows,
    clip,
    r0,
    r1,
    c0,
    c1,
    factor,
    hot_frames,
    rebinned,
    zrows,
    colsum,
    q_total,
    boxes,
    box_q,
    box_out,
    cut_off,
    wide,
    hot_min,
    pk,
    pbase,
    packed,
):
    rows, cols = raw.shape
    nbr = rows // factor
    nbc = cols // factor
    ncu = nbc * factor
    stats = np.zeros(NSTATS, np.float64)
    raw_sum = np.int64(0)
    raw_sq = np.int64(0)
    ped_sq = np.int64(0)
    n_zs = 0
    n_clip = 0
    n_hot = 0
    n_hot_over = 0
    jc0 = min(max(c0, 0), cols)
    jc1 = max(min(c1, cols), jc0)
    full_cols = jc0 == 0 and jc1 == cols
    # the largest raw value kept: raw is uint16, so clip 65536 clips nothing
    last = np.uint16(min(clip, 65536) - 1)
    hot8 = np.uint8(min(max(hot_frames, 0), 255))
    zrows[:, :] = 0
    nring = zrows.shape[0]
    cs = colsum[:ncu]
    cs[:] = 0
    box_out[:, :] = 0.0
    edges, box_seg = segment_edges(cols, boxes)
    seg = np.zeros((edges.shape[0] - 1, 4), np.int64)
    for i in range(rows):
        rr = raw[i]
        inside = i >= r0 and i < r1
        rq = mean_q[i]
        # the zero-suppressed row goes to the ring of the last factor + 1 rows
        cur = zrows[i % nring]
        if packed[i]:
            pr = pk[i]
            rs, rsq, pq, nc, dmax, nk = _row_pass(
                rr, pr, pr, pbase[i], last, inside, cur, edges, seg
            )
        elif wide[i]:
            rs, rsq, pq, nc, dmax, nk = _row_pass(rr, rq, cut[i], 0, last, inside, cur, edges, seg)
        else:
            rs, rsq, pq, nc, dmax, nk = _row_pass(
                rr, rq, cut_off[i], 0, last, inside, cur, edges, seg
            )
        raw_sum += rs
        raw_sq += rsq
        ped_sq += pq
        n_clip += nc
        # a pixel over the hot cut has raw - cut >= its hot_delta >= the
        # row's smallest: only such rows (and rows with counters to reset)
        # read the hot maps, so the pass streams no hot map (a few percent
        # of LIME's rows, those with a bright track)
        if hot_rows[i] > 0 or (hot8 == 0 and dmax >= hot_min[i]):
            nh, nz, no = _row_hot(rr, cut[i], hot_delta[i], hot_count[i], hot8, 0, cols)
            n_hot += nh
            n_hot_over += no
            hot_rows[i] = nz
        elif dmax >= hot_min[i]:
            # every counter of the row is 0 and stays 0 where no pixel is
            # over the hot cut: only the segments that reach the margin are
            # updated (a track crosses one or two of them); with hot_frames
            # 0 a zero counter counts as hot, so such rows take the whole row
            nzr = 0
            for k in range(edges.shape[0] - 1):
                if seg[k, 3] >= hot_min[i]:
                    nh, nz, no = _row_hot(
                        rr, cut[i], hot_delta[i], hot_count[i], hot8, edges[k], edges[k + 1]
                    )
                    n_hot += nh
                    n_hot_over += no
                    nzr += nz
            hot_rows[i] = nzr
        if inside:
            if full_cols:
                n_zs += nk
            else:
                n_zs += _count_keep(rr[jc0:jc1], cut[i, jc0:jc1], last)
                cur[:jc0] = 0
                cur[jc1:] = 0
        # box statistics: sums of the row's segments in the box
        for b in range(boxes.shape[0]):
            if i >= boxes[b, 0] and i < boxes[b, 1]:
                for k in range(box_seg[b, 0], box_seg[b, 1]):
                    box_out[b, 0] += seg[k, 0]
                    box_out[b, 1] += seg[k, 1]
                    box_out[b, 3] += seg[k, 2]
        if i < nbr * factor and i % factor == factor - 1:
            _median_block_row(zrows, i, factor, r0, r1, cs, rebinned[i // factor])
    stats[S_RAW_SUM] = raw_sum
    stats[S_RAW_SUMSQ] = raw_sq
    # sum(raw - mean_q) = sum(raw) - sum(mean_q), exact integers
    stats[S_PED_SUM] = raw_sum - q_total
    for b in range(boxes.shape[0]):
        box_out[b, 2] = box_out[b, 0] - box_q[b]
    stats[S_PED_SUMSQ] = ped_sq
    stats[S_N_ZS] = n_zs
    stats[S_N_CLIPPED] = n_clip
    stats[S_N_HOT] = n_hot
    stats[S_N_HOT_OVER] = n_hot_over
    return stats


@numba.njit(nogil=True, cache=True)
def _colsum_for(factor, clip):
    """Column sums of ``factor`` median rows: uint16 when they cannot
    overflow (a kept value is below the clip), else int32."""
    return factor * (min(clip, 65536) - 1) <= 65535


@numba.njit(**_NJIT)
def frame_pass_boxes(
    raw,
    mean_q,
    cut,
    hot_delta,
    hot_count,
    hot_rows,
    clip,
    r0,
    r1,
    c0,
    c1,
    factor,
    hot_frames,
    rebinned,
    zrows,
    q_total,
    boxes,
    box_q,
    box_out,
    cut_off,
    wide,
    hot_min,
    pk,
    pbase,
    packed,
):
    """One pass over a frame doing every full-resolution step.

    Reads per pixel only the frame and two compact maps (5 bytes): the
    pedestal mean rounded to an integer ``mean_q`` (uint16) and the
    zero-suppression cut (smallest raw that passes) as the uint8 offset
    ``cut_off`` over ``mean_q``; rows flagged in ``wide`` (an offset above
    255, see :func:`cut_offsets`) read the uint16 ``cut`` instead. Rows
    flagged in ``packed`` read instead one byte per pixel of ``pk``, the
    mean and cut packed over the row's ``pbase`` (:func:`packed_maps`: 3
    bytes per pixel with the frame, as many rows as the pedestal allows). The
    hot-pixel margin above the cut ``hot_delta`` (uint8) and the uint16
    cut are read only in rows where some ``raw - cut`` reaches the row's
    smallest margin ``hot_min`` (:func:`row_min_u8`) or a hot counter is
    running. Clip, pedestal subtraction, zero
    suppression, acceptance, 2x2 median and rebin are fused row by row in
    integer arithmetic (the last ``factor + 1`` rows of the zero-suppressed
    image ``raw - mean_q`` live in the ring ``zrows``, shape (factor + 1,
    cols) uint16: 23 kB for LIME, in the first-level cache), so no
    full-resolution intermediate image is ever written. Also accumulated:
    raw and ``raw - mean_q`` sums for image statistics, the number of pixels
    over threshold and the per-pixel hot counter (consecutive frames with
    ``raw >= cut + hot_delta``, uint8 ``hot_count``; ``hot_rows`` int32
    counts the non-zero counters per row so that quiet rows are skipped),
    and per box ``[r0, r1, c0, c1]`` of ``boxes`` the exact sums of raw,
    raw^2, ``raw - mean_q`` and its square into ``box_out`` (nbox, 4), from
    the sums of the row segments (``box_q`` = the sum of ``mean_q`` over
    each box).
    ``q_total`` is the sum of ``mean_q`` (the sum of ``raw - mean_q`` is
    the raw sum minus it). Nothing float is read per pixel: the float32
    mean map alone would add 4 bytes per pixel in the boxes and cost more
    than the rest of the box statistics.
    Returns the statistics vector (see ``S_*``; the pedestal sums are of
    ``raw - mean_q``); ``rebinned`` (rows//factor, cols//factor) receives
    the block means of integer sums (float64, or float32 when the area
    ``factor^2`` is a power of two: exact in either).
    """
    if clip < 1:
        raise ValueError("frame_pass: clip must be >= 1")
    cols = raw.shape[1]
    if zrows.shape[0] != factor + 1 or zrows.shape[1] != cols:
        raise ValueError("frame_pass: zrows must have shape (factor + 1, cols)")
    if _colsum_for(factor, clip):
        colsum = np.zeros(cols, np.uint16)
        return _frame_pass(
            raw,
            mean_q,
            cut,
            hot_delta,
            hot_count,
            hot_rows,
            clip,
            r0,
            r1,
            c0,
            c1,
            factor,
            hot_frames,
            rebinned,
            zrows,
            colsum,
            q_total,
            boxes,
            box_q,
            box_out,
            cut_off,
            wide,
            hot_min,
            pk,
            pbase,
            packed,
        )
    colsum32 = np.zeros(cols, np.int32)
    return _frame_pass(
        raw,
        mean_q,
        cut,
        hot_delta,
        hot_count,
        hot_rows,
        clip,
        r0,
        r1,
        c0,
        c1,
        factor,
        hot_frames,
        rebinned,
        zrows,
        colsum32,
        q_total,
        boxes,
        box_q,
        box_out,
        cut_off,
        wide,
        hot_min,
        pk,
        pbase,
        packed,
    )


@numba.njit(**_NJIT)
def frame_pass(
    raw,
    mean_q,
    cut,
    hot_delta,
    hot_count,
    hot_rows,
    clip,
    r0,
    r1,
    c0,
    c1,
    factor,
    hot_frames,
    rebinned,
    zrows,
):
    """:func:`frame_pass_boxes` without box statistics, streaming the
    uint16 cut map."""
    return frame_pass_boxes(
        raw,
        mean_q,
        cut,
        hot_delta,
        hot_count,
        hot_rows,
        clip,
        r0,
        r1,
        c0,
        c1,
        factor,
        hot_frames,
        rebinned,
        zrows,
        np.int64(np.sum(mean_q.astype(np.int64))),
        np.zeros((0, 4), np.int64),
        np.zeros(0, np.int64),
        np.zeros((0, 4)),
        np.zeros((0, 0), np.uint8),
        np.ones(raw.shape[0], np.bool_),
        row_min_u8(hot_delta),
        np.zeros((0, 0), np.uint8),
        np.zeros(0, np.uint16),
        np.zeros(raw.shape[0], np.bool_),
    )


@numba.njit(**_NJIT)
def pass_maps(mean, cut, hot_cut):
    """The compact per-pixel maps of :func:`frame_pass` from a float32 mean
    and the two uint16 cuts: ``mean_q`` = rint(mean) clamped to uint16,
    ``hot_delta`` = hot_cut - cut clamped to [0, 255] (so a pixel noisier
    than ~29 ADU is hot from cut + 255 ADU); and the sum and sum of squares
    of the rounding ``mean - mean_q`` (to correct the image statistics)."""
    rows, cols = mean.shape
    mq = np.empty((rows, cols), np.uint16)
    hd = np.empty((rows, cols), np.uint8)
    fs = 0.0
    fq = 0.0
    for i in range(rows):
        for j in range(cols):
            m = np.rint(np.float64(mean[i, j]))
            m = min(max(m, 0.0), 65535.0)
            mq[i, j] = np.uint16(m)
            f = np.float64(mean[i, j]) - m
            fs += f
            fq += f * f
            d = np.int64(hot_cut[i, j]) - np.int64(cut[i, j])
            hd[i, j] = np.uint8(min(max(d, 0), 255))
    return mq, hd, fs, fq


@numba.njit(**_NJIT)
def row_min_u8(a):
    """Smallest value of each row of a uint8 map (``hot_min`` of the frame
    pass from ``hot_delta``)."""
    out = np.empty(a.shape[0], np.uint8)
    for i in range(a.shape[0]):
        m = np.uint8(255)
        for j in range(a.shape[1]):
            m = min(m, a[i, j])
        out[i] = m
    return out


@numba.njit(**_NJIT)
def raw_pass(raw, clip):
    """Statistics of a frame without pedestal: raw sum, sum of squares and
    the number of clipped pixels (same ``S_*`` layout, other entries 0)."""
    rows, cols = raw.shape
    stats = np.zeros(NSTATS, np.float64)
    s = np.int64(0)
    q = np.int64(0)
    n_clip = 0
    for i in range(rows):
        rs = np.int64(0)
        rq = np.int64(0)
        for j in range(cols):
            r = np.int64(raw[i, j])
            rs += r
            rq += r * r
            if r >= clip:
                n_clip += 1
        s += rs
        q += rq
    stats[S_RAW_SUM] = s
    stats[S_RAW_SUMSQ] = q
    stats[S_N_CLIPPED] = n_clip
    return stats


@numba.njit(nogil=True, cache=True)
def _raw_sums(rr):
    """Exact sum and sum of squares of a row (slice) in 32-bit lanes per
    chunk, as in :func:`_row_pass` (int64 for a chunk with a value >=
    ``_NARROW``); unsigned indices, as there, so that the loops vectorise
    (with signed ones this ran 6x slower on the box rows)."""
    n = rr.shape[0]
    rs = np.int64(0)
    rq = np.int64(0)
    for j0 in range(0, n, _CHUNK):
        j1 = min(j0 + _CHUNK, n)
        a = np.int32(0)
        b = np.uint32(0)
        m = np.uint16(0)
        for jj in range(j1 - j0):
            r16 = rr[np.uint64(j0) + np.uint64(jj)]
            r = np.int32(r16)
            m = max(m, r16)
            a = np.int32(a + r)
            b = np.uint32(b + np.uint32(r * r))
        if m < _NARROW:
            rs += a
            rq += b
        else:
            for jj in range(j1 - j0):
                r64 = np.int64(rr[np.uint64(j0) + np.uint64(jj)])
                rs += r64
                rq += r64 * r64
    return rs, rq


@numba.njit(**_NJIT)
def box_stats(raw, boxes):
    """Per box ``[r0, r1, c0, c1]``: raw sum and raw sum of squares (the
    statistics of a frame without pedestal; with one, the frame pass sums
    the boxes)."""
    nb = boxes.shape[0]
    out = np.zeros((nb, 2), np.float64)
    for b in range(nb):
        r0 = boxes[b, 0]
        r1 = boxes[b, 1]
        c0 = boxes[b, 2]
        c1 = boxes[b, 3]
        s = np.int64(0)
        q = np.int64(0)
        for i in range(r0, r1):
            x, y = _raw_sums(raw[i, c0:c1])
            s += x
            q += y
        out[b, 0] = s
        out[b, 1] = q
    return out


def _ceil_as(like, x):
    """The smallest value of ``like``'s dtype >= the float ``x`` (inf stays
    inf). Only callable from numba code."""
    raise TypeError("_ceil_as is only callable from numba-compiled code")


@overload(_ceil_as, jit_options={"cache": True})
def _ceil_as_impl(like, x):
    if like.dtype == types.float32:

        def impl(like, x):
            t = np.float32(x)
            if np.float64(t) < x:
                t = np.nextafter(t, np.float32(np.inf))
            return t

        return impl
    return lambda like, x: np.float64(x)


@numba.njit(nogil=True, cache=True)
def _window_row(a, b, c, cs, cn, thr8, min_count, line_min, keep, cand, cwords):
    """Which pixels of row ``b`` the noise filter keeps (rows ``a`` above and
    ``c`` below, zero rows at the map's edge) into ``keep`` (uint8 0/1);
    returns their number. Separable window sums (column sums of the three
    rows, then three shifted adds), every loop vectorises; the sum of the 8
    neighbours is the window's minus the pixel, exact in float64 for block
    means (see :func:`neighbour_filter`), and ``s8 / 8 >= nb`` is ``s8 >=
    8 nb`` exactly (a power of two). The line rule (a pixel >= ``line_min``
    whose two opposite neighbours along the row, the column or a diagonal
    are non-zero) is a scalar pass over the rows with a candidate only; at
    the first and last column only the column pair exists (outside the map
    is 0)."""
    n = b.shape[0]
    for j in range(n):
        x = a[j]
        y = b[j]
        z = c[j]
        cs[j + 1] = (x + y) + z
        cn[j + 1] = (np.uint8(x != 0.0) + np.uint8(y != 0.0)) + np.uint8(z != 0.0)
    left = cs[:n]
    mid = cs[1 : n + 1]
    right = cs[2 : n + 2]
    nl = cn[:n]
    nm = cn[1 : n + 1]
    nr = cn[2 : n + 2]
    one = np.uint8(1)
    zero = np.uint8(0)
    nk = np.int32(0)
    nc = np.int32(0)
    for j in range(n):
        v = b[j]
        s8 = ((left[j] + mid[j]) + right[j]) - v
        n9 = np.uint8(np.uint8(nl[j] + nm[j]) + nr[j])
        kp = (v != 0.0) & (s8 >= thr8) & (n9 >= min_count)
        keep[j] = one if kp else zero
        nk = np.int32(nk + np.int32(kp))
        # candidates of the line rule: non-zero, bright enough, dropped so far
        cd = (v != 0.0) & (v >= line_min) & ~kp
        cand[j] = one if cd else zero
        nc = np.int32(nc + np.int32(cd))
    if nc == 0:
        return nk
    # Line rule, scalar on the candidates only (8 mask bytes at a time,
    # skipping empty words; noise alone gives ~1 per LIME frame), so the
    # vector loop above stays as fast as the plain filter.
    for wi in range(cwords.shape[0]):
        if cwords[wi] == 0:
            continue
        for j in range(wi * 8, min(wi * 8 + 8, n)):
            if not cand[j]:
                continue
            line = (a[j] != 0.0) & (c[j] != 0.0)
            if 0 < j < n - 1:
                line |= (b[j - 1] != 0.0) & (b[j + 1] != 0.0)
                line |= (a[j - 1] != 0.0) & (c[j + 1] != 0.0)
                line |= (a[j + 1] != 0.0) & (c[j - 1] != 0.0)
            if line:
                keep[j] = one
                nk = np.int32(nk + 1)
    return nk


@numba.njit(nogil=True, cache=True)
def _any_nonzero(b):
    """Whether a row holds a non-zero value (counted, not searched, so the
    loop vectorises: it costs a tenth of the row's windows)."""
    n = np.int32(0)
    for j in range(b.shape[0]):
        n = np.int32(n + np.int32(b[j] != 0.0))
    return n > 0


@numba.njit(**_NJIT)
def _filter_rows(rb, nb_mean_min, min_count, line_min, out, prow, pcol):
    """Shared body of :func:`neighbour_filter` (writes the filtered map to
    ``out`` when it has the map's shape) and :func:`filtered_points`
    (appends the kept pixels to ``prow``/``pcol`` while they have room);
    returns the number of kept pixels. A row keeps a few pixels: the point
    list is built from the keep mask 8 bytes at a time, skipping empty words."""
    rows, cols = rb.shape
    zero_row = np.zeros(cols, rb.dtype)
    cs = np.zeros(cols + 2, rb.dtype)
    # counts of non-zero pixels (at most 9 in a window): uint8 lanes
    cn = np.zeros(cols + 2, np.uint8)
    nw = (cols + 7) // 8
    keep8 = np.zeros(nw * 8, np.uint8)
    words = keep8.view(np.uint64)
    keep = keep8[:cols]
    cand8 = np.zeros(nw * 8, np.uint8)  # line-rule candidates of the row
    cwords = cand8.view(np.uint64)
    cand = cand8[:cols]
    write = out.shape[0] == rows and out.shape[1] == cols
    room = prow.shape[0]
    # the thresholds in the map's type, rounded up: for x of that type,
    # x >= t exactly when x >= the float64 threshold (no conversion per pixel)
    thr8 = _ceil_as(cs, nb_mean_min * 8.0)
    lmin = _ceil_as(cs, line_min)
    # a window holds at most 9 non-zero pixels: min_count above 9 keeps none
    mc = np.uint8(min(max(min_count, 0), 10))
    k = 0
    for i in range(rows):
        a = rb[i - 1] if i > 0 else zero_row
        b = rb[i]
        c = rb[i + 1] if i + 1 < rows else zero_row
        if _any_nonzero(b):
            nk = _window_row(a, b, c, cs, cn, thr8, mc, lmin, keep, cand, cwords)
        else:
            # a row without light keeps nothing: skip its windows (a quarter
            # of LIME's rows, those outside the acceptance, are all 0)
            keep[:] = 0
            nk = 0
        if write:
            o = out[i]
            for j in range(cols):
                o[j] = b[j] if keep[j] else 0.0
        if nk > 0:
            for wi in range(nw):
                if words[wi] == 0:
                    continue
                for j in range(wi * 8, min(wi * 8 + 8, cols)):
                    if keep[j]:
                        if k < room:
                            prow[k] = i
                            pcol[k] = j
                        k += 1
    return k


@numba.njit(**_NJIT)
def neighbour_filter(rb, nb_mean_min, min_count, line_min=np.inf):
    """Noise reduction on the rebinned map, evaluated on the input map (not
    updated in place): a non-zero pixel is zeroed when the mean of its 8
    neighbours (outside the map counts as 0, always divided by 8) is below
    ``nb_mean_min`` or when fewer than ``min_count`` pixels of its 3x3 window
    (itself included) are non-zero, unless (line rule, for a faint track one
    pixel wide: it has only 2 non-zero neighbours) it is >= ``line_min`` and
    its two opposite neighbours along its row, its column or a diagonal are
    both non-zero (``inf`` = no line rule).

    The float64 window sums are exact (values are block means of float32
    numbers), so they equal the reference's convolution whatever the order
    of the additions."""
    out = np.empty_like(rb)
    none = np.empty(0, np.int64)
    _filter_rows(rb, nb_mean_min, min_count, line_min, out, none, none)
    return out


@numba.njit(**_NJIT)
def filtered_points(rb, nb_mean_min, min_count, max_points, line_min=np.inf):
    """``nonzero_points(neighbour_filter(rb, ...))`` without writing the
    filtered map: row-major coordinates of the pixels the filter keeps, or
    (when more than ``max_points`` pass) empty arrays and the count."""
    prow = np.empty(max_points, np.int64)
    pcol = np.empty(max_points, np.int64)
    none = np.empty((0, 0), rb.dtype)
    n = _filter_rows(rb, nb_mean_min, min_count, line_min, none, prow, pcol)
    if n > max_points:
        return prow[:0], pcol[:0], n
    return prow[:n], pcol[:n], n


@numba.njit(**_NJIT)
def nonzero_points(rb):
    """Row-major coordinates of the non-zero pixels (== ``np.nonzero``)."""
    rows, cols = rb.shape
    n = 0
    for i in range(rows):
        for j in range(cols):
            if rb[i, j] != 0.0:
                n += 1
    pr = np.empty(n, np.int64)
    pc = np.empty(n, np.int64)
    k = 0
    for i in range(rows):
        for j in range(cols):
            if rb[i, j] != 0.0:
                pr[k] = i
                pc[k] = j
                k += 1
    return pr, pc


@numba.njit(**_NJIT)
def _grid_neighbours(r, c, e, head, nxt, height, width, out):
    """Indices of the points within cityblock distance ``e`` of grid cell
    (r, c), written to ``out`` in a fixed walk order; returns their number."""
    m = 0
    for dr in range(-e, e + 1):
        rr = r + dr
        if rr < 0 or rr >= height:
            continue
        rem = e - abs(dr)
        for dc in range(-rem, rem + 1):
            cc = c + dc
            if cc < 0 or cc >= width:
                continue
            q = head[rr * width + cc]
            while q >= 0:
                out[m] = q
                m += 1
                q = nxt[q]
    return m


@numba.njit(**_NJIT)
def dbscan(prow, pcol, eps, min_samples):
    """DBSCAN with the cityblock metric on non-negative integer points.

    Gives labels identical to ``sklearn.cluster.DBSCAN(eps, min_samples,
    metric="cityblock")`` on the same points in the same order: neighbourhoods
    are ``distance <= eps`` and include the point itself; clusters are numbered
    in the order of their lowest-index core point; a border point belongs to
    the first cluster (in that order) that reaches it - sklearn expands one
    cluster completely before starting the next, so that is what its
    ``dbscan_inner`` produces. Neighbours are found on a grid (cell = one
    pixel, chained for duplicate points), so the cost is O(n * eps^2).
    """
    n = prow.shape[0]
    labels = np.full(n, -1, np.int64)
    if n == 0 or eps < 0:
        return labels
    e = int(np.floor(eps))
    rmin = prow.min()
    cmin = pcol.min()
    height = prow.max() - rmin + 1
    width = pcol.max() - cmin + 1
    head = np.full(height * width, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    for k in range(n - 1, -1, -1):
        cell = (prow[k] - rmin) * width + (pcol[k] - cmin)
        nxt[k] = head[cell]
        head[cell] = k
    # Core-point counting and cluster expansion walk the same neighbourhoods,
    # in the same order (the order decides border points, as in sklearn).
    nbr = np.empty(n, np.int64)
    core = np.zeros(n, np.bool_)
    for k in range(n):
        core[k] = (
            _grid_neighbours(prow[k] - rmin, pcol[k] - cmin, e, head, nxt, height, width, nbr)
            >= min_samples
        )
    stack = np.empty(n, np.int64)
    label = 0
    for k in range(n):
        if labels[k] != -1 or not core[k]:
            continue
        labels[k] = label
        sp = 0
        stack[sp] = k
        sp += 1
        while sp > 0:
            sp -= 1
            p = stack[sp]
            m = _grid_neighbours(prow[p] - rmin, pcol[p] - cmin, e, head, nxt, height, width, nbr)
            for i in range(m):
                q = nbr[i]
                if labels[q] == -1:
                    labels[q] = label
                    if core[q]:
                        stack[sp] = q
                        sp += 1
        label += 1
    return labels


@numba.njit(**_NJIT)
def integration_region(prow, pcol, labels, margin, owner, own, blocks):
    """Integration region of each cluster on the rebinned grid: its own blocks
    plus every free block within Chebyshev distance ``margin`` of them; a free
    block near several clusters goes to the lowest label.

    Sparse, O(cluster points * (2 margin + 1)^2), never O(map): ``owner``
    (int32, -1 = no cluster) and ``own`` (bool) are work maps of the grid's
    shape that must be all -1 / False on entry; the flat indices of the
    region's blocks are appended to ``blocks`` (room for points * (2 margin
    + 1)^2), each once, and their number returned. :func:`clear_region`
    puts the work maps back, so they are allocated once per camera (a fresh
    LIME-sized map per frame cost more than the features themselves)."""
    nrows, ncols = owner.shape
    n = 0
    for p in range(prow.shape[0]):
        k = labels[p]
        if k >= 0:
            i = prow[p]
            j = pcol[p]
            if owner[i, j] < 0:
                blocks[n] = i * ncols + j
                n += 1
            owner[i, j] = k
            own[i, j] = True
    if margin > 0:
        for p in range(prow.shape[0]):
            k = labels[p]
            if k < 0:
                continue
            i = prow[p]
            j = pcol[p]
            for ii in range(max(i - margin, 0), min(i + margin + 1, nrows)):
                for jj in range(max(j - margin, 0), min(j + margin + 1, ncols)):
                    if own[ii, jj]:
                        continue
                    o = owner[ii, jj]
                    if o < 0:
                        blocks[n] = ii * ncols + jj
                        n += 1
                        owner[ii, jj] = k
                    elif k < o:
                        owner[ii, jj] = k
    return n


@numba.njit(**_NJIT)
def clear_region(owner, own, blocks, n):
    """Undo :func:`integration_region` on its work maps (only the ``n``
    region blocks are touched)."""
    ncols = owner.shape[1]
    for q in range(n):
        i = blocks[q] // ncols
        j = blocks[q] - i * ncols
        owner[i, j] = -1
        own[i, j] = False


def region_room(npts: int, margin: int) -> int:
    """Room :func:`integration_region` needs in ``blocks``."""
    return max(npts, 1) * (2 * max(margin, 0) + 1) ** 2


@intrinsic
def _prefetch(typingctx, a, i, j):
    """Hint the cache to load ``a[i, j]`` (2-D array, indices in bounds):
    ``llvm.prefetch`` (read, keep in every level). For gathers the hardware
    prefetcher cannot guess, such as a cluster's blocks on a cold frame."""
    sig = types.void(a, i, j)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        arr = context.make_array(aty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, aty, arr, [args[1], args[2]], wraparound=False
        )
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: blocks looked ahead by the prefetches of cluster_features
_AHEAD = 8


@numba.njit(nogil=True, cache=True)
def _prefetch_block(raw, mean, cut, bi, bj, factor, with_cut):
    """Prefetch the full-resolution rows of block (bi, bj) of the frame, the
    mean map and (``with_cut``) the cut map."""
    rows, cols = raw.shape
    j = min(bj * factor, cols - 1)
    for i in range(bi * factor, min(bi * factor + factor, rows)):
        _prefetch(raw, i, j)
        _prefetch(mean, i, j)
        if with_cut:
            _prefetch(cut, i, j)


@numba.njit(**_NJIT)
def cluster_features(
    raw, mean, cut, clip, r0, r1, c0, c1, factor, prow, pcol, labels, ncl, owner, blocks
):
    """Per-cluster features from the full-resolution pixels of each cluster's
    rebinned blocks (footprint) inside the acceptance.

    integral = sum of ``float32(raw) - mean`` over the pixels below the clip
    of the cluster's integration region (``owner`` and its block list
    ``blocks``, see :func:`integration_region`: the footprint plus a
    margin, so that the tails of a spot below the
    zero-suppression threshold are not lost); size = footprint pixels; hits = footprint pixels passing zero
    suppression; barycentre, PCA and rms use the hits weighted by their
    pedestal-subtracted value; length/width = extent of the hits along the
    principal axes + 1 pixel; angle in degrees in (-90, 90], measured from the
    column axis towards increasing rows; bounding box = footprint blocks,
    half-open ``[row_min, row_max) x [col_min, col_max)``.
    """
    out = np.zeros((ncl, NFEATURES), np.float64)
    sw = np.zeros(ncl)
    swr = np.zeros(ncl)
    swc = np.zeros(ncl)
    sd = np.zeros(ncl)
    sdd = np.zeros(ncl)
    for k in range(ncl):
        out[k, F_ROW_MIN] = 1e18
        out[k, F_COL_MIN] = 1e18
        out[k, F_ROW_MAX] = -1e18
        out[k, F_COL_MAX] = -1e18
    npts = prow.shape[0]
    rows, cols = raw.shape
    # the pedestal-subtracted value and hit flag of every footprint pixel, in
    # visiting order: passes 2 and 3 replay them instead of reading the
    # frame, the mean and the cut again (cache misses on large clusters)
    nlab = 0
    for p in range(npts):
        nlab += labels[p] >= 0
    dbuf = np.empty(nlab * factor * factor)
    hbuf = np.empty(nlab * factor * factor, np.bool_)
    q = 0
    # pass 1: sums, counts, weighted barycentre; each block is summed in
    # local variables and added to its cluster once (the cluster arrays may
    # alias the images as far as the compiler knows, so per-pixel updates
    # would go through memory)
    for p in range(npts):
        # the blocks of a frame just streamed by the pass are cold
        pa = p + _AHEAD
        if pa < npts and labels[pa] >= 0:
            _prefetch_block(raw, mean, cut, prow[pa], pcol[pa], factor, True)
        k = labels[p]
        if k < 0:
            continue
        out[k, F_NBLOCKS] += 1
        br0 = prow[p] * factor
        bc0 = pcol[p] * factor
        out[k, F_ROW_MIN] = min(out[k, F_ROW_MIN], br0)
        out[k, F_ROW_MAX] = max(out[k, F_ROW_MAX], br0 + factor)
        out[k, F_COL_MIN] = min(out[k, F_COL_MIN], bc0)
        out[k, F_COL_MAX] = max(out[k, F_COL_MAX], bc0 + factor)
        j0 = max(bc0, c0)
        j1 = min(bc0 + factor, c1, cols)
        nsize = 0
        nhit = 0
        w = 0.0
        wr = 0.0
        wc = 0.0
        wdd = 0.0
        mx = out[k, F_MAX]
        for i in range(max(br0, r0), min(br0 + factor, r1, rows)):
            rr = raw[i]
            mr = mean[i]
            cr = cut[i]
            nsize += max(j1 - j0, 0)
            # branch-free: whether a pixel is a hit is a coin flip near the
            # threshold, and a mispredicted branch costs more than the sums
            for j in range(j0, j1):
                r = rr[j]
                hit = (r < clip) & (r >= cr[j])
                d = np.float64(np.float32(r) - mr[j]) if hit else 0.0
                dbuf[q] = d
                hbuf[q] = hit
                q += 1
                nhit += hit
                w += d
                wr += d * i
                wc += d * j
                wdd += d * d
                mx = max(mx, d)
        out[k, F_SIZE] += nsize
        out[k, F_NHITS] += nhit
        sw[k] += w
        swr[k] += wr
        swc[k] += wc
        sd[k] += w
        sdd[k] += wdd
        out[k, F_MAX] = mx
    # integral over the integration region, block by block of the region's
    # list (see integration_region)
    nbc = owner.shape[1]
    for q in range(blocks.shape[0]):
        if q + _AHEAD < blocks.shape[0]:
            qa = blocks[q + _AHEAD]
            _prefetch_block(raw, mean, cut, qa // nbc, qa % nbc, factor, False)
        bi = blocks[q] // nbc
        bj = blocks[q] - bi * nbc
        k = owner[bi, bj]
        j0 = max(bj * factor, c0)
        j1 = min(bj * factor + factor, c1, cols)
        t = 0.0
        for i in range(max(bi * factor, r0), min(bi * factor + factor, r1, rows)):
            rr = raw[i]
            mr = mean[i]
            for j in range(j0, j1):
                r = rr[j]
                t += np.float64(np.float32(r) - mr[j]) if r < clip else 0.0
        out[k, F_INTEGRAL] += t
    for k in range(ncl):
        if sw[k] > 0:
            out[k, F_ROW] = swr[k] / sw[k]
            out[k, F_COL] = swc[k] / sw[k]
        else:
            out[k, F_ROW] = 0.5 * (out[k, F_ROW_MIN] + out[k, F_ROW_MAX] - 1)
            out[k, F_COL] = 0.5 * (out[k, F_COL_MIN] + out[k, F_COL_MAX] - 1)
    # pass 2: centred weighted covariance
    q = 0
    srr = np.zeros(ncl)
    scc = np.zeros(ncl)
    src = np.zeros(ncl)
    for p in range(npts):
        k = labels[p]
        if k < 0:
            continue
        br0 = prow[p] * factor
        bc0 = pcol[p] * factor
        cy = out[k, F_ROW]
        cx = out[k, F_COL]
        yy = 0.0
        xx = 0.0
        xy = 0.0
        for i in range(max(br0, r0), min(br0 + factor, r1, rows)):
            y = i - cy
            for j in range(max(bc0, c0), min(bc0 + factor, c1, cols)):
                d = dbuf[q]
                q += 1
                x = j - cx
                yy += d * y * y
                xx += d * x * x
                xy += d * x * y
        srr[k] += yy
        scc[k] += xx
        src[k] += xy
    ux = np.zeros(ncl)
    uy = np.zeros(ncl)
    for k in range(ncl):
        if sw[k] > 0:
            a = scc[k] / sw[k]
            c = srr[k] / sw[k]
            b = src[k] / sw[k]
            half = 0.5 * (a + c)
            disc = np.sqrt(0.25 * (a - c) * (a - c) + b * b)
            l1 = half + disc
            l2 = max(half - disc, 0.0)
            theta = 0.5 * np.arctan2(2.0 * b, a - c)
            ux[k] = np.cos(theta)
            uy[k] = np.sin(theta)
            ang = np.degrees(theta)
            if ang <= -90.0:
                ang += 180.0
            out[k, F_ANGLE] = ang
            out[k, F_SIGMA_LONG] = np.sqrt(l1)
            out[k, F_SIGMA_LAT] = np.sqrt(l2)
            # a uniform segment of length L blurred by a Gaussian of sigma
            # s has variances L^2/12 + s^2 along and s^2 across it
            out[k, F_TRACK_LENGTH] = np.sqrt(12.0 * 2.0 * disc)
        else:
            ux[k] = 1.0
    # pass 3: extents along the principal axes
    q = 0
    pmin = np.full(ncl, 1e18)
    pmax = np.full(ncl, -1e18)
    qmin = np.full(ncl, 1e18)
    qmax = np.full(ncl, -1e18)
    for p in range(npts):
        k = labels[p]
        if k < 0:
            continue
        br0 = prow[p] * factor
        bc0 = pcol[p] * factor
        cy = out[k, F_ROW]
        cx = out[k, F_COL]
        ax = ux[k]
        ay = uy[k]
        u0 = pmin[k]
        u1 = pmax[k]
        v0 = qmin[k]
        v1 = qmax[k]
        for i in range(max(br0, r0), min(br0 + factor, r1, rows)):
            y = i - cy
            for j in range(max(bc0, c0), min(bc0 + factor, c1, cols)):
                hit = hbuf[q]
                q += 1
                x = j - cx
                u = x * ax + y * ay
                v = -x * ay + y * ax
                u0 = min(u0, u if hit else 1e18)
                u1 = max(u1, u if hit else -1e18)
                v0 = min(v0, v if hit else 1e18)
                v1 = max(v1, v if hit else -1e18)
        pmin[k] = u0
        pmax[k] = u1
        qmin[k] = v0
        qmax[k] = v1
    for k in range(ncl):
        nh = out[k, F_NHITS]
        if nh > 0:
            out[k, F_LENGTH] = pmax[k] - pmin[k] + 1.0
            out[k, F_WIDTH] = qmax[k] - qmin[k] + 1.0
            m = sd[k] / nh
            out[k, F_RMS] = np.sqrt(max(sdd[k] / nh - m * m, 0.0))
            out[k, F_DENSITY] = out[k, F_INTEGRAL] / nh
            out[k, F_SLIMNESS] = out[k, F_WIDTH] / out[k, F_LENGTH]
    return out


@numba.njit(**_NJIT)
def pedestal_accumulate(raw, shift, s1, s2):
    """Add one frame to shifted per-pixel sums (exact int64 arithmetic):
    ``s1 += raw - shift``, ``s2 += (raw - shift)**2``."""
    rows, cols = raw.shape
    for i in range(rows):
        for j in range(cols):
            d = np.int64(raw[i, j]) - np.int64(shift[i, j])
            s1[i, j] += d
            s2[i, j] += d * d


@numba.njit(**_NJIT)
def _sort_small(a, n):
    """In-place insertion sort of ``a[:n]`` (n is the handful of frames of an
    estimate: no allocation, unlike ``np.sort``, in the per-pixel loop; also
    a small seed's strip positions in ``directional._strip_count``)."""
    for k in range(1, n):
        v = a[k]
        m = k - 1
        while m >= 0 and a[m] > v:
            a[m + 1] = a[m]
            m -= 1
        a[m + 1] = v


@numba.njit(**_NJIT)
def _median_sorted(a, n):
    if n % 2 == 1:
        return a[n // 2]
    return 0.5 * (a[n // 2 - 1] + a[n // 2])


@numba.njit(**_NJIT)
def pedestal_estimate(stack, clip_nsigma, min_spread):
    """Robust per-pixel pedestal from a few physics frames (n, rows, cols):
    median and MAD scale, then mean and standard deviation (ddof=1) of the
    samples within ``max(clip_nsigma * 1.4826 * MAD, min_spread)`` of the
    median, so that a track crossing a pixel in one frame does not bias it."""
    n, rows, cols = stack.shape
    mean = np.empty((rows, cols), np.float32)
    sigma = np.empty((rows, cols), np.float32)
    buf = np.empty(n, np.float64)
    srt = np.empty(n, np.float64)
    dev = np.empty(n, np.float64)
    for i in range(rows):
        for j in range(cols):
            for k in range(n):
                buf[k] = stack[k, i, j]
                srt[k] = buf[k]
            _sort_small(srt, n)
            med = _median_sorted(srt, n)
            for k in range(n):
                dev[k] = abs(srt[k] - med)
            _sort_small(dev, n)
            mad = _median_sorted(dev, n)
            lim = max(clip_nsigma * 1.4826 * mad, min_spread)
            s = 0.0
            q = 0.0
            m = 0
            for k in range(n):
                if abs(buf[k] - med) <= lim:
                    s += buf[k]
                    m += 1
            mu = s / m
            for k in range(n):
                if abs(buf[k] - med) <= lim:
                    q += (buf[k] - mu) * (buf[k] - mu)
            mean[i, j] = mu
            sigma[i, j] = np.sqrt(q / (m - 1)) if m > 1 else 0.0
    return mean, sigma


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _row_sum_u16(a):
    s = np.int32(0)
    for j in range(a.shape[0]):
        s += np.int32(a[j])
    return np.int64(s)


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _row_sum_f32(a):
    s = np.float32(0.0)
    for j in range(a.shape[0]):
        s += a[j]
    return np.float64(s)


@numba.njit(**_NJIT)
def stream_sum(a):
    """One streaming read of a 2-D uint16 array (the bench's floor)."""
    s = np.int64(0)
    for i in range(a.shape[0]):
        s += _row_sum_u16(a[i])
    return s


@numba.njit(**_NJIT)
def stream_sum_f32(a):
    """One streaming read of a 2-D float32 array (the bench's floor)."""
    s = 0.0
    for i in range(a.shape[0]):
        s += _row_sum_f32(a[i])
    return s


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _row_sum_u8(a):
    s = np.int32(0)
    for j in range(a.shape[0]):
        s += np.int32(a[j])
    return np.int64(s)


@numba.njit(**_NJIT)
def stream_sum_u8(a):
    """One streaming read of a 2-D uint8 array (the bench's floor)."""
    s = np.int64(0)
    for i in range(a.shape[0]):
        s += _row_sum_u8(a[i])
    return s


@numba.njit(**_NJIT)
def stream_maps_sum(mean_q, cut_off, pk, packed):
    """One streaming read of the maps the frame pass streams per row (the
    bench's floor): the packed byte in ``packed`` rows, else ``mean_q`` and
    the cut offset."""
    s = np.int64(0)
    for i in range(mean_q.shape[0]):
        if packed[i]:
            s += _row_sum_u8(pk[i])
        else:
            s += _row_sum_u16(mean_q[i]) + _row_sum_u8(cut_off[i])
    return s


@numba.njit(**_NJIT)
def classify_rows(
    f,
    fe_int_min,
    fe_int_max,
    fe_rms_min,
    fe_len_max_mm,
    fe_slim_min,
    alpha_density_min,
    alpha_len_min,
    muon_len_min,
    muon_slim_max,
    pixel_mm,
    other,
    fe55,
    alpha,
    muon,
):
    """Class code (int8) of each feature row, the first class that matches
    in the order alpha, muon, 55Fe (the cuts of :mod:`classify`)."""
    out = np.empty(f.shape[0], np.int8)
    for k in range(f.shape[0]):
        integral = f[k, F_INTEGRAL]
        length = f[k, F_LENGTH]
        slim = f[k, F_SLIMNESS]
        c = other
        if (
            integral > fe_int_min
            and integral < fe_int_max
            and f[k, F_RMS] > fe_rms_min
            and length * pixel_mm < fe_len_max_mm
            and slim >= fe_slim_min
        ):
            c = fe55
        if length >= muon_len_min and slim <= muon_slim_max:
            c = muon
        if f[k, F_DENSITY] >= alpha_density_min and length >= alpha_len_min:
            c = alpha
        out[k] = c
    return out
