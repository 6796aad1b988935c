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
    return np.where(keep, d, np.float32(0))


def median2x2(z: np.ndarray) -> np.ndarray:
    # size 2 -> window rows/cols (i-1, i); rank 2 of 4 = upper median
    return ndimage.median_filter(z, size=2, mode="nearest")


def rebin_mean(z: np.ndarray, factor: int) -> np.ndarray:
    rows, cols = z.shape[0] // factor, z.shape[1] // factor
    blocks = z[: rows * factor, : cols * factor].astype(np.float64)
    return blocks.reshape(rows, factor, cols, factor).sum(axis=(1, 3)) / (factor * factor)


def neighbour_filter(rb: np.ndarray, nb_mean_min: float, min_count: int) -> np.ndarray:
    s = ndimage.convolve(rb, _K8, mode="constant", cval=0.0)
    n = ndimage.convolve((rb != 0).astype(np.int64), _K9, mode="constant", cval=0)
    keep = (rb != 0) & (s / 8.0 >= nb_mean_min) & (n >= min_count)
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
) -> dict[str, Any]:
    """The whole per-frame chain (what the bench times against the kernels)."""
    stats = frame_stats(raw, mean)
    bstats = box_stats(raw, mean, boxes)
    z = zero_suppress(raw, mean, thr, clip, acc)
    rb = rebin_mean(median2x2(z), factor)
    rbf = neighbour_filter(rb, nb_mean_min, min_count)
    prow, pcol, labels = cluster_map(rbf, eps, min_samples)
    feats = cluster_features(raw, mean, thr, clip, acc, factor, prow, pcol, labels, margin)
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
