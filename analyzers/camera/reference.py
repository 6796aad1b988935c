"""Plain numpy/scipy/scikit-learn implementation of the camera chain.

This is the oracle of the tests and the baseline of ``cygno-online bench
camera``: written the way a physicist would write it with vectorised numpy,
``scipy.ndimage`` and ``sklearn.cluster.DBSCAN``, with no Python loop over
pixels. It follows the conventions spelled out in :mod:`kernels` (float32
pedestal subtraction, upper 2x2 median, float64 block means) so that integer
stages match exactly and float stages to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cygno_online.analyzers.camera import kernels as kn
from scipy import ndimage
from sklearn.cluster import DBSCAN

_K8 = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
_K9 = np.ones((3, 3), dtype=np.int64)


def acceptance_mask(shape: tuple[int, int], acc: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = acc
    m = np.zeros(shape, dtype=bool)
    m[max(r0, 0) : r1, max(c0, 0) : c1] = True
    return m


def pedestal_subtract(raw: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return raw.astype(np.float32) - mean


def zero_suppress(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    clip: int,
    acc: tuple[int, int, int, int],
) -> np.ndarray:
    d = pedestal_subtract(raw, mean)
    keep = (raw < clip) & (d > thr) & acceptance_mask(raw.shape, acc)
    # the clustering map's value: raw minus the integer (rounded) pedestal
    mq = np.clip(np.rint(mean.astype(np.float64)), 0, 65535)
    return np.where(keep, (raw - mq).astype(np.float32), np.float32(0))


def median2x2(z: np.ndarray) -> np.ndarray:
    # size 2 -> window rows/cols (i-1, i); rank 2 of 4 = upper median
    return ndimage.median_filter(z, size=2, mode="nearest")


def rebin_mean(z: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = z.shape[0] // factor, z.shape[1] // factor
    blocks = z[: rows * factor, : cols * factor].astype(np.float64)
    return blocks.reshape(rows, factor, cols, factor).sum(axis=(1, 3)) / (factor * factor)


def neighbour_filter(
    rb: np.ndarray, nb_mean_min: float, min_count: int, line_min: float = np.inf
) -> np.ndarray:
    s = ndimage.convolve(rb, _K8, mode="constant", cval=0.0)
    nz = rb != 0
    n = ndimage.convolve(nz.astype(np.int64), _K9, mode="constant", cval=0)
    keep = nz & (s / 8.0 >= nb_mean_min) & (n >= min_count)
    # line rule: the two opposite neighbours along the row, the column or a
    # diagonal are non-zero (outside the map = 0)
    p = np.pad(nz, 1)
    line = (
        (p[1:-1, :-2] & p[1:-1, 2:])
        | (p[:-2, 1:-1] & p[2:, 1:-1])
        | (p[:-2, :-2] & p[2:, 2:])
        | (p[:-2, 2:] & p[2:, :-2])
    )
    keep |= nz & line & (rb >= line_min)
    return np.where(keep, rb, 0.0)


def dbscan_points(prow: np.ndarray, pcol: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    if prow.size == 0:
        return np.empty(0, dtype=np.int64)
    X = np.column_stack([prow, pcol]).astype(np.float64)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="cityblock").fit(X).labels_


def cluster_map(
    rb: np.ndarray, eps: float, min_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prow, pcol = np.nonzero(rb)
    return prow, pcol, dbscan_points(prow, pcol, eps, min_samples)


def cluster_features(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    clip: int,
    acc: tuple[int, int, int, int],
    factor: int,
    prow: np.ndarray,
    pcol: np.ndarray,
    labels: np.ndarray,
    margin: int = 0,
) -> np.ndarray:
    """Same table as :func:`kernels.cluster_features`, with numpy: every
    cluster pixel of the rebinned map is expanded to its full-resolution block,
    sums are ``np.bincount`` by label, PCA is ``np.linalg.eigh`` per cluster."""
    ncl = int(labels.max()) + 1 if labels.size else 0
    out = np.zeros((ncl, kn.NFEATURES))
    if ncl == 0:
        return out
    sel = labels >= 0
    lab_b = labels[sel]
    pr, pc = prow[sel], pcol[sel]
    out[:, kn.F_NBLOCKS] = np.bincount(lab_b, minlength=ncl)
    out[:, kn.F_ROW_MIN] = np.full(ncl, np.inf)
    np.minimum.at(out[:, kn.F_ROW_MIN], lab_b, pr * factor)
    out[:, kn.F_ROW_MAX] = -np.inf
    np.maximum.at(out[:, kn.F_ROW_MAX], lab_b, pr * factor + factor)
    out[:, kn.F_COL_MIN] = np.inf
    np.minimum.at(out[:, kn.F_COL_MIN], lab_b, pc * factor)
    out[:, kn.F_COL_MAX] = -np.inf
    np.maximum.at(out[:, kn.F_COL_MAX], lab_b, pc * factor + factor)

    off = np.arange(factor)
    rr, cc, lab = np.broadcast_arrays(
        pr[:, None, None] * factor + off[None, :, None],
        pc[:, None, None] * factor + off[None, None, :],
        lab_b[:, None, None],
    )
    rr, cc, lab = rr.ravel(), cc.ravel(), lab.ravel()
    r0, r1, c0, c1 = acc
    inside = (rr >= r0) & (rr < min(r1, raw.shape[0])) & (cc >= c0) & (cc < min(c1, raw.shape[1]))
    rr, cc, lab = rr[inside], cc[inside], lab[inside]
    r = raw[rr, cc]
    d = (r.astype(np.float32) - mean[rr, cc]).astype(np.float64)
    notclip = r < clip
    hit = notclip & (d > thr[rr, cc])
    out[:, kn.F_SIZE] = np.bincount(lab, minlength=ncl)
    owner = owner_map(prow, pcol, labels, raw.shape[0] // factor, raw.shape[1] // factor, margin)
    out[:, kn.F_INTEGRAL] = _region_integral(raw, mean, clip, acc, factor, owner, ncl)
    hl, hr, hc, hd = lab[hit], rr[hit], cc[hit], d[hit]
    nh = np.bincount(hl, minlength=ncl).astype(np.float64)
    out[:, kn.F_NHITS] = nh
    sw = np.bincount(hl, weights=hd, minlength=ncl)
    np.maximum.at(out[:, kn.F_MAX], hl, hd)
    for k in range(ncl):
        m = hl == k
        if sw[k] <= 0:
            out[k, kn.F_ROW] = 0.5 * (out[k, kn.F_ROW_MIN] + out[k, kn.F_ROW_MAX] - 1)
            out[k, kn.F_COL] = 0.5 * (out[k, kn.F_COL_MIN] + out[k, kn.F_COL_MAX] - 1)
            continue
        w = hd[m]
        y, x = hr[m].astype(np.float64), hc[m].astype(np.float64)
        by, bx = np.average(y, weights=w), np.average(x, weights=w)
        out[k, kn.F_ROW], out[k, kn.F_COL] = by, bx
        cov = np.cov(np.vstack([x - bx, y - by]), aweights=w, bias=True)
        vals, vecs = np.linalg.eigh(cov)
        major, minor = vecs[:, 1], vecs[:, 0]
        ang = np.degrees(np.arctan2(major[1], major[0]))
        ang = (ang + 90.0) % 180.0 - 90.0  # fold to [-90, 90)
        if ang == -90.0:
            ang = 90.0
        out[k, kn.F_ANGLE] = ang
        out[k, kn.F_SIGMA_LONG] = np.sqrt(max(vals[1], 0.0))
        out[k, kn.F_SIGMA_LAT] = np.sqrt(max(vals[0], 0.0))
        a, c, b = cov[0, 0], cov[1, 1], cov[0, 1]
        out[k, kn.F_TRACK_LENGTH] = np.sqrt(12.0 * 2.0 * np.sqrt(0.25 * (a - c) ** 2 + b * b))
        xy = np.vstack([x - bx, y - by])
        u, v = major @ xy, minor @ xy
        out[k, kn.F_LENGTH] = np.ptp(u) + 1.0
        out[k, kn.F_WIDTH] = np.ptp(v) + 1.0
        out[k, kn.F_RMS] = np.std(w)
        out[k, kn.F_DENSITY] = out[k, kn.F_INTEGRAL] / nh[k]
        out[k, kn.F_SLIMNESS] = out[k, kn.F_WIDTH] / out[k, kn.F_LENGTH]
    return out


def owner_map(
    prow: np.ndarray, pcol: np.ndarray, labels: np.ndarray, nrows: int, ncols: int, margin: int
) -> np.ndarray:
    big = 1 << 40  # exact as the float cval ndimage uses
    own = np.full((nrows, ncols), big, dtype=np.int64)
    sel = labels >= 0
    own[prow[sel], pcol[sel]] = labels[sel]
    if margin > 0:
        near = ndimage.minimum_filter(own, size=2 * margin + 1, mode="constant", cval=big)
        own = np.where(own == big, near, own)
    return np.where(own == big, -1, own)


def _region_integral(raw, mean, clip, acc, factor, owner, ncl) -> np.ndarray:
    rows, cols = owner.shape
    full = np.repeat(np.repeat(owner, factor, axis=0), factor, axis=1)
    sub = raw[: rows * factor, : cols * factor]
    d = pedestal_subtract(sub, mean[: rows * factor, : cols * factor]).astype(np.float64)
    use = (full >= 0) & (sub < clip) & acceptance_mask(sub.shape, acc)
    return np.bincount(full[use], weights=d[use], minlength=ncl)[:ncl]


def frame_stats(raw: np.ndarray, mean: np.ndarray | None) -> dict[str, float]:
    r = raw.astype(np.float64)
    out = {"raw_mean": float(r.mean()), "raw_rms": float(r.std())}
    if mean is not None:
        d = pedestal_subtract(raw, mean).astype(np.float64)
        out["ped_mean"] = float(d.mean())
        out["ped_rms"] = float(d.std())
    return out


def box_stats(raw: np.ndarray, mean: np.ndarray | None, boxes: np.ndarray) -> np.ndarray:
    """(nbox, 4): raw mean, raw rms, pedestal-subtracted mean and rms."""
    out = np.zeros((len(boxes), 4))
    for b, (r0, r1, c0, c1) in enumerate(boxes):
        r = raw[r0:r1, c0:c1].astype(np.float64)
        out[b, 0], out[b, 1] = r.mean(), r.std()
        if mean is not None:
            d = pedestal_subtract(raw[r0:r1, c0:c1], mean[r0:r1, c0:c1]).astype(np.float64)
            out[b, 2], out[b, 3] = d.mean(), d.std()
    return out


def process_frame(
    raw: np.ndarray,
    mean: np.ndarray,
    thr: np.ndarray,
    *,
    clip: int,
    acc: tuple[int, int, int, int],
    factor: int,
    nb_mean_min: float,
    min_count: int,
    eps: float,
    min_samples: int,
    boxes: np.ndarray,
    margin: int = 1,
    directional: tuple[Any, ...] | None = None,
    line_min: float = np.inf,
    extension: tuple[float, int, int] | None = None,
) -> dict[str, Any]:
    """The whole per-frame chain (what the bench times against the kernels);
    ``directional`` = :meth:`CameraConfig.directional_args` to run the
    directional clustering after DBSCAN; ``extension`` =
    :meth:`CameraConfig.reference_extension` to extend the track lengths."""
    stats = frame_stats(raw, mean)
    bstats = box_stats(raw, mean, boxes)
    z = zero_suppress(raw, mean, thr, clip, acc)
    rb = rebin_mean(median2x2(z), factor)
    rbf = neighbour_filter(rb, nb_mean_min, min_count, line_min)
    prow, pcol, labels = cluster_map(rbf, eps, min_samples)
    rms = None
    if directional is not None:
        seeds, nprimary = seed_labels(prow, pcol, labels, eps, directional[0])
        labels, rms = directional_labels(
            prow, pcol, rbf[prow, pcol], seeds, nprimary, *directional[1:]
        )
    feats = cluster_features(raw, mean, thr, clip, acc, factor, prow, pcol, labels, margin)
    if rms is not None:
        feats[:, kn.F_FIT_RMS] = rms * factor
        tl = track_lengths(
            prow, pcol, rbf[prow, pcol], labels, rms, *directional[2:4], directional[-1]
        )
        if extension is not None:
            r0, r1, c0, c1 = acc
            region = (-(-r0 // factor), r1 // factor, -(-c0 // factor), c1 // factor)
            nsig, window, gap = extension
            noise = nsig * background_sigma(rb, prow, pcol, *region)
            lab = np.full(rb.shape, -1, np.int64)
            lab[prow, pcol] = labels
            ext = track_extensions(
                prow,
                pcol,
                labels,
                rms,
                *directional[2:4],
                directional[-1],
                rb,
                lab,
                region,
                noise,
                window,
                gap,
            )
            tl = tl + ext.sum(axis=1)
        feats[tl > 0, kn.F_TRACK_LENGTH] = tl[tl > 0] * factor
    return {
        "stats": stats,
        "boxes": bstats,
        "n_zs": int(np.count_nonzero(z)),
        "rebinned": rbf,
        "labels": labels,
        "features": feats,
    }


def pedestal_maps(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation (ddof=0) of a pedestal stack."""
    f = frames.astype(np.float64)
    return f.mean(axis=0).astype(np.float32), f.std(axis=0).astype(np.float32)


# -- directional clustering (same algorithm as directional.py, in numpy) -----

_IRLS = 4
#: passes of the final point sharing between all tracks
SHARE_PASSES = 2
_DENSE_FRACTION = 0.35
_LIGHT_FRACTION = 0.2
_MIN_SCALE = 0.5


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if x.size else 0.0


def _mad_scale(x: np.ndarray) -> float:
    return 1.4826 * _median(np.abs(x - _median(x)))


def _axis(r: np.ndarray, c: np.ndarray) -> tuple[float, float, float, float]:
    cr, cc = float(r.mean()), float(c.mean())
    dy, dx = r - cr, c - cc
    th = 0.5 * np.arctan2(2.0 * np.sum(dx * dy), np.sum(dx * dx) - np.sum(dy * dy))
    ur, uc = float(np.sin(th)), float(np.cos(th))
    if uc < 0.0 or (uc == 0.0 and ur < 0.0):
        ur, uc = -ur, -uc
    return cr, cc, ur, uc


def _elongation(r: np.ndarray, c: np.ndarray) -> float:
    dy, dx = r - r.mean(), c - c.mean()
    sxx, syy, sxy = np.sum(dx * dx), np.sum(dy * dy), np.sum(dx * dy)
    half = 0.5 * (sxx + syy) / r.size
    disc = np.sqrt(0.25 * (sxx - syy) ** 2 + sxy * sxy) / r.size
    return float(np.sqrt((half + disc) / max(half - disc, 1.0 / 12.0)))


def _uv(r, c, cr, cc, ur, uc):
    dr, dc = r - cr, c - cc
    return dc * uc + dr * ur, dc * ur - dr * uc


def _hough_strip(r: np.ndarray, c: np.ndarray, n_angles: int, half: float) -> np.ndarray:
    best, best_a, best_lo = -1, 0, 0.0
    for a in range(n_angles):
        th = np.pi * a / n_angles
        v = np.sort(c * np.sin(th) - r * np.cos(th))
        # for each start i: points in [v_i, v_i + 2 half]
        cnt = np.searchsorted(v, v + 2.0 * half, side="right") - np.arange(v.size)
        i = int(np.argmax(cnt))
        if cnt[i] > best:
            best, best_a, best_lo = int(cnt[i]), a, float(v[i])
    th = np.pi * best_a / n_angles
    v = c * np.sin(th) - r * np.cos(th)
    return np.nonzero((v >= best_lo) & (v <= best_lo + 2.0 * half))[0]


#: half-extent below which a refit track is a straight line
_LINE_HALF = 5.0


def _poly_fit(u: np.ndarray, v: np.ndarray, w: np.ndarray, line_half: float = 0.0) -> np.ndarray:
    h = max(float(np.abs(u).max()), 1.0)
    x = u / h
    if h < line_half:
        s0, s1, s2 = np.sum(w), np.sum(w * x), np.sum(w * x * x)
        t0, t1 = np.sum(w * v), np.sum(w * x * v)
        det2 = s0 * s2 - s1 * s1
        if abs(det2) > 1e-12:
            return np.array([(t0 * s2 - s1 * t1) / det2, (s0 * t1 - s1 * t0) / det2 / h, 0.0])
    p = np.vstack([np.ones_like(x), x, x * x])
    m = (p * w) @ p.T
    y = (p * w) @ v
    det = np.linalg.det(m)
    if abs(det) < 1e-12:
        sol = np.zeros(3)
        if m[0, 0] > 0:
            sol[0] = y[0] / m[0, 0]
    else:
        sol = np.linalg.solve(m, y)
    return np.array([sol[0], sol[1] / h, sol[2] / (h * h)])


def _residuals(u, v, p, umin, umax):
    x = np.clip(u, umin, umax)
    return v - (p[0] + p[1] * x + p[2] * x * x + (p[1] + 2.0 * p[2] * x) * (u - x))


#: robust scale above which a strip may be two lines
SPLIT_SCALE = 1.25
#: cos of the angle between two narrow strips that makes a strip two lines
SPLIT_COS = 0.9961946980917455


def _one_line(r, c, strip, n_angles, half, min_points):
    """``strip``, or its densest narrow strip (half its width) when the
    densest narrow strip of the rest has another direction (two crossing
    lines in one seed)."""
    ia = _hough_strip(r[strip], c[strip], n_angles, 0.5 * half)
    a = strip[ia]
    if a.size < min_points or strip.size - a.size < min_points:
        return strip
    rest = np.delete(strip, ia)
    b = rest[_hough_strip(r[rest], c[rest], n_angles, 0.5 * half)]
    if b.size < min_points:
        return strip
    _, _, ar, ac = _axis(r[a], c[a])
    _, _, br, bc = _axis(r[b], c[b])
    return a if abs(ar * br + ac * bc) < SPLIT_COS else strip


def fit_track(r: np.ndarray, c: np.ndarray, line_half: float = 0.0):
    cr, cc, ur, uc = _axis(r, c)
    u, v = _uv(r, c, cr, cc, ur, uc)
    p = _poly_fit(u, v, np.ones_like(u), line_half)
    for _ in range(_IRLS):
        res = _residuals(u, v, p, -1e18, 1e18)
        s = max(_mad_scale(res), _MIN_SCALE)
        p = _poly_fit(u, v, 1.0 / (1.0 + (res / (2.0 * s)) ** 2), line_half)
    return cr, cc, ur, uc, p, _mad_scale(_residuals(u, v, p, -1e18, 1e18))


def _complete(us: np.ndarray, min_coverage: float) -> bool:
    steps = np.floor(us - us[0] + 0.5)
    return bool(np.unique(steps).size >= min_coverage * (steps[-1] + 1.0))


def _reach(uon: np.ndarray, umin: float, umax: float, step: float) -> tuple[float, float]:
    us = np.sort(uon)
    hi = umax
    for x in us[us > umax]:
        if x > hi + step:
            break
        hi = x
    lo = umin
    for x in us[us < umin][::-1]:
        if x < lo - step:
            break
        lo = x
    return lo, hi


_BAND_QUANTILE = 0.98
_BAND_MARGIN = 1.5


def _band(rr: np.ndarray, s: float, thickness: float, width_nsigma: float) -> float:
    w = width_nsigma * s
    if rr.size:
        w = min(w, float(np.quantile(np.abs(rr), _BAND_QUANTILE)) + _BAND_MARGIN)
    return max(thickness, w)


_LIGHT_RATIO = 4.0
_HALO_COS = np.cos(np.radians(5.0))
_WIDE = 1.4
_BLOB_TAKER_LENGTH = 20.0


def _alike(a: float, b: float) -> bool:
    return max(a, b) <= _LIGHT_RATIO * min(a, b)


class _Track:
    __slots__ = ("cc", "cr", "p", "rms", "th", "uc", "umax", "umin", "ur")

    def set(self, r, c, thickness, width_nsigma) -> None:
        # a short piece refits as a straight line (directional.LINE_HALF)
        self.cr, self.cc, self.ur, self.uc, self.p, s = fit_track(r, c, _LINE_HALF)
        u, v = _uv(r, c, self.cr, self.cc, self.ur, self.uc)
        res = _residuals(u, v, self.p, -1e18, 1e18)
        self.th = _band(res, s, thickness, width_nsigma)
        ins = np.abs(res) <= self.th
        uu = u[ins] if ins.any() else u
        self.umin, self.umax = float(uu.min()), float(uu.max())
        self.rms = float(np.sqrt(np.mean(res[ins] ** 2))) if ins.any() else 0.0

    def res(self, r, c, clamp=True):
        u, v = _uv(r, c, self.cr, self.cc, self.ur, self.uc)
        lo, hi = (self.umin, self.umax) if clamp else (-1e18, 1e18)
        return u, _residuals(u, v, self.p, lo, hi)


def _share(r, c, idx, owner, tracks, gids, min_points, thickness, width_nsigma, reach):
    """Same as :func:`directional._share`: points in the bands of several
    tracks ``gids`` go to the nearest segment (each track's extent that of
    its points in no other band; a band counts only within ``reach`` of its
    track's ends for the extents and for a point in its own track's band; a
    thin track's point in its band never goes to a wide track beyond that
    track's extent)."""
    m = len(gids)
    us, ds, fs = [], [], []
    for g in gids:
        u, res = tracks[g].res(r[idx], c[idx], clamp=False)
        us.append(u)
        ds.append(np.abs(res) / tracks[g].th)
        fs.append(np.maximum(u - tracks[g].umax, tracks[g].umin - u) > reach)
    u, d, far = np.array(us), np.array(ds), np.array(fs)
    inb = d <= 1.0
    inn = inb & ~far
    slot = {g: j for j, g in enumerate(gids)}
    own = np.array([slot.get(int(g), -1) for g in owner[idx]], dtype=np.int64)
    seg = np.full(d.shape, 1e300)
    past = np.zeros(d.shape, bool)  # beyond a wide track's extent
    for j in range(m):
        others = inn[np.arange(m) != j].any(axis=0)
        ex = (own == j) & ~others
        tr = tracks[gids[j]]
        lo, hi = (u[j, ex].min(), u[j, ex].max()) if ex.any() else (tr.umin, tr.umax)
        x = np.maximum(np.maximum(u[j] - hi, lo - u[j]), 0.0) / tr.th
        seg[j, inb[j]] = np.sqrt(d[j, inb[j]] * d[j, inb[j]] + x[inb[j]] * x[inb[j]])
        past[j] = (tr.th > _WIDE * thickness) & (x > 0.0)
    q = np.nonzero(own >= 0)[0]
    cur = own[q]
    # a point in its own track's band goes only to a band within reach, and
    # a thin track's not to a wide one's beyond that one's extent
    thin = np.array([tracks[gids[j]].th <= _WIDE * thickness for j in range(m)])[cur]
    segq = np.where(inb[cur, q] & (far[:, q] | (thin & past[:, q])), 1e300, seg[:, q])
    segq[cur, np.arange(q.size)] = seg[cur, q]
    mn = segq.min(axis=0)
    new = np.where(seg[cur, q] == mn, cur, np.argmin(segq, axis=0))
    moved = new != cur
    owner[idx[q[moved]]] = np.asarray(gids)[new[moved]]
    changed = np.zeros(m, bool)
    changed[new[moved]] = True
    changed[cur[moved]] = True
    for j in np.nonzero(changed)[0]:
        mem = idx[owner[idx] == gids[j]]
        if mem.size >= min_points:
            tracks[gids[j]].set(r[mem], c[mem], thickness, width_nsigma)


def seed_labels(
    prow: np.ndarray, pcol: np.ndarray, labels: np.ndarray, eps: float, min_samples: int
) -> tuple[np.ndarray, int]:
    ncl = int(labels.max()) + 1 if labels.size else 0
    seeds = labels.copy()
    free = np.nonzero(labels < 0)[0]
    if min_samples <= 0 or free.size == 0:
        return seeds, ncl
    sub = dbscan_points(prow[free], pcol[free], eps, min_samples)
    seeds[free[sub >= 0]] = ncl + sub[sub >= 0]
    return seeds, ncl


def directional_labels(
    prow: np.ndarray,
    pcol: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    nprimary: int,
    min_points: int,
    thickness: float,
    width_nsigma: float,
    grow_radius: float,
    min_length: float,
    min_elongation: float,
    merge_fraction: float,
    merge_cos: float,
    merge_gap: float,
    max_iterations: int,
    n_angles: int,
    hole_bridge: float,
    min_coverage: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Same result as :func:`directional.directional_labels`, written with
    numpy arrays and Python objects per track (the oracle and the bench's
    baseline)."""
    r = prow.astype(np.float64)
    c = pcol.astype(np.float64)
    w = values.astype(np.float64)
    n = r.size
    owner = np.full(n, -1, np.int64)
    tracks: dict[int, _Track] = {}
    alive: list[bool] = []
    ncl = int(labels.max()) + 1 if n else 0

    def new_group(track: _Track | None = None) -> int:
        alive.append(True)
        g = len(alive) - 1
        if track is not None:
            tracks[g] = track
        return g

    blobs = set()  # groups of DBSCAN clusters without a fit
    for k in range(ncl):
        rem = np.nonzero(labels == k)[0]
        first = len(alive)
        while rem.size >= min_points:
            strip = rem[_hough_strip(r[rem], c[rem], n_angles, thickness)]
            if strip.size < min_points:
                break
            cr, cc, ur, uc, p, s = fit_track(r[strip], c[strip], _LINE_HALF)
            if s > SPLIT_SCALE and strip.size >= 2 * min_points:
                line = _one_line(r, c, strip, n_angles, thickness, min_points)
                if line.size < strip.size:
                    strip = line
                    cr, cc, ur, uc, p, s = fit_track(r[strip], c[strip], _LINE_HALF)
            su, sv = _uv(r[strip], c[strip], cr, cc, ur, uc)
            th = _band(_residuals(su, sv, p, -1e18, 1e18), s, thickness, width_nsigma)
            u, v = _uv(r[rem], c[rem], cr, cc, ur, uc)
            res = _residuals(u, v, p, -1e18, 1e18)
            inside = np.abs(res) <= th
            if inside.sum() < min_points:
                break
            umin, umax = u[inside].min(), u[inside].max()
            ext = umax - umin
            if ext < min_length or _elongation(r[rem[inside]], c[rem[inside]]) < min_elongation:
                break
            t = _Track()
            t.cr, t.cc, t.ur, t.uc, t.p = cr, cc, ur, uc, p
            t.umin, t.umax, t.th = float(umin), float(umax), th
            t.rms = float(np.sqrt(np.mean(res[inside] ** 2)))
            owner[rem[inside]] = new_group(t)
            rem = rem[~inside]
        if len(alive) - first >= 2:
            _share(
                r,
                c,
                np.nonzero(labels == k)[0],
                owner,
                tracks,
                list(range(first, len(alive))),
                min_points,
                thickness,
                width_nsigma,
                1e300,
            )
        if rem.size == 0:
            continue
        if len(alive) == first:
            if k < nprimary:
                owner[rem] = new_group()
                blobs.add(int(owner[rem[0]]))
            continue
        ds = []
        for g in range(first, len(alive)):
            _, d = tracks[g].res(r[rem], c[rem])
            ds.append(np.abs(d) / tracks[g].th)
        ds = np.array(ds)
        best = first + np.argmin(ds, axis=0)
        far = ds.min(axis=0) > 2.0
        if k >= nprimary:
            owner[rem[~far]] = best[~far]
        elif far.sum() >= min_points:
            owner[rem[far]] = new_group()
            owner[rem[~far]] = best[~far]
        else:
            owner[rem] = best

    ng = len(alive)
    for t in range(ng):
        if t not in tracks or not alive[t]:
            continue
        tr = tracks[t]
        for _ in range(max_iterations):
            u, res = tr.res(r, c)
            onc = np.abs(res) <= tr.th
            mine = u[(owner == t) & onc]
            complete = mine.size > 1 and _complete(np.sort(mine), min_coverage)
            holes = mine.size > 1 and not complete
            step = hole_bridge * grow_radius if holes else grow_radius
            lo, hi = _reach(u[onc], tr.umin, tr.umax, step)
            lo, hi = lo - grow_radius, hi + grow_radius
            if complete and tr.th > thickness:
                # a wide complete track grows past an end only into points
                # at least DENSE_FRACTION as dense and LIGHT_FRACTION as
                # bright per unit length as its own
                oth = onc & (owner != t)
                own = onc & (owner == t) & (u >= tr.umin) & (u <= tr.umax)
                span = tr.umax - tr.umin + 1.0
                dens, wdens = np.sum(own) / span, np.sum(w[own]) / span
                bhi = oth & (u > tr.umax) & (u <= hi)
                blo = oth & (u >= lo) & (u < tr.umin)
                dhi, dlo = hi - tr.umax, tr.umin - lo
                if hi > tr.umax and (
                    np.sum(bhi) < _DENSE_FRACTION * dens * dhi
                    or np.sum(w[bhi]) < _LIGHT_FRACTION * wdens * dhi
                ):
                    hi = tr.umax
                if lo < tr.umin and (
                    np.sum(blo) < _DENSE_FRACTION * dens * dlo
                    or np.sum(w[blo]) < _LIGHT_FRACTION * wdens * dlo
                ):
                    lo = tr.umin
            near = onc & (u >= lo) & (u <= hi)
            free = (owner < 0) & near
            added = bool(free.any())
            owner[free] = t
            mine_light = None  # this track's median light, when first needed
            for g in range(ng):
                if g == t or not alive[g]:
                    continue
                m = owner == g
                size = int(m.sum())
                if size == 0:
                    continue
                nnear = int(near[m].sum())
                o = tracks.get(g)
                cosang = abs(o.ur * tr.ur + o.uc * tr.uc) if o is not None else 0.0
                take = nnear >= merge_fraction * size
                along = take
                if not take and o is not None:
                    on = m & onc
                    if on.sum() >= merge_fraction * size:
                        gap = max(u[on].min() - tr.umax, tr.umin - u[on].max())
                        take = cosang >= merge_cos and gap <= merge_gap
                if (
                    take
                    and g in blobs
                    and tr.umax - tr.umin < _BLOB_TAKER_LENGTH
                    and _elongation(r[m], c[m]) < min_elongation
                ):
                    take = False  # a short piece does not take a round cluster whole
                if (
                    not take
                    and g in blobs
                    and nnear >= min_points
                    and tr.th <= _WIDE * thickness
                    and tr.umax - tr.umin >= _BLOB_TAKER_LENGTH
                ):
                    owner[m & near] = t
                    added = True
                    continue
                if not take:
                    continue
                cout = int(np.sum(m & ((u < tr.umin) | (u > tr.umax))))
                foreign = False
                wide = tr.th > _WIDE * thickness or (o is not None and o.th > _WIDE * thickness)
                if wide and (cout >= min_points or cosang < _HALO_COS):
                    if mine_light is None:
                        mine_light = _median(w[owner == t])
                    foreign = not _alike(_median(w[m]), mine_light)
                rest = size - nnear >= min_points
                if along and o is not None and (cosang < merge_cos or foreign) and rest:
                    owner[m & near] = t
                    added = True
                    continue
                if not (foreign and rest):
                    owner[m] = t
                    alive[g] = False
                    added = True
            if not added:
                break
            mem = owner == t
            tr.set(r[mem], c[mem], thickness, width_nsigma)
    # a faint track lying all within twice the band of a wide track of
    # other light, inside its extent, is that track's halo
    for t in range(ng):
        if t not in tracks or not alive[t] or tracks[t].th <= _WIDE * thickness:
            continue
        tr = tracks[t]
        u, res = tr.res(r, c)
        inside = (np.abs(res) <= 2.0 * tr.th) & (u >= tr.umin) & (u <= tr.umax)
        mine_light = None
        absorbed = False
        for g in range(ng):
            if g == t or g not in tracks or not alive[g]:
                continue
            m = owner == g
            size = int(m.sum())
            if size == 0 or size - int(np.sum(m & inside)) >= min_points:
                continue
            if mine_light is None:
                mine_light = _median(w[owner == t])
            if _alike(_median(w[m]), mine_light):
                continue
            owner[m] = t
            alive[g] = False
            absorbed = True
        if absorbed:
            mem = owner == t
            tr.set(r[mem], c[mem], thickness, width_nsigma)
    gl = [g for g in range(ng) if g in tracks and alive[g]]
    if len(gl) >= 2:
        sel = np.nonzero(np.isin(owner, gl))[0]
        for _ in range(SHARE_PASSES):
            _share(r, c, sel, owner, tracks, gl, min_points, thickness, width_nsigma, grow_radius)
    out = np.full(n, -1, np.int64)
    rms = []
    newid: dict[int, int] = {}
    for i in range(n):
        g = int(owner[i])
        if g < 0:
            continue
        if g not in newid:
            newid[g] = len(newid)
            rms.append(tracks[g].rms if g in tracks else 0.0)
        out[i] = newid[g]
    return out, np.array(rms, dtype=np.float64)


_LENGTH_CAP = 2.0
_END_TRIM = 0.5


def _end_position(us: np.ndarray, ws: np.ndarray, t: float) -> float:
    k = int(np.searchsorted(np.cumsum(ws), t, side="left")) + 1
    k = min(k, us.size)
    lo, hi = float(us[0]) - 0.5, float(us[k - 1]) + 0.5
    near = us < hi + 0.5
    un, wn = us[near], ws[near]
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        if np.sum(wn * np.clip(mid - un + 0.5, 0.0, 1.0)) < t:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def track_lengths(
    prow: np.ndarray,
    pcol: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    rms: np.ndarray,
    thickness: float,
    width_nsigma: float,
    min_coverage: float,
) -> np.ndarray:
    """Same as :func:`directional.track_lengths` with numpy."""
    out = np.zeros(rms.size)
    for k in np.nonzero(rms > 0)[0]:
        m = labels == k
        r, c = prow[m].astype(np.float64), pcol[m].astype(np.float64)
        w = values[m].astype(np.float64)
        cr, cc, ur, uc, p, s = fit_track(r, c)
        u, v = _uv(r, c, cr, cc, ur, uc)
        ins = np.abs(_residuals(u, v, p, -1e18, 1e18)) <= max(thickness, width_nsigma * s)
        if ins.sum() < 2:
            ins[:] = True
        ui, wi = u[ins], w[ins]
        wi = np.minimum(wi, _LENGTH_CAP * _median(wi))
        o = np.argsort(ui, kind="stable")
        us, ws = ui[o], wi[o]
        rs = _residuals(u, v, p, -1e18, 1e18)[ins][o]
        tot = ws.sum()
        if tot <= 0:
            out[k] = us[-1] - us[0] + 1.0
            continue
        if _complete(us, min_coverage):
            mu = np.sum(ws * us) / tot
            var = np.sum(ws * (us - mu) ** 2) - np.sum(ws * rs * rs)
            out[k] = np.sqrt(12.0 * max(var, 0.0) / tot)
            continue
        t = _END_TRIM * tot / (us[-1] - us[0] + 1.0)
        lo = _end_position(us, ws, t)
        hi = -_end_position(-us[::-1], ws[::-1], t)
        out[k] = max(hi - lo, 0.0)
    return out


# -- the light past a track's last point (directional.extension) ------------

_EXT_ON = 1
_EXT_FLANK = 3
_SIGMA_PIXELS = 32768


def background_sigma(img, prow, pcol, ra, rb, ca, cb) -> float:
    """Same as :func:`directional.background_sigma` with numpy."""
    m = np.ones(img.shape, bool)
    m[prow, pcol] = False
    step = max(1, ((rb - ra) * (cb - ca)) // _SIGMA_PIXELS)
    x = img[ra:rb:step, ca:cb][m[ra:rb:step, ca:cb]].astype(np.float64)
    return float(x.std()) if x.size >= 2 else 0.0


def _contrasts(img, lab, own, pr, pc, tr, tc, ks, region):
    """:func:`directional._contrast` of the steps ``ks`` (an array)."""
    ra, rb, ca, cb = region
    nr, nc = -tc, tr
    rk = pr + ks * tr
    ck = pc + ks * tc

    def pixel(s):
        i = np.floor(rk + s * nr + 0.5).astype(np.int64)
        j = np.floor(ck + s * nc + 0.5).astype(np.int64)
        ok = (i >= ra) & (i < rb) & (j >= ca) & (j < cb)
        x = np.where(ok, img[np.where(ok, i, ra), np.where(ok, j, ca)], 0.0).astype(np.float64)
        other = ok & (lab[np.where(ok, i, ra), np.where(ok, j, ca)] >= 0)
        other &= lab[np.where(ok, i, ra), np.where(ok, j, ca)] != own
        return x, ok, other

    on = np.zeros(ks.size)
    non = np.zeros(ks.size)
    bad = ~pixel(0)[1]
    for s in range(-_EXT_ON, _EXT_ON + 1):
        x, ok, other = pixel(s)
        on += x
        non += ok
        bad |= other
    fl = np.zeros(ks.size)
    nfl = np.zeros(ks.size)
    for s in (-_EXT_FLANK - 1, -_EXT_FLANK, _EXT_FLANK, _EXT_FLANK + 1):
        x, ok, _ = pixel(s)
        fl += x
        nfl += ok
    bad |= nfl == 0
    q = np.maximum(nfl, 1)
    return on - non * fl / q, non + non * non / q, bad


def extension(img, lab, own, pr, pc, tr, tc, region, noise, window, gap) -> int:
    """Same as :func:`directional.extension` with numpy (all steps to the
    region's edge at once)."""
    c, _, bad = _contrasts(img, lab, own, pr, pc, tr, tc, -np.arange(2 * window), region)
    mine = 0.0
    for x in c[~bad]:  # in step order, as the kernel adds them
        mine += float(x)
    if (~bad).sum() == 0 or mine <= 0:
        return 0
    least = _LIGHT_FRACTION * mine / int((~bad).sum()) * window
    ra, rb, ca, cb = region
    nmax = 2 * (rb - ra + cb - ca) + 2
    ks = np.arange(1, nmax + 1)
    c, v, bad = _contrasts(img, lab, own, pr, pc, tr, tc, ks, region)
    n = int(np.argmax(bad)) if bad.any() else nmax  # valid steps 1..n
    c, v = c[:n], v[:n]
    if n < window:
        return 0
    ct = np.zeros(n - window + 1)
    vt = np.zeros(n - window + 1)
    for o in range(window):
        ct += c[o : n - window + 1 + o]
        vt += v[o : n - window + 1 + o]
    lit = (ct > noise * np.sqrt(vt)) & (ct > least)
    # the last positive step of each window (steps k - window + 1 .. k)
    pos = np.where(c > 0, np.arange(1, n + 1), 0)
    last = np.max(np.stack([pos[o : n - window + 1 + o] for o in range(window)]), axis=0)
    reach = np.zeros(n, np.int64)
    reach[window - 1 :] = np.maximum.accumulate(np.where(lit, last, 0))
    stop = np.nonzero(np.arange(1, n + 1) - reach >= window + gap)[0]
    return int(reach[stop[0]] if stop.size else reach[-1])


def track_extensions(
    prow,
    pcol,
    labels,
    rms,
    thickness,
    width_nsigma,
    min_coverage,
    img,
    lab,
    region,
    noise,
    window,
    gap,
) -> np.ndarray:
    """Same as the extensions of :func:`directional.extended_track_lengths`
    with numpy: per cluster the steps past its low and high end."""
    ext = np.zeros((rms.size, 2))
    if noise <= 0:
        return ext
    for k in np.nonzero(rms > 0)[0]:
        m = labels == k
        r, c = prow[m].astype(np.float64), pcol[m].astype(np.float64)
        cr, cc, ur, uc, p, s = fit_track(r, c)
        u, v = _uv(r, c, cr, cc, ur, uc)
        ins = np.abs(_residuals(u, v, p, -1e18, 1e18)) <= max(thickness, width_nsigma * s)
        if ins.sum() < 2:
            ins[:] = True
        for e, uu in enumerate((u[ins].min(), u[ins].max())):
            vv = p[0] + p[1] * uu + p[2] * uu * uu
            sl = p[1] + 2.0 * p[2] * uu
            h = np.sqrt(1.0 + sl * sl)
            sg = -1.0 if e == 0 else 1.0
            tr = sg * (ur - sl * uc) / h
            tc = sg * (uc + sl * ur) / h
            pr, pc = cr + uu * ur - vv * uc, cc + uu * uc + vv * ur
            ext[k, e] = extension(img, lab, k, pr, pc, tr, tc, region, noise, window, gap)
    return ext
