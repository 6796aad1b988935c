"""Directional clustering: whole tracks from DBSCAN seeds (numba kernels).

DBSCAN with the online eps 2 / min_samples 10 on the rebinned map finds
spots and bright alphas, but a faint muon is a line one or two rebinned
pixels wide whose points rarely have 10 neighbours: it comes out as a string
of small clusters and unclustered points. The collaboration's offline
reconstruction grows such seeds along a fitted curve (randomised RANSAC
there); this is a deterministic version of that idea on the rebinned points:

1. **Seeds.** DBSCAN's clusters, plus secondary seeds: DBSCAN with a
   smaller ``seed_min_samples`` on the points DBSCAN left unclustered (they
   only count if they make a track, else go back to noise). Each seed with
   at least ``min_points`` points gets a
   start line from a small Hough search (``n_angles`` directions in
   [0, 180) degrees; for each, the densest strip of width ``2*thickness``
   across it; the most populated strip wins, ties to the lowest angle), so a
   cluster made of two crossing tracks starts on one of them, not between.
2. **Fit.** In the frame of the strip's points (centroid and principal
   axis), the perpendicular offset ``v`` is fitted as a second-order
   polynomial of the position along the axis ``u`` by iteratively
   reweighted least squares (Cauchy weights with a MAD scale, a fixed
   number of iterations): deterministic and robust to a few stray points.
   The track's thickness is ``max(thickness, width_nsigma * scale)``.
3. **Good fit.** The members (cluster points within the thickness of the
   curve) form a track when they extend over at least ``min_length`` along
   the curve and are elongated: sqrt of the ratio of their two principal
   second moments at least ``min_elongation`` (a spot is about 1). The rest of
   the cluster is searched again (a second crossing track); what is left
   joins the nearest track of its seed unless it is ``min_points`` or more.
   Seeds without a good fit stay exactly as DBSCAN found them. The tracks
   of one seed share its points (:func:`_share`): each track's extent is
   that of its points in no other track's band, a point in several bands
   goes to the nearest segment.
4. **Growth and merging.** Each track, in order, takes every unclustered
   point within its thickness of the curve whose position lies within
   ``grow_radius`` beyond the current ends (the curve is extended by its
   end tangents), and every other cluster or track of which at least
   ``merge_fraction`` of the points do (a track only if its direction is
   within ``merge_angle_deg``): pieces of one track become one cluster; a
   track across it gives up only its points on this track's reach. Then
   it is refitted, until nothing is added (at most ``max_iterations``).
   The points' light (their rebinned values) tells a muon from an alpha
   where the geometry cannot (a muon is ~40x fainter per px): a wide
   complete track (an alpha) grows past an end only into points at least
   ``LIGHT_FRACTION`` as bright per unit length as its own
   (:func:`_dense_ends`); when one of the two is ``WIDE``, a cluster or track of
   other light (median light per point more than ``LIGHT_RATIO`` apart,
   :func:`_alike`) that reaches beyond the track's ends or is not parallel
   to it (``HALO_COS``) is another track, never taken whole: it gives up
   only its points on the reach (a muon along an alpha) unless fewer than
   ``min_points`` lie elsewhere. After the growth a track of other light
   lying, but for fewer than ``min_points`` points, within twice the band of
   a wide track and inside its extent is that track's halo and joins it
   (:func:`_absorb_halo`). Last, all tracks share their points as in 3,
   ``SHARE_PASSES`` times.
5. **Labels** are renumbered in the order of each cluster's lowest point
   index (as DBSCAN numbers them); per cluster the RMS of the members'
   residuals to the curve is the fit quality (0 for clusters without fit).

The track length (:func:`track_lengths`) is measured on the points; with
:func:`extended_track_lengths` it also counts the light past each end that no
point holds (:func:`extension`: a faint muon's end below the noise filter).
All lengths are in rebinned pixels. :func:`reference.directional_labels` is
the same algorithm in numpy; the tests and ``bench camera`` check that both
give identical labels.
"""

from __future__ import annotations

import numba
import numpy as np
from cygno_online.analyzers.camera import kernels as kn

_NJIT = {"nogil": True, "cache": True}

#: iterations of the reweighted polynomial fit
IRLS_ITERATIONS = 4
#: passes of the final point sharing between all tracks (:func:`_share`)
SHARE_PASSES = 2
#: scale floor of the Cauchy weights (rebinned px): points on a grid
MIN_SCALE = 0.5


@numba.njit(**_NJIT)
def _points_by_label(labels, ncl):
    """Point indices grouped by label in index order (one counting sort):
    the points of cluster ``k`` are ``order[start[k]:start[k + 1]]``;
    negative labels (noise) are left out."""
    start = np.zeros(ncl + 1, np.int64)
    for i in range(labels.shape[0]):
        if labels[i] >= 0:
            start[labels[i] + 1] += 1
    for k in range(ncl):
        start[k + 1] += start[k]
    order = np.empty(start[ncl], np.int64)
    fill = start[:ncl].copy()
    for i in range(labels.shape[0]):
        k = labels[i]
        if k >= 0:
            order[fill[k]] = i
            fill[k] += 1
    return start, order


@numba.njit(**_NJIT)
def _median_inplace(a):
    """np.median of finite values (0 when empty), reordering ``a``: a
    quickselect (median-of-3 pivot, no NaN handling) finds the same order
    statistics, so the same value, ~25 % faster than numba's np.median on a
    track's ~1000 residuals (fit_track takes 10 medians per fit)."""
    n = a.shape[0]
    if n == 0:
        return 0.0
    k = n // 2
    lo = 0
    hi = n - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        p0 = a[lo]
        p1 = a[mid]
        p2 = a[hi]
        if p0 > p1:
            p0, p1 = p1, p0
        if p1 > p2:
            p1 = p2
        if p0 > p1:
            p1 = p0
        i = lo
        j = hi
        while i <= j:
            while a[i] < p1:
                i += 1
            while a[j] > p1:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    m = a[k]
    if n % 2 == 1:
        return m
    # the lower middle value: the largest of a[:k] (all <= a[k] now)
    b = a[0]
    for q in range(1, k):
        b = max(b, a[q])
    return 0.5 * (m + b)


@numba.njit(**_NJIT)
def _median(x):
    """np.median of finite values (0 when empty), ``x`` left as it is."""
    return _median_inplace(x.copy())


@numba.njit(**_NJIT)
def _mad_scale_into(x, a):
    """1.4826 * median absolute deviation from the median of ``x``, with
    ``a`` (as long) as scratch: the deviations are taken in place, their
    order does not matter."""
    a[:] = x
    m = _median_inplace(a)
    for i in range(a.shape[0]):
        a[i] = np.abs(a[i] - m)
    return 1.4826 * _median_inplace(a)


@numba.njit(**_NJIT)
def _moments(r, c):
    """Centroid and the (unnormalised) second central moments of points."""
    n = r.shape[0]
    cr = r.sum() / n
    cc = c.sum() / n
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for i in range(n):
        dy = r[i] - cr
        dx = c[i] - cc
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    return cr, cc, sxx, syy, sxy


@numba.njit(**_NJIT)
def _axis(r, c):
    """Centroid and principal axis (unit vector, column component >= 0,
    (1, 0) when vertical) of points, from the closed-form 2x2 eigenvector."""
    cr, cc, sxx, syy, sxy = _moments(r, c)
    th = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    ur = np.sin(th)
    uc = np.cos(th)
    if uc < 0.0 or (uc == 0.0 and ur < 0.0):
        ur = -ur
        uc = -uc
    return cr, cc, ur, uc


@numba.njit(**_NJIT)
def _elongation(r, c):
    """sqrt(major / minor second moment) of points (the minor one at least
    1/12, a grid pixel's own): about 1 for a spot, large for a track."""
    n = r.shape[0]
    _, _, sxx, syy, sxy = _moments(r, c)
    half = 0.5 * (sxx + syy) / n
    disc = np.sqrt(0.25 * (sxx - syy) * (sxx - syy) + sxy * sxy) / n
    return np.sqrt((half + disc) / max(half - disc, 1.0 / 12.0))


#: arrays up to this long are sorted by insertion in :func:`_strip_count`
_INSERTION_MAX = 32


@numba.njit(**_NJIT)
def _strip_count(v, half):
    """Sort ``v`` and return the largest number of values in a window
    ``[v[i], v[i] + 2*half]`` and the lowest ``v[i]`` reaching it."""
    n = v.shape[0]
    if n <= _INSERTION_MAX:
        # a seed of ~20 points is sorted once per Hough direction (36):
        # np.sort's call and set-up cost more than the few moves
        kn._sort_small(v, v.shape[0])
    else:
        v.sort()
    best = -1
    lo = 0.0
    j = 0
    for i in range(n):
        while j < n and v[j] <= v[i] + 2.0 * half:
            j += 1
        if j - i > best:
            best = j - i
            lo = v[i]
    return best, lo


#: seeds of at most this many points count every direction exactly (sorting
#: a few points costs less than bounding them)
_BOUND_MIN_POINTS = 32
#: bins per strip width in :func:`_strip_bound` (finer bins, tighter bound)
_BOUND_BINS = 4


@numba.njit(**_NJIT)
def _strip_bound(v, half, hist):
    """An upper bound of :func:`_strip_count` without sorting: the values
    binned by ``2*half / _BOUND_BINS`` (rounding is monotonic, so the values
    of a window ``[v[i], v[i] + 2*half]`` fall in ``_BOUND_BINS + 1`` bins
    from the bin of ``v[i]``, one more when a value on a bin edge rounds
    over it), the largest sum of ``_BOUND_BINS + 2`` adjacent bins."""
    n = v.shape[0]
    if n == 0 or not half > 0.0:
        return n
    span = _BOUND_BINS + 2
    vmin = v.min()
    inv = _BOUND_BINS / (2.0 * half)
    nb = int((v.max() - vmin) * inv) + 1
    if nb + span > hist.shape[0]:
        return n
    hist[: nb + span] = 0
    for i in range(n):
        hist[int((v[i] - vmin) * inv)] += 1
    run = 0
    for k in range(span - 1):
        run += hist[k]
    ub = 0
    for k in range(nb):
        run += hist[k + span - 1]
        ub = max(ub, run)
        run -= hist[k]
    return ub


@numba.njit(**_NJIT)
def _hough_strip(r, c, n_angles, half, sins, coss):
    """Indices (into r, c) of the points of the most populated strip of
    width ``2*half`` over ``n_angles`` directions (ties: lowest angle, then
    lowest strip position); ``sins``/``coss`` = sin/cos of pi * a / n_angles.

    Exact counts need a sort per direction; the directions are visited by
    decreasing cheap upper bound (:func:`_strip_bound`) and a direction
    whose bound cannot beat the best so far (count, then lower angle) is
    skipped: on a track most are, and the result is the same as counting
    every direction."""
    n = r.shape[0]
    v = np.empty(n)
    ub = np.full(n_angles, n, np.int64)
    if n > _BOUND_MIN_POINTS:
        hist = np.empty(2048, np.int64)
        for a in range(n_angles):
            for i in range(n):
                v[i] = c[i] * sins[a] - r[i] * coss[a]
            ub[a] = _strip_bound(v, half, hist)
    order = np.argsort(-ub, kind="mergesort")
    best = -1
    best_a = 0
    best_lo = 0.0
    for q in range(n_angles):
        a = order[q]
        if ub[a] < best or (ub[a] == best and a > best_a):
            continue
        for i in range(n):
            v[i] = c[i] * sins[a] - r[i] * coss[a]
        cnt, lo = _strip_count(v, half)
        if cnt > best or (cnt == best and a < best_a):
            best = cnt
            best_a = a
            best_lo = lo
    v = c * sins[best_a] - r * coss[best_a]
    return np.nonzero((v >= best_lo) & (v <= best_lo + 2.0 * half))[0]


#: a strip's fit of robust scale above this (rebinned px; a muon's is
#: ~1) may be two lines, :func:`_one_line` checks
SPLIT_SCALE = 1.25
#: a wide strip whose two narrow strips (half its width) differ in
#: direction by more than this is two crossing lines (cos of 5 degrees)
SPLIT_COS = 0.9961946980917455


@numba.njit(**_NJIT)
def _one_line(r, c, strip, n_angles, half, sins, coss, min_points):
    """The strip to fit: ``strip`` itself, or when it holds two lines at an
    angle (muons crossing at 10-20 degrees share one DBSCAN seed over ~100
    px and the densest strip lies between them) the densest narrow strip,
    of half its width: its direction and that of the densest narrow strip
    of the rest differ by more than ``SPLIT_COS`` (an alpha's flanks are
    parallel to its core)."""
    ia = _hough_strip(r[strip], c[strip], n_angles, 0.5 * half, sins, coss)
    a = strip[ia]
    if a.shape[0] < min_points or strip.shape[0] - a.shape[0] < min_points:
        return strip
    keep = np.ones(strip.shape[0], np.bool_)
    keep[ia] = False
    rest = strip[keep]
    b = rest[_hough_strip(r[rest], c[rest], n_angles, 0.5 * half, sins, coss)]
    if b.shape[0] < min_points:
        return strip
    _, _, ar, ac = _axis(r[a], c[a])
    _, _, br, bc = _axis(r[b], c[b])
    if abs(ar * br + ac * bc) < SPLIT_COS:
        return a
    return strip


@numba.njit(**_NJIT)
def _hand_over(owner, near, g, t):
    """Group ``g``'s points on track ``t``'s reach (``near``) go to ``t``."""
    for i in range(owner.shape[0]):
        if owner[i] == g and near[i]:
            owner[i] = t


@numba.njit(**_NJIT)
def _frame_uv(r, c, cr, cc, ur, uc):
    """Coordinates along (u) and across (v) the axis through (cr, cc)."""
    dr = r - cr
    dc = c - cc
    return dc * uc + dr * ur, dc * ur - dr * uc


@numba.njit(nogil=True, cache=True, inline="always")
def _det3(a00, a01, a02, a10, a11, a12, a20, a21, a22):
    """3x3 determinant, expanded along the first row (the order of the
    reference's arithmetic)."""
    return (
        a00 * (a11 * a22 - a12 * a21)
        - a01 * (a10 * a22 - a12 * a20)
        + a02 * (a10 * a21 - a11 * a20)
    )


@numba.njit(nogil=True, cache=True, inline="always")
def _solve3(m00, m01, m02, m10, m11, m12, m20, m21, m22, y0, y1, y2):
    """3x3 linear system by Cramer's rule (the reference uses the same), on
    scalars (no matrix copy per unknown: fit_track solves 5 systems);
    returns the solution and whether the system is regular."""
    det = _det3(m00, m01, m02, m10, m11, m12, m20, m21, m22)
    if abs(det) < 1e-12:
        return 0.0, 0.0, 0.0, False
    x0 = _det3(y0, m01, m02, y1, m11, m12, y2, m21, m22) / det
    x1 = _det3(m00, y0, m02, m10, y1, m12, m20, y2, m22) / det
    x2 = _det3(m00, m01, y0, m10, m11, y1, m20, m21, y2) / det
    return x0, x1, x2, True


#: a track (its start line and every refit) on points within this many
#: rebinned px of their centroid along the axis (a piece up to ~10 px, 40
#: px: multiple scattering bends a muon far less over it) is a straight
#: line: a parabola on a short piece bends its end tangents, along which the
#: growth goes on
LINE_HALF = 5.0


@numba.njit(**_NJIT)
def _poly_fit(u, v, w, line_half):
    """Weighted least squares ``v = p0 + p1 u + p2 u^2`` (u scaled to its
    half-extent for conditioning); coefficients in unscaled u. A straight
    line (p2 = 0) when the half-extent is below ``line_half``; falls back to
    a constant when the quadratic system is singular."""
    h = 1.0
    for i in range(u.shape[0]):
        h = max(h, abs(u[i]))
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    s4 = 0.0
    t0 = 0.0
    t1 = 0.0
    t2 = 0.0
    for i in range(u.shape[0]):
        x = u[i] / h
        x2 = x * x
        wi = w[i]
        s0 += wi
        s1 += wi * x
        s2 += wi * x2
        s3 += wi * x2 * x
        s4 += wi * x2 * x2
        t0 += wi * v[i]
        t1 += wi * x * v[i]
        t2 += wi * x2 * v[i]
    if h < line_half:
        det2 = s0 * s2 - s1 * s1
        if abs(det2) > 1e-12:
            return np.array([(t0 * s2 - s1 * t1) / det2, (s0 * t1 - s1 * t0) / det2 / h, 0.0])
    # the normal equations' matrix [[s0 s1 s2] [s1 s2 s3] [s2 s3 s4]]
    x0, x1, x2, ok = _solve3(s0, s1, s2, s1, s2, s3, s2, s3, s4, t0, t1, t2)
    if not ok:
        x0 = t0 / s0 if s0 > 0 else 0.0
    return np.array([x0, x1 / h, x2 / (h * h)])


@numba.njit(**_NJIT)
def _residuals_into(u, v, p, umin, umax, out):
    """``v`` minus the curve at ``u`` into ``out``; beyond [umin, umax] the
    curve goes on along its end tangents (a parabola must not be
    extrapolated far)."""
    for i in range(u.shape[0]):
        x = min(max(u[i], umin), umax)
        f = p[0] + p[1] * x + p[2] * x * x + (p[1] + 2.0 * p[2] * x) * (u[i] - x)
        out[i] = v[i] - f


@numba.njit(**_NJIT)
def _residuals(u, v, p, umin, umax):
    """:func:`_residuals_into` a new array."""
    out = np.empty(u.shape[0])
    _residuals_into(u, v, p, umin, umax, out)
    return out


@numba.njit(**_NJIT)
def _complete(us, min_coverage):
    """Whether points at ``us`` (ascending positions along a track) occupy
    at least ``min_coverage`` of the 1 px steps between the ends (steps
    centred on the first point: no float ties on a grid). A track with
    holes (a faint muon) reaches across gaps ``hole_bridge`` times
    ``grow_radius`` long and is measured end to end; a complete one (an
    alpha, a bright muon) does not continue past a gap in its light."""
    nocc = 1
    last = 0.0
    for j in range(1, us.shape[0]):
        b = np.floor(us[j] - us[0] + 0.5)
        if b != last:
            nocc += 1
            last = b
    return nocc >= min_coverage * (np.floor(us[-1] - us[0] + 0.5) + 1.0)


@numba.njit(**_NJIT)
def _reach(uon, umin, umax, step):
    """How far along the curve a track reaches from [umin, umax] through
    points on its curve (of any cluster) spaced by at most ``step``: a track
    crossing another one continues on the far side."""
    us = np.sort(uon)
    hi = umax
    for x in us:
        if x > hi:
            if x <= hi + step:
                hi = x
            else:
                break
    lo = umin
    for k in range(us.shape[0] - 1, -1, -1):
        x = us[k]
        if x < lo:
            if x >= lo - step:
                lo = x
            else:
                break
    return lo, hi


#: a wide complete track (an alpha) grows past an end only where the points
#: on its curve beyond it are at least this fraction of its own density
#: per unit length (a muon leaving an alpha at a small angle is not the
#: alpha's continuation)
DENSE_FRACTION = 0.35


#: ... and where their light is at least this fraction of its own light per
#: unit length (a muon is ~40x fainter per px than an alpha: at a small
#: angle its points on the alpha's wide band are as many as the alpha's own)
LIGHT_FRACTION = 0.2


@numba.njit(**_NJIT)
def _dense_ends(u, w, onc, owner, t, umin, umax, lo, hi):
    """``lo, hi`` (the growth window of track ``t``), each end pulled back to
    the track's extent when the other points on its curve beyond it are
    sparser than ``DENSE_FRACTION`` of the track's own points per unit
    length, or fainter (light ``w``) than ``LIGHT_FRACTION`` of its own
    light per unit length."""
    nown = 0
    nlo = 0
    nhi = 0
    wown = 0.0
    wlo = 0.0
    whi = 0.0
    for i in range(u.shape[0]):
        if not onc[i]:
            continue
        if owner[i] == t:
            if umin <= u[i] <= umax:
                nown += 1
                wown += w[i]
        elif umax < u[i] <= hi:
            nhi += 1
            whi += w[i]
        elif lo <= u[i] < umin:
            nlo += 1
            wlo += w[i]
    dens = nown / (umax - umin + 1.0)
    wdens = wown / (umax - umin + 1.0)
    if hi > umax and (
        nhi < DENSE_FRACTION * dens * (hi - umax) or whi < LIGHT_FRACTION * wdens * (hi - umax)
    ):
        hi = umax
    if lo < umin and (
        nlo < DENSE_FRACTION * dens * (umin - lo) or wlo < LIGHT_FRACTION * wdens * (umin - lo)
    ):
        lo = umin
    return lo, hi


#: two groups are of alike light when their median light per point is
#: within this factor (pieces of one track are alike; on the crossing set a
#: muon's points have medians of ~2-2.7 ADU per rebinned px, an alpha's
#: 12-32 with its halo: a muon piece lying on an alpha's curve beyond its
#: end is not the alpha's, an alpha piece on a muon's reach not the muon's;
#: measured the same at 3, 4 and 5)
LIGHT_RATIO = 4.0
#: cos of the largest angle between a track and a piece of its halo (the
#: faint edge of an alpha's light, along it)
HALO_COS = np.cos(np.radians(5.0))
#: a track is wide (an alpha: its band 3.8-4.4 rebinned px, a muon's
#: 2.5-3.4) when its band is over this many times ``thickness``
WIDE = 1.4
#: a thin track at least this long (rebinned px) takes the points on its
#: reach out of an unfitted DBSCAN cluster (a muon's end in one cluster
#: with 55Fe spots), shorter ones are pieces or spots themselves
BLOB_TAKER_LENGTH = 20.0


@numba.njit(**_NJIT)
def _alike(a, b):
    """Whether two groups' median light per point ``a``, ``b`` are within
    ``LIGHT_RATIO``."""
    return max(a, b) <= LIGHT_RATIO * min(a, b)


@numba.njit(**_NJIT)
def _n_beyond(u, owner, g, umin, umax):
    """Number of the points of ``g`` beyond [umin, umax] along ``u``."""
    k = 0
    for i in range(u.shape[0]):
        k += owner[i] == g and (u[i] < umin or u[i] > umax)
    return k


@numba.njit(**_NJIT)
def _group_median(w, owner, g):
    """Median light of the points owned by ``g``."""
    k = 0
    for i in range(owner.shape[0]):
        k += owner[i] == g
    x = np.empty(k)
    k = 0
    for i in range(owner.shape[0]):
        if owner[i] == g:
            x[k] = w[i]
            k += 1
    return _median(x)


@numba.njit(**_NJIT)
def _merge_into(owner, alive, g, t):
    """Group ``g`` joins track ``t``: its points become ``t``'s, ``g`` is gone."""
    for i in range(owner.shape[0]):
        if owner[i] == g:
            owner[i] = t
    alive[g] = False


@numba.njit(**_NJIT)
def _absorb_halo(r, c, w, owner, is_track, alive, tpar, ng, min_points, thickness, width_nsigma):
    """A track lying within twice the band of a wide track (``WIDE``: an alpha),
    inside its extent, but for fewer than ``min_points`` points, and of
    other light (:func:`_alike`) is that track's halo: it joins it."""
    n = r.shape[0]
    for t in range(ng):
        if not (is_track[t] and alive[t]) or tpar[t, 9] <= WIDE * thickness:
            continue
        tp = tpar[t]
        umin = tp[7]
        umax = tp[8]
        lim = 2.0 * tp[9]
        size = np.zeros(ng, np.int64)
        ins = np.zeros(ng, np.int64)
        for i in range(n):
            g = owner[i]
            if g < 0 or g == t or not is_track[g]:
                continue
            size[g] += 1
            ui, res = _curve_point(tp, r[i], c[i])
            ins[g] += abs(res) <= lim and ui >= umin and ui <= umax
        tmed = 0.0
        have_tmed = False
        absorbed = False
        for g in range(ng):
            if g == t or not alive[g] or size[g] == 0 or size[g] - ins[g] >= min_points:
                continue
            if not have_tmed:
                tmed = _group_median(w, owner, t)
                have_tmed = True
            if _alike(_group_median(w, owner, g), tmed):
                continue
            _merge_into(owner, alive, g, t)
            absorbed = True
        if absorbed:
            _set_track(r, c, np.nonzero(owner == t)[0], tpar, t, thickness, width_nsigma)


@numba.njit(nogil=True, cache=True, inline="always")
def _curve_point(tp, ri, ci):
    """Position along the axis and residual from the curve of the point
    (ri, ci) for track parameters ``tp`` (a row of ``tpar``): the arithmetic
    of :func:`_frame_uv` and :func:`_residuals` for one point (beyond the
    ends along the end tangents)."""
    dr = ri - tp[0]
    dc = ci - tp[1]
    ui = dc * tp[3] + dr * tp[2]
    vi = dc * tp[2] - dr * tp[3]
    x = min(max(ui, tp[7]), tp[8])
    f = tp[4] + tp[5] * x + tp[6] * x * x + (tp[5] + 2.0 * tp[6] * x) * (ui - x)
    return ui, vi - f


@numba.njit(**_NJIT)
def _on_curve(r, c, tp, owner, t, u, onc, uon, umine):
    """For track parameters ``tp`` (a row of ``tpar``): ``u`` (position
    along the axis) and ``onc`` (within the thickness of the curve, beyond
    the ends along the end tangents) of every point, and in index order the
    positions of the points on the curve (``uon``) and of those of them
    owned by ``t`` (``umine``); returns their counts. Element by element the
    arithmetic of :func:`_frame_uv` and :func:`_residuals`, in one pass."""
    th = tp[9]
    kon = 0
    kmine = 0
    for i in range(r.shape[0]):
        ui, res = _curve_point(tp, r[i], c[i])
        u[i] = ui
        o = abs(res) <= th
        onc[i] = o
        if o:
            uon[kon] = ui
            kon += 1
            if owner[i] == t:
                umine[kmine] = ui
                kmine += 1
    return kon, kmine


@numba.njit(**_NJIT)
def fit_track(r, c, line_half=0.0):
    """Frame (cr, cc, ur, uc), polynomial ``p`` and robust residual scale of
    the points: principal axis, then IRLS (Cauchy weights) on the polynomial
    (a straight line on points within ``line_half`` of their centroid)."""
    cr, cc, ur, uc = _axis(r, c)
    u, v = _frame_uv(r, c, cr, cc, ur, uc)
    n = u.shape[0]
    w = np.ones(n)
    # residuals, weights and the median's scratch reused over the
    # iterations: a seed of ~20 points spent more on allocations than on
    # arithmetic (the same values as fresh arrays would hold)
    res = np.empty(n)
    tmp = np.empty(n)
    p = _poly_fit(u, v, w, line_half)
    big = 1e18
    for _ in range(IRLS_ITERATIONS):
        _residuals_into(u, v, p, -big, big, res)
        s = max(_mad_scale_into(res, tmp), MIN_SCALE)
        for i in range(n):
            w[i] = 1.0 / (1.0 + (res[i] / (2.0 * s)) ** 2)
        p = _poly_fit(u, v, w, line_half)
    _residuals_into(u, v, p, -big, big, res)
    s = _mad_scale_into(res, tmp)
    return cr, cc, ur, uc, p, s


#: the band of a wide track: at most its members' |residual| quantile
#: BAND_QUANTILE plus BAND_MARGIN (rebinned px)
BAND_QUANTILE = 0.98
BAND_MARGIN = 1.5


@numba.njit(**_NJIT)
def _band(rr, s, thickness, width_nsigma):
    """Half-width of a track's band from its fit residuals ``rr`` and robust
    scale ``s``: ``width_nsigma * s`` (at least ``thickness``), but no
    wider than the members reach (a bright alpha's cross-section is flat,
    not Gaussian: its MAD scale times width_nsigma is ~1.85x its half-width)."""
    w = width_nsigma * s
    if w > thickness and rr.shape[0] > 0:
        w = min(w, np.quantile(np.abs(rr), BAND_QUANTILE) + BAND_MARGIN)
    return max(thickness, w)


@numba.njit(**_NJIT)
def _set_track(r, c, mem, tpar, g, thickness, width_nsigma):
    """Refit track ``g`` on the points ``mem``: frame, curve, extent and
    thickness of its members within the thickness, fit RMS (a short piece:
    a straight line, ``LINE_HALF``)."""
    cr, cc, ur, uc, p, s = fit_track(r[mem], c[mem], LINE_HALF)
    uu, vv = _frame_uv(r[mem], c[mem], cr, cc, ur, uc)
    rr = _residuals(uu, vv, p, -1e18, 1e18)
    th = _band(rr, s, thickness, width_nsigma)
    ins = np.abs(rr) <= th
    tpar[g, 0] = cr
    tpar[g, 1] = cc
    tpar[g, 2] = ur
    tpar[g, 3] = uc
    tpar[g, 4:7] = p
    tpar[g, 7] = uu[ins].min() if ins.any() else uu.min()
    tpar[g, 8] = uu[ins].max() if ins.any() else uu.max()
    tpar[g, 9] = th
    tpar[g, 10] = np.sqrt(np.mean(rr[ins] ** 2)) if ins.any() else 0.0


@numba.njit(**_NJIT)
def _share(r, c, idx, owner, tpar, gids, min_points, thickness, width_nsigma, reach):
    """Tracks ``gids`` and their points ``idx``: the first track fitted in a
    shared seed takes every point within its thickness of its curve, also
    the other track's beyond its own end (an alpha ending on another, a
    T-junction). Each track's extent is that of its points in no other
    track's band; a point within the bands of several goes to the one whose
    segment (the curve within that extent) is nearest, distances in units
    of each track's thickness. A band counts only within ``reach`` of its
    track's ends (along the curve) for the other tracks' extents and for
    taking a point that lies in its own track's band: the last sharing, of
    the complete tracks, passes ``grow_radius`` (a short alpha's band,
    continued along its end tangent, cut a crossing muon's extent 40 px
    beyond the alpha's end and, wider, took the muon's end); the sharing
    within a seed passes no limit. A point in a thin track's band and owned
    by it never goes to a wide track (``WIDE``: an alpha) beyond that
    track's extent: a muon passing an alpha's end keeps its line there (the
    alpha's band reaches ~1 band width past its light; the muon's extent,
    cut by that band, made its own points nearer the alpha's segment: a
    muon along the image border lost its last 28 px to an alpha ending on
    it). The tracks that changed (and keep ``min_points``) are refitted."""
    m = gids.shape[0]
    nq = idx.shape[0]
    slot = np.full(tpar.shape[0], -1, np.int64)
    for j in range(m):
        slot[gids[j]] = j
    d = np.empty((m, nq))
    uall = np.empty((m, nq))
    far = np.zeros((m, nq), np.bool_)
    past = np.zeros((m, nq), np.bool_)  # beyond a wide track's extent
    for j in range(m):
        g = gids[j]
        uu, vv = _frame_uv(r[idx], c[idx], tpar[g, 0], tpar[g, 1], tpar[g, 2], tpar[g, 3])
        d[j] = np.abs(_residuals(uu, vv, tpar[g, 4:7], -1e18, 1e18)) / tpar[g, 9]
        uall[j] = uu
        for q in range(nq):
            far[j, q] = max(uu[q] - tpar[g, 8], tpar[g, 7] - uu[q]) > reach
    inb = d <= 1.0
    nall = np.zeros(nq, np.int64)
    nin = np.zeros(nq, np.int64)
    for j in range(m):
        for q in range(nq):
            nall[q] += inb[j, q]
            nin[q] += inb[j, q] and not far[j, q]
    # each track's extent: its points in no other track's band (within
    # ``reach`` of that track's extent)
    for j in range(m):
        g = gids[j]
        lo = 1e300
        hi = -1e300
        for q in range(nq):
            if owner[idx[q]] == g and nin[q] - (inb[j, q] and not far[j, q]) == 0:
                lo = min(lo, uall[j, q])
                hi = max(hi, uall[j, q])
        if lo > hi:
            lo = tpar[g, 7]
            hi = tpar[g, 8]
        wide = tpar[g, 9] > WIDE * thickness
        for q in range(nq):
            x = max(uall[j, q] - hi, lo - uall[j, q], 0.0) / tpar[g, 9]
            d[j, q] = np.sqrt(d[j, q] * d[j, q] + x * x) if inb[j, q] else 1e300
            past[j, q] = wide and x > 0.0
    changed = np.zeros(m, np.bool_)
    for q in range(nq):
        if nall[q] < 1:
            continue
        j0 = slot[owner[idx[q]]]
        if j0 < 0:
            continue
        # a point in its own track's band goes only to a band within reach,
        # and a thin track's not to a wide one's beyond that one's extent
        mine = inb[j0, q]
        thin = tpar[gids[j0], 9] <= WIDE * thickness
        bj = j0
        for j in range(m):
            if d[j, q] < d[bj, q] and not (mine and (far[j, q] or (thin and past[j, q]))):
                bj = j
        if bj != j0:
            owner[idx[q]] = gids[bj]
            changed[bj] = True
            changed[j0] = True
    for j in range(m):
        if changed[j]:
            mem = idx[owner[idx] == gids[j]]
            if mem.shape[0] >= min_points:
                _set_track(r, c, mem, tpar, gids[j], thickness, width_nsigma)


@numba.njit(**_NJIT)
def seed_labels(prow, pcol, labels, eps, min_samples):
    """DBSCAN's clusters plus secondary seeds: DBSCAN with ``min_samples``
    on the points DBSCAN left unclustered (a faint track's points rarely
    have the online 10 neighbours); returns (seeds, number of DBSCAN
    clusters)."""
    n = prow.shape[0]
    ncl = 0
    for i in range(n):
        ncl = max(ncl, labels[i] + 1)
    seeds = labels.copy()
    if min_samples <= 0:
        return seeds, ncl
    free = np.nonzero(labels < 0)[0]
    if free.shape[0] == 0:
        return seeds, ncl
    sub = kn.dbscan(prow[free], pcol[free], eps, min_samples)
    for q in range(free.shape[0]):
        if sub[q] >= 0:
            seeds[free[q]] = ncl + sub[q]
    return seeds, ncl


@numba.njit(**_NJIT)
def directional_labels(
    prow,
    pcol,
    values,
    labels,
    nprimary,
    min_points,
    thickness,
    width_nsigma,
    grow_radius,
    min_length,
    min_elongation,
    merge_fraction,
    merge_cos,
    merge_gap,
    max_iterations,
    n_angles,
    hole_bridge,
    min_coverage,
):
    """Final labels (-1 = noise, clusters numbered by lowest point index)
    and per final cluster the fit RMS (rebinned px; 0 = no good fit).
    ``labels`` are the seeds (:func:`seed_labels`): clusters ``<
    nprimary`` are DBSCAN's, the others secondary seeds of unclustered
    points that only count if they make a track. See the module
    documentation for the algorithm."""
    n = prow.shape[0]
    r = prow.astype(np.float64)
    c = pcol.astype(np.float64)
    w = values.astype(np.float64)
    ncl = 0
    for i in range(n):
        ncl = max(ncl, labels[i] + 1)
    # groups: DBSCAN clusters that stay, remnants and tracks
    gmax = ncl + n // max(min_points, 1) + 2
    owner = np.full(n, -1, np.int64)
    is_track = np.zeros(gmax, np.bool_)
    alive = np.zeros(gmax, np.bool_)
    blob = np.zeros(gmax, np.bool_)  # a DBSCAN cluster without a fit
    tpar = np.zeros((gmax, 11))  # cr cc ur uc p0 p1 p2 umin umax thick rms
    ng = 0
    sins = np.empty(n_angles)
    coss = np.empty(n_angles)
    for a in range(n_angles):
        th = np.pi * a / n_angles
        sins[a] = np.sin(th)
        coss[a] = np.cos(th)
    # points of each DBSCAN cluster, in index order
    start, order = _points_by_label(labels, ncl)
    for k in range(ncl):
        rem = order[start[k] : start[k + 1]].copy()
        first_track = ng
        while rem.shape[0] >= min_points:
            strip = rem[_hough_strip(r[rem], c[rem], n_angles, thickness, sins, coss)]
            if strip.shape[0] < min_points:
                break
            cr, cc, ur, uc, p, s = fit_track(r[strip], c[strip], LINE_HALF)
            if s > SPLIT_SCALE and strip.shape[0] >= 2 * min_points:
                line = _one_line(r, c, strip, n_angles, thickness, sins, coss, min_points)
                if line.shape[0] < strip.shape[0]:
                    strip = line
                    cr, cc, ur, uc, p, s = fit_track(r[strip], c[strip], LINE_HALF)
            th = thickness
            if width_nsigma * s > thickness:
                su, sv = _frame_uv(r[strip], c[strip], cr, cc, ur, uc)
                th = _band(_residuals(su, sv, p, -1e18, 1e18), s, thickness, width_nsigma)
            u, v = _frame_uv(r[rem], c[rem], cr, cc, ur, uc)
            res = _residuals(u, v, p, -1e18, 1e18)
            inside = np.abs(res) <= th
            if inside.sum() < min_points:
                break
            umin = u[inside].min()
            umax = u[inside].max()
            ext = umax - umin
            if ext < min_length or _elongation(r[rem[inside]], c[rem[inside]]) < min_elongation:
                break
            g = ng
            ng += 1
            is_track[g] = True
            alive[g] = True
            owner[rem[inside]] = g
            tpar[g, 0] = cr
            tpar[g, 1] = cc
            tpar[g, 2] = ur
            tpar[g, 3] = uc
            tpar[g, 4:7] = p
            tpar[g, 7] = umin
            tpar[g, 8] = umax
            tpar[g, 9] = th
            tpar[g, 10] = np.sqrt(np.mean(res[inside] ** 2))
            rem = rem[~inside]
        if ng - first_track >= 2:
            _share(
                r,
                c,
                order[start[k] : start[k + 1]],
                owner,
                tpar,
                np.arange(first_track, ng),
                min_points,
                thickness,
                width_nsigma,
                1e300,
            )
        if rem.shape[0] == 0:
            continue
        if ng == first_track:
            # no good fit: as DBSCAN found it (a secondary seed, made of
            # unclustered points, goes back to noise)
            if k < nprimary:
                g = ng
                ng += 1
                alive[g] = True
                blob[g] = True
                owner[rem] = g
            continue
        # the rest of a seed: to the nearest of its tracks when within twice
        # its thickness (halo, stray points), else a cluster of its own if
        # big enough (an unfitted piece), else to the nearest track anyway
        best = np.full(rem.shape[0], first_track, np.int64)
        bd = np.full(rem.shape[0], 1e300)
        for g in range(first_track, ng):
            uu, vv = _frame_uv(r[rem], c[rem], tpar[g, 0], tpar[g, 1], tpar[g, 2], tpar[g, 3])
            d = np.abs(_residuals(uu, vv, tpar[g, 4:7], tpar[g, 7], tpar[g, 8])) / tpar[g, 9]
            for i in range(rem.shape[0]):
                if d[i] < bd[i]:
                    bd[i] = d[i]
                    best[i] = g
        far = bd > 2.0
        if k >= nprimary:
            owner[rem[~far]] = best[~far]
        elif far.sum() >= min_points:
            g = ng
            ng += 1
            alive[g] = True
            owner[rem[far]] = g
            owner[rem[~far]] = best[~far]
        else:
            owner[rem] = best
    # growth and merging, tracks in creation order
    u = np.empty(n)
    onc = np.empty(n, np.bool_)
    near = np.empty(n, np.bool_)
    uon = np.empty(n)
    umine = np.empty(n)
    for t in range(ng):
        if not (is_track[t] and alive[t]):
            continue
        for _ in range(max_iterations):
            # one pass: position along the curve, on the curve (within the
            # thickness, beyond the ends along the end tangents), and the
            # positions on it of all points and of this track's (the same
            # values as _frame_uv and _residuals)
            kon, kmine = _on_curve(r, c, tpar[t], owner, t, u, onc, uon, umine)
            step = grow_radius
            complete = kmine > 1 and _complete(np.sort(umine[:kmine]), min_coverage)
            if kmine > 1 and not complete:
                step = hole_bridge * grow_radius
            lo, hi = _reach(uon[:kon], tpar[t, 7], tpar[t, 8], step)
            lo -= grow_radius
            hi += grow_radius
            if complete and tpar[t, 9] > thickness:
                lo, hi = _dense_ends(u, w, onc, owner, t, tpar[t, 7], tpar[t, 8], lo, hi)
            for i in range(n):
                near[i] = onc[i] and u[i] >= lo and u[i] <= hi
            cnt = np.zeros(ng, np.int64)
            cnear = np.zeros(ng, np.int64)
            size = np.zeros(ng, np.int64)
            glo = np.full(ng, 1e300)
            ghi = np.full(ng, -1e300)
            added = False
            for i in range(n):
                g = owner[i]
                if g < 0:
                    if near[i]:
                        owner[i] = t
                        added = True
                    continue
                if g == t:
                    continue
                size[g] += 1
                cnear[g] += near[i]
                if is_track[g]:
                    # another track: on the extended curve anywhere, then
                    # its gap to this one is checked below
                    if onc[i]:
                        cnt[g] += 1
                        glo[g] = min(glo[g], u[i])
                        ghi[g] = max(ghi[g], u[i])
                elif near[i]:
                    cnt[g] += 1
            # the points by group when a median light is first needed (a
            # group's points change only when it is taken, then it is gone)
            gstart = np.zeros(0, np.int64)
            gorder = np.zeros(0, np.int64)
            tmed = 0.0
            for g in range(ng):
                if g == t or not alive[g] or size[g] == 0:
                    continue
                cosang = abs(tpar[g, 2] * tpar[t, 2] + tpar[g, 3] * tpar[t, 3])
                # a piece lying along this track's reach, or a collinear
                # track further on beyond a gap of at most merge_gap
                take = cnear[g] >= merge_fraction * size[g]
                along = take
                if not take and is_track[g] and cnt[g] >= merge_fraction * size[g]:
                    gap = max(glo[g] - tpar[t, 8], tpar[t, 7] - ghi[g])
                    take = cosang >= merge_cos and gap <= merge_gap
                if take and blob[g] and tpar[t, 8] - tpar[t, 7] < BLOB_TAKER_LENGTH:
                    # a short piece's direction is too uncertain to call a
                    # round cluster on its reach a piece of it (a 55Fe spot
                    # beside a muon's line turned the piece towards it): a
                    # long track takes it, or nothing
                    gm = np.nonzero(owner == g)[0]
                    if _elongation(r[gm], c[gm]) < min_elongation:
                        take = False
                if (
                    not take
                    and blob[g]
                    and cnear[g] >= min_points
                    and tpar[t, 9] <= WIDE * thickness
                    and tpar[t, 8] - tpar[t, 7] >= BLOB_TAKER_LENGTH
                ):
                    # a cluster without a fit holding a piece of this muon
                    # (its end in one cluster with 55Fe spots): the piece
                    # changes hands, the spots stay
                    _hand_over(owner, near, g, t)
                    added = True
                    continue
                if not take:
                    continue
                # one of them wide (an alpha), of other light (median per
                # point), and reaching beyond this track's ends or not
                # parallel to it: another track (a muon along an alpha), not
                # its halo
                foreign = False
                wide = tpar[t, 9] > WIDE * thickness or (
                    is_track[g] and tpar[g, 9] > WIDE * thickness
                )
                if wide and (
                    cosang < HALO_COS
                    or _n_beyond(u, owner, g, tpar[t, 7], tpar[t, 8]) >= min_points
                ):
                    if gstart.shape[0] == 0:
                        gstart, gorder = _points_by_label(owner, ng)
                        tmed = _median(w[gorder[gstart[t] : gstart[t + 1]]])
                    foreign = not _alike(_median(w[gorder[gstart[g] : gstart[g + 1]]]), tmed)
                rest = size[g] - cnear[g] >= min_points
                if along and is_track[g] and (cosang < merge_cos or foreign) and rest:
                    # a track across this one (a crossing in one seed), or
                    # of other light: only its points on this track's reach
                    # change hands
                    _hand_over(owner, near, g, t)
                    added = True
                    continue
                if foreign and rest:
                    continue
                _merge_into(owner, alive, g, t)
                added = True
            if not added:
                break
            _set_track(r, c, np.nonzero(owner == t)[0], tpar, t, thickness, width_nsigma)
    _absorb_halo(r, c, w, owner, is_track, alive, tpar, ng, min_points, thickness, width_nsigma)
    # the tracks now hold their whole length: share again, between all of
    # them (a track crossing another one of another seed, near-parallel
    # tracks), with the extents of the complete tracks, each band counting
    # up to grow_radius past its track's ends
    gl = np.nonzero(is_track[:ng] & alive[:ng])[0]
    if gl.shape[0] >= 2:
        mark = np.zeros(ng, np.bool_)
        mark[gl] = True
        sel = np.zeros(n, np.bool_)
        for i in range(n):
            sel[i] = owner[i] >= 0 and mark[owner[i]]
        sel_idx = np.nonzero(sel)[0]
        for _ in range(SHARE_PASSES):
            _share(r, c, sel_idx, owner, tpar, gl, min_points, thickness, width_nsigma, grow_radius)
    # renumber by lowest point index
    newid = np.full(ng, -1, np.int64)
    out = np.full(n, -1, np.int64)
    nout = 0
    for i in range(n):
        g = owner[i]
        if g < 0:
            continue
        if newid[g] < 0:
            newid[g] = nout
            nout += 1
        out[i] = newid[g]
    rms = np.zeros(nout)
    for g in range(ng):
        if newid[g] >= 0 and is_track[g]:
            rms[newid[g]] = tpar[g, 10]
    return out, rms


#: light of a track point counts at most this many times the median point's
#: in the length measurement (a crossing alpha or spot must not dominate)
LENGTH_WEIGHT_CAP = 2.0
#: complete tracks (:func:`_complete`) have the length of a uniform segment
#: with their second moment along the curve, sqrt(12 var(u)) (robust to a
#: spot or a piece of another track touching an end); one with holes (a
#: faint muon, where the moment would be wrong) is measured end to end
#: end to end: a track ends where the light counted from its extreme point
#: reaches this many rebinned pixels' worth of its mean light per pixel
#: along the track (the diffusion halo beyond the end of a Gaussian-blurred
#: segment holds 0.4 sigma of it: 0.5 px covers the halo of the thickest
#: alphas, about 1 rebinned px, and costs at most 0.5 px on a track cut by
#: the image edge)
LENGTH_END_TRIM = 0.5
#: bisection steps of the end position (interval of a few px: 1e-12 px)
_END_STEPS = 48


@numba.njit(**_NJIT)
def _end_position(us, ws, t):
    """Position ``x`` where ``C(x) = sum(ws * clip(x - us + 0.5, 0, 1))``
    (each point's light spread over its pixel along the track) reaches
    ``t``; ``us`` ascending."""
    n = us.shape[0]
    cum = 0.0
    k = 0
    while k < n and cum < t:
        cum += ws[k]
        k += 1
    lo = us[0] - 0.5
    hi = us[k - 1] + 0.5
    m = k
    while m < n and us[m] < hi + 0.5:
        m += 1
    for _ in range(_END_STEPS):
        mid = 0.5 * (lo + hi)
        s = 0.0
        for j in range(m):
            s += ws[j] * min(max(mid - us[j] + 0.5, 0.0), 1.0)
        if s < t:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@numba.njit(**_NJIT)
def _length_and_ends(r, c, w, thickness, width_nsigma, min_coverage):
    """:func:`track_length` of the points, and the fit it is measured on:
    frame (cr, cc, ur, uc), polynomial ``p`` and the positions along the
    axis of the extreme points counted (where :func:`extension` starts)."""
    cr, cc, ur, uc, p, s = fit_track(r, c)
    u, v = _frame_uv(r, c, cr, cc, ur, uc)
    res = _residuals(u, v, p, -1e18, 1e18)
    ins = np.abs(res) <= max(thickness, width_nsigma * s)
    if ins.sum() < 2:
        ins[:] = True
    ui = u[ins]
    wi = np.minimum(w[ins], LENGTH_WEIGHT_CAP * _median(w[ins]))
    o = np.argsort(ui, kind="mergesort")
    us = ui[o]
    ws = wi[o]
    rs = res[ins][o]
    tot = ws.sum()
    span = us[-1] - us[0] + 1.0
    frame = (cr, cc, ur, uc, p, us[0], us[-1])
    if tot <= 0.0:
        return span, frame
    if _complete(us, min_coverage):
        mu = 0.0
        for j in range(us.shape[0]):
            mu += ws[j] * us[j]
        mu /= tot
        var = 0.0
        lat = 0.0
        for j in range(us.shape[0]):
            var += ws[j] * (us[j] - mu) ** 2
            lat += ws[j] * rs[j] * rs[j]
        # the blur along the track is the one across it (diffusion halo)
        return np.sqrt(12.0 * max(var - lat, 0.0) / tot), frame
    t = LENGTH_END_TRIM * tot / span
    lo = _end_position(us, ws, t)
    hi = -_end_position(-us[::-1], ws[::-1].copy(), t)
    return max(hi - lo, 0.0), frame


@numba.njit(**_NJIT)
def track_length(r, c, w, thickness, width_nsigma, min_coverage):
    """Length (rebinned px) of one track cluster: its points (light ``w``)
    within the track thickness of a fit of the whole cluster, projected on
    the fit's axis, light capped at ``LENGTH_WEIGHT_CAP`` x the median;
    complete tracks (:func:`_complete`): sqrt(12 (var along - var
    across)) of the projections and residuals; others: between the ends where the capped light counted
    from the extreme points reaches ``LENGTH_END_TRIM`` px of the mean
    light per px along the track."""
    return _length_and_ends(r, c, w, thickness, width_nsigma, min_coverage)[0]


@numba.njit(**_NJIT)
def track_lengths(prow, pcol, values, labels, rms, thickness, width_nsigma, min_coverage):
    """Per final cluster the track length (rebinned px) of
    :func:`track_length` for the clusters with a good fit (``rms > 0``),
    0 for the others: :func:`extended_track_lengths` without a map (no
    extension)."""
    img = np.zeros((1, 1), np.float32)
    lab = np.full((1, 1), -1, np.int32)
    return extended_track_lengths(
        prow,
        pcol,
        values,
        labels,
        rms,
        thickness,
        width_nsigma,
        min_coverage,
        img,
        lab,
        0,
        0,
        0,
        0,
        0.0,
        1,
        0,
        0,
    )[0]


# -- the light past a track's last point --------------------------------------
#
# A faint muon's last 10-30 px can be one rebinned px wide at ~2 ADU: its
# neighbour mean (~0.7) is below the noise filter's, so no point is left
# there and the track is short. Past each end of a fitted track the
# rebinned map (before the noise filter) is read along the end tangent, one
# px per step: the light on the line (EXT_ON px either side) minus as many
# times the mean of the flanks (EXT_FLANK and EXT_FLANK + 1 px off the line,
# both sides). A track of other light crossing the line lies on the flanks
# too, a pedestal offset cancels; a window of ``window`` steps adds up the
# contrast so that one noise pixel neither extends nor stops the walk.

#: half-width of the band on the line (rebinned px)
EXT_ON = 1
#: distance of the inner flank from the line (rebinned px; the outer one is
#: 1 px further): off a faint muon (0.5 rebinned px sigma), inside an
#: alpha's light (a few px wide) beside its line
EXT_FLANK = 3


#: pixels of the map read for its background spread: every k-th row such
#: that at least this many are (the spread's statistical error ~1 %; the
#: whole of a LIME map, 250k pixels in the acceptance, cost 0.18 ms per
#: frame, as much as the track lengths; crops up to 181x181 rebinned px are
#: read whole)
SIGMA_PIXELS = 32768


@numba.njit(nogil=True, cache=True, inline="always")
def sigma_row_step(ra, rb, ca, cb):
    """Row step of :func:`background_sigma` (``SIGMA_PIXELS``)."""
    return max(1, ((rb - ra) * (cb - ca)) // SIGMA_PIXELS)


@numba.njit(**_NJIT)
def background_sigma(img, prow, pcol, ra, rb, ca, cb):
    """Standard deviation of the map ``img`` over the pixels of every
    :func:`sigma_row_step`-th row of ``[ra, rb)``, columns ``[ca, cb)``, that
    are not points (the pedestal noise left by the zero suppression, 2x2
    median and rebin, and the light below the noise filter): the noise of
    the contrast of :func:`extension`, measured on the frame itself."""
    # four partial sums: independent additions the CPU overlaps
    s = np.zeros(4)
    q = np.zeros(4)
    n = 0
    w = cb - ca
    w4 = w - w % 4
    step = sigma_row_step(ra, rb, ca, cb)
    for i in range(ra, rb, step):
        for j in range(ca, ca + w4, 4):
            for t in range(4):
                x = np.float64(img[i, j + t])
                s[t] += x
                q[t] += x * x
        for j in range(ca + w4, cb):
            x = np.float64(img[i, j])
            s[0] += x
            q[0] += x * x
        n += w
    st = s[0] + s[1] + s[2] + s[3]
    qt = q[0] + q[1] + q[2] + q[3]
    for k in range(prow.shape[0]):
        i = prow[k]
        j = pcol[k]
        if ra <= i < rb and ca <= j < cb and (i - ra) % step == 0:
            x = np.float64(img[i, j])
            st -= x
            qt -= x * x
            n -= 1
    if n < 2:
        return 0.0
    m = st / n
    return np.sqrt(max(qt / n - m * m, 0.0))


@numba.njit(nogil=True, cache=True, inline="always")
def _pixel(img, r, c, ra, rb, ca, cb):
    """Value of the nearest pixel of (r, c), -1 outside the region."""
    i = int(np.floor(r + 0.5))
    j = int(np.floor(c + 0.5))
    if i < ra or i >= rb or j < ca or j >= cb:
        return -1.0
    return np.float64(img[i, j])


@numba.njit(**_NJIT)
def _contrast(img, lab, own, rk, ck, nr, nc, ra, rb, ca, cb):
    """Contrast of the step at (rk, ck) across the normal (nr, nc): the
    light on the line minus its number of pixels times the flanks' mean, and
    its variance for a map of unit pixel spread; variance -1 where the step
    leaves the region (its centre or both flanks outside) or where a pixel on
    the line is a point of another cluster than ``own`` (``lab``: the label
    of every point, -1 elsewhere): that light is another track's."""
    if _pixel(img, rk, ck, ra, rb, ca, cb) < 0.0:
        return 0.0, -1.0
    on = 0.0
    non = 0
    for s in range(-EXT_ON, EXT_ON + 1):
        x = _pixel(img, rk + s * nr, ck + s * nc, ra, rb, ca, cb)
        if x >= 0.0:
            i = int(np.floor(rk + s * nr + 0.5))
            j = int(np.floor(ck + s * nc + 0.5))
            if lab[i, j] >= 0 and lab[i, j] != own:
                return 0.0, -1.0
            on += x
            non += 1
    fl = 0.0
    nfl = 0
    for s in (-EXT_FLANK - 1, -EXT_FLANK, EXT_FLANK, EXT_FLANK + 1):
        x = _pixel(img, rk + s * nr, ck + s * nc, ra, rb, ca, cb)
        if x >= 0.0:
            fl += x
            nfl += 1
    if nfl == 0:
        return 0.0, -1.0
    return on - non * fl / nfl, non + non * non / nfl


@numba.njit(**_NJIT)
def extension(img, lab, g, pr, pc, tr, tc, ra, rb, ca, cb, noise, window, gap, max_steps):
    """Steps (rebinned px) by which a track continues past its end point
    (pr, pc) along the unit direction (tr, tc): step k has the
    :func:`_contrast` of the pixels ``pr + k tr + s n`` (n the normal) on
    the line (|s| <= EXT_ON) and on the flanks (|s| = EXT_FLANK,
    EXT_FLANK + 1), ``g`` the track's label in ``lab``. The track reaches the last positive step of every
    ``window`` steps whose contrast exceeds ``noise`` times its standard
    deviation for a map of unit pixel spread (``noise`` = the spread times
    the significance) and ``LIGHT_FRACTION`` of the track's own contrast
    over as many steps (measured on its last ``2 window`` steps up to the
    end point: an alpha's diffusion halo past its end is far fainter than
    the alpha, a muon's faint end is not). The walk stops at the region's
    edge, after ``max_steps`` or once ``window`` + ``gap`` steps have passed
    without reaching further."""
    nr = -tc
    nc = tr
    own = 0.0
    nown = 0
    # on the track (its points are its own; a step in another cluster or
    # off the region does not count)
    for k in range(0, -2 * window, -1):
        x, vx = _contrast(img, lab, g, pr + k * tr, pc + k * tc, nr, nc, ra, rb, ca, cb)
        if vx >= 0.0:
            own += x
            nown += 1
    if nown == 0 or own <= 0.0:
        return 0
    least = LIGHT_FRACTION * own / nown * window
    cbuf = np.zeros(window)
    vbuf = np.zeros(window)
    reach = 0
    for k in range(1, max_steps + 1):
        x, vx = _contrast(img, lab, g, pr + k * tr, pc + k * tc, nr, nc, ra, rb, ca, cb)
        if vx < 0.0:
            break
        b = k % window
        cbuf[b] = x
        vbuf[b] = vx
        if k >= window:
            ct = 0.0
            vt = 0.0
            for j in range(k - window + 1, k + 1):
                ct += cbuf[j % window]
                vt += vbuf[j % window]
            if ct > noise * np.sqrt(vt) and ct > least:
                # the last positive step of the window
                for j in range(k, k - window, -1):
                    if cbuf[j % window] > 0.0:
                        reach = max(reach, j)
                        break
        if k - reach >= window + gap:
            break
    return reach


@numba.njit(**_NJIT)
def extended_track_lengths(
    prow,
    pcol,
    values,
    labels,
    rms,
    thickness,
    width_nsigma,
    min_coverage,
    img,
    lab,
    ra,
    rb,
    ca,
    cb,
    noise,
    window,
    gap,
    max_steps,
):
    """:func:`track_lengths` and per fitted track the steps of
    :func:`extension` past its low and high end (the extreme points of the
    length's fit, along the curve's tangent there) on the map ``img``
    (region rows [ra, rb), columns [ca, cb); ``lab``: the label of every
    point, -1 elsewhere); ``noise`` <= 0: none."""
    ncl = rms.shape[0]
    out = np.zeros(ncl)
    ext = np.zeros((ncl, 2))
    cnt, order = _points_by_label(labels, ncl)
    for k in range(ncl):
        if rms[k] <= 0.0:
            continue
        idx = order[cnt[k] : cnt[k + 1]]
        length, fr = _length_and_ends(
            prow[idx].astype(np.float64),
            pcol[idx].astype(np.float64),
            values[idx].astype(np.float64),
            thickness,
            width_nsigma,
            min_coverage,
        )
        out[k] = length
        if noise <= 0.0:
            continue
        cr, cc, ur, uc, p, ulo, uhi = fr
        for e in range(2):
            u = ulo if e == 0 else uhi
            v = p[0] + p[1] * u + p[2] * u * u
            sl = p[1] + 2.0 * p[2] * u
            h = np.sqrt(1.0 + sl * sl)
            sg = -1.0 if e == 0 else 1.0
            tr = sg * (ur - sl * uc) / h
            tc = sg * (uc + sl * ur) / h
            ext[k, e] = extension(
                img,
                lab,
                k,
                cr + u * ur - v * uc,
                cc + u * uc + v * ur,
                tr,
                tc,
                ra,
                rb,
                ca,
                cb,
                noise,
                window,
                gap,
                max_steps,
            )
    return out, ext
