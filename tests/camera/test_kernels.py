"""Each numba stage against the plain numpy/scipy/sklearn reference."""

from __future__ import annotations

import numpy as np
import pytest
from camera_framegen import Gen
from cygno_online.analyzers.camera import kernels as kn
from cygno_online.analyzers.camera import reference as kref
from cygno_online.analyzers.camera.pedestals import threshold_map

ACC = (40, 480, 8, 500)


@pytest.fixture(scope="module")
def gen() -> Gen:
    return Gen((512, 512), seed=3)


@pytest.fixture(scope="module")
def frame(gen):
    raw, _objs = gen.frame(n_fe=4, n_alpha=1, n_muon=1)
    raw = raw.copy()
    raw[100, 100:110] = 6000  # some clipped pixels
    raw[200, 300] = 65535
    return raw


def test_threshold_cut_is_the_exact_boundary(gen):
    rng = np.random.default_rng(1)
    mean = gen.mean + rng.uniform(-0.5, 0.5, gen.mean.shape).astype(np.float32)
    thr = threshold_map(gen.sigma, 1.3)
    cut = kn.threshold_cut(mean, thr)
    c = cut.astype(np.float32)
    assert np.all(c - mean > thr)
    assert np.all(~((c - 1) - mean > thr) | (cut == 0))


def test_zero_suppress_matches_reference(gen, frame):
    thr = threshold_map(gen.sigma, 1.3)
    cut = kn.threshold_cut(gen.mean, thr)
    z = kn.zero_suppress(frame, gen.mean, cut, 5000, *ACC)
    ref = kref.zero_suppress(frame, gen.mean, thr, 5000, ACC)
    np.testing.assert_array_equal(z, ref)
    assert z[:40].sum() == 0 and z[:, 500:].sum() == 0
    assert z[100, 100:110].sum() == 0
    assert np.count_nonzero(z) > 1000


def test_median2x2_matches_scipy():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 4, (37, 53)).astype(np.float32)
    z[rng.random(z.shape) < 0.5] = 0
    np.testing.assert_array_equal(kn.median2x2(z), kref.median2x2(z))
    # the convention, spelled out on a hand example: upper median of 4
    a = np.array([[1, 2], [3, 4]], np.float32)
    assert kn.median2x2(a)[1, 1] == 3
    assert kn.median2x2(a)[0, 0] == 1


@pytest.mark.parametrize("factor", [2, 4, 5])
def test_rebin_matches_reshape_mean(factor):
    rng = np.random.default_rng(factor)
    z = rng.random((63, 81)).astype(np.float32)
    np.testing.assert_array_equal(kn.rebin_mean(z, factor), kref.rebin_mean(z, factor))


def test_fused_frame_pass_equals_stages(gen, frame):
    thr = threshold_map(gen.sigma, 1.3)
    cut = kn.threshold_cut(gen.mean, thr)
    hot_cut = kn.threshold_cut(gen.mean, threshold_map(gen.sigma, 8.0))
    mq, hd, _, _ = kn.pass_maps(gen.mean, cut, hot_cut)
    np.testing.assert_array_equal(mq, np.rint(gen.mean).astype(np.uint16))
    np.testing.assert_array_equal(hd, np.clip(hot_cut.astype(int) - cut, 0, 255))
    hot = np.zeros(frame.shape, np.uint8)
    rb = np.empty((128, 128))
    zrows = np.empty((5, 512), np.uint16)
    hot_rows = np.zeros(512, np.int32)
    stats = kn.frame_pass(frame, mq, cut, hd, hot, hot_rows, 5000, *ACC, 4, 3, rb, zrows)
    z = kref.zero_suppress(frame, gen.mean, thr, 5000, ACC)
    np.testing.assert_array_equal(rb, kref.rebin_mean(kref.median2x2(z), 4))
    keep = (frame < 5000) & (frame.astype(np.float32) - gen.mean > thr)
    keep &= kref.acceptance_mask(frame.shape, ACC)
    assert stats[kn.S_N_ZS] == np.count_nonzero(keep)
    ref = kref.frame_stats(frame, gen.mean)
    n = frame.size
    assert stats[kn.S_RAW_SUM] / n == pytest.approx(ref["raw_mean"], rel=1e-12)
    raw_rms = np.sqrt(stats[kn.S_RAW_SUMSQ] / n - (stats[kn.S_RAW_SUM] / n) ** 2)
    assert raw_rms == pytest.approx(ref["raw_rms"], rel=1e-9)
    from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain
    from cygno_online.analyzers.camera.pedestals import PedestalMaps

    ch = FrameChain(CameraConfig(), frame.shape, "cam0")
    ch.set_pedestal(PedestalMaps("cam0", gen.mean, gen.sigma, 1, 0, 0))
    ped_mean, ped_rms = ch.ped_moments(stats, n)
    assert ped_mean == pytest.approx(ref["ped_mean"], rel=1e-6, abs=1e-6)
    # integer pedestal corrected for its rounding: equal to ~1e-3 ADU
    assert ped_rms == pytest.approx(ref["ped_rms"], abs=2e-3)
    assert stats[kn.S_N_CLIPPED] == np.count_nonzero(frame >= 5000)
    over = frame >= hot_cut
    assert stats[kn.S_N_HOT_OVER] == np.count_nonzero(over)
    np.testing.assert_array_equal(hot, over.astype(np.uint8))


@pytest.mark.parametrize(
    ("clip", "factor", "acc"),
    [(65536, 4, ACC), (5000, 2, (0, 512, 0, 512)), (300, 5, (7, 500, 0, 512)), (1, 4, ACC)],
)
def test_frame_pass_paths_equal_stages(gen, frame, clip, factor, acc):
    """The narrow-lane frame pass against the stages: a clip above every
    uint16 (nothing clipped, int32 column sums), no acceptance cut, a low
    clip with an odd rebin, a clip that keeps nothing; bright pixels put
    chunks on the int64 path (6000, 65535 in the frame), so that path is
    covered too; the fused box sums are the exact integer sums; a row with a
    cut offset above 255 takes the uint16 cut map and gives the same, and so
    do the rows on the packed one-byte map (kn.packed_maps)."""
    f = frame.copy()
    f[300, :] = 3000  # a whole chunk of values >= 2048
    sigma = gen.sigma.copy()
    sigma[301, 7] = 400.0  # a cut 520 ADU over the mean: row 301 streams the uint16 cut
    thr = threshold_map(sigma, 1.3)
    cut = kn.threshold_cut(gen.mean, thr)
    hot_cut = kn.threshold_cut(gen.mean, threshold_map(gen.sigma, 8.0))
    mq, hd, _, _ = kn.pass_maps(gen.mean, cut, hot_cut)
    hot = np.zeros(f.shape, np.uint8)
    rb = np.empty((512 // factor, 512 // factor))
    zrows = np.empty((factor + 1, 512), np.uint16)
    hot_rows = np.zeros(512, np.int32)
    # boxes (the row is summed in segments cut at every box edge): one over
    # the whole row, one at the edge, overlapping ones, one past the frame
    # (clamped), one empty
    boxes = np.array(
        [
            [0, 100, 0, 100],
            [200, 456, 128, 384],
            [90, 120, 50, 60],
            [10, 20, 0, 512],
            [95, 130, 55, 700],
            [5, 6, 40, 40],
        ]
    )
    box_q = np.array([mq[b0:b1, b2:b3].sum(dtype=np.int64) for b0, b1, b2, b3 in boxes])
    bsum = np.full((len(boxes), 4), np.nan)
    cut_off, wide = kn.cut_offsets(cut, mq)
    assert np.flatnonzero(wide).tolist() == [301]

    no_pack = (np.zeros((0, 0), np.uint8), np.zeros(0, np.uint16), np.zeros(512, np.bool_))

    def run(rb_out, wide_rows, hot_counts, hot_row_counts, box_out, pack=no_pack):
        return kn.frame_pass_boxes(
            f,
            mq,
            cut,
            hd,
            hot_counts,
            hot_row_counts,
            clip,
            *acc,
            factor,
            3,
            rb_out,
            zrows,
            int(mq.sum(dtype=np.int64)),
            boxes,
            box_q,
            box_out,
            cut_off,
            wide_rows,
            kn.row_min_u8(hd),
            *pack,
        )

    s = run(rb, wide, hot, hot_rows, bsum)
    # the same with the rows that fit on the packed map (not row 301)
    pack = kn.packed_maps(mq, cut_off, wide)
    assert 0 < np.count_nonzero(pack[2]) < 512 and not pack[2][301]
    rbp = np.empty_like(rb)
    hotp, hot_rows_p, bsum_p = np.zeros_like(hot), np.zeros_like(hot_rows), bsum * 0
    sp = run(rbp, wide, hotp, hot_rows_p, bsum_p, pack)
    np.testing.assert_array_equal(s, sp)
    np.testing.assert_array_equal(rb, rbp)
    np.testing.assert_array_equal(bsum, bsum_p)
    np.testing.assert_array_equal(hot, hotp)
    np.testing.assert_array_equal(hot_rows, hot_rows_p)
    # the same with every row on the uint16 cut map
    rb16 = np.empty_like(rb)
    s16 = run(rb16, np.ones(512, np.bool_), np.zeros_like(hot), np.zeros_like(hot_rows), bsum * 0)
    np.testing.assert_array_equal(s, s16)
    np.testing.assert_array_equal(rb, rb16)
    if factor & (factor - 1) == 0:
        # the chain's float32 map for a power-of-two area: the same values
        rb32 = np.empty(rb.shape, np.float32)
        run(rb32, wide, np.zeros_like(hot), np.zeros_like(hot_rows), bsum * 0)
        np.testing.assert_array_equal(rb32, rb)
    z = kref.zero_suppress(f, gen.mean, thr, clip, acc)
    np.testing.assert_array_equal(rb, kref.rebin_mean(kref.median2x2(z), factor))
    assert s[kn.S_N_ZS] == np.count_nonzero(
        (f < clip) & (f.astype(np.float32) - gen.mean > thr) & kref.acceptance_mask(f.shape, acc)
    )
    assert s[kn.S_N_CLIPPED] == np.count_nonzero(f >= clip)
    r = f.astype(np.int64)
    e = r - mq
    assert s[kn.S_RAW_SUM] == r.sum() and s[kn.S_RAW_SUMSQ] == (r * r).sum()
    assert s[kn.S_PED_SUM] == e.sum() and s[kn.S_PED_SUMSQ] == (e * e).sum()
    assert s[kn.S_N_HOT_OVER] == np.count_nonzero(f >= hot_cut)
    for k, (b0, b1, b2, b3) in enumerate(boxes):
        rb_, eb = r[b0:b1, b2:b3], e[b0:b1, b2:b3]
        assert bsum[k].tolist() == [rb_.sum(), (rb_ * rb_).sum(), eb.sum(), (eb * eb).sum()]


def test_hot_counter_counts_consecutive_frames(gen):
    thr = threshold_map(gen.sigma, 1.3)
    cut = kn.threshold_cut(gen.mean, thr)
    hot_cut = kn.threshold_cut(gen.mean, threshold_map(gen.sigma, 10.0))
    mq, hd, _, _ = kn.pass_maps(gen.mean, cut, hot_cut)
    hot = np.zeros(gen.shape, np.uint8)
    rb = np.empty((128, 128))
    zrows = np.empty((5, 512), np.uint16)
    hot_rows = np.zeros(512, np.int32)
    n_hot = []
    for k in range(5):
        f = gen.pedestal_frame()
        f[10, 20] = 400  # stuck pixel
        if k != 2:
            f[30, 40] = 400  # flickering pixel: the run of consecutive frames restarts
        s = kn.frame_pass(f, mq, cut, hd, hot, hot_rows, 5000, *ACC, 4, 3, rb, zrows)
        n_hot.append(s[kn.S_N_HOT])
    assert hot[10, 20] == 5 and hot[30, 40] == 2
    assert n_hot == [0, 0, 1, 1, 1]


def test_box_stats_match_reference(gen, frame):
    boxes = np.array([[0, 100, 0, 100], [200, 456, 128, 384], [400, 512, 400, 512]])
    # raw statistics of a frame without pedestal (with one, the frame pass
    # sums the boxes: test_frame_pass_paths_equal_stages)
    b = kn.box_stats(frame, boxes)
    n = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    mean = b[:, 0] / n
    rms = np.sqrt(b[:, 1] / n - mean**2)
    ref = kref.box_stats(frame, None, boxes)
    np.testing.assert_allclose(mean, ref[:, 0], rtol=1e-12)
    np.testing.assert_allclose(rms, ref[:, 1], rtol=1e-9)
    r = frame.astype(np.int64)
    assert b[:, 0].tolist() == [r[b0:b1, b2:b3].sum() for b0, b1, b2, b3 in boxes]


def _rebinned(gen, frame):
    thr = threshold_map(gen.sigma, 1.3)
    z = kref.zero_suppress(frame, gen.mean, thr, 5000, ACC)
    return kref.rebin_mean(kref.median2x2(z), 4), thr


def test_neighbour_filter_matches_reference(gen, frame):
    rb, _ = _rebinned(gen, frame)
    for nb, mc in [(1.2, 3), (0.5, 2), (3.0, 5)]:
        out = kn.neighbour_filter(rb, nb, mc)
        np.testing.assert_array_equal(out, kref.neighbour_filter(rb, nb, mc))
    assert np.count_nonzero(kn.neighbour_filter(rb, 1.2, 3)) < np.count_nonzero(rb)
    for line_min in (np.inf, 2.5, 0.5):
        out = kn.neighbour_filter(rb, 1.2, 3, line_min)
        np.testing.assert_array_equal(out, kref.neighbour_filter(rb, 1.2, 3, line_min))
        pr, pc, n = kn.filtered_points(rb, 1.2, 3, 10**6, line_min)
        er, ec = np.nonzero(out)
        assert n == er.size
        np.testing.assert_array_equal(pr, er)
        # the chain's float32 map (factor 4): the same points
        pr32, pc32, n32 = kn.filtered_points(rb.astype(np.float32), 1.2, 3, 10**6, line_min)
        assert n32 == n
        np.testing.assert_array_equal(pr32, pr)
        np.testing.assert_array_equal(pc32, pc)
        np.testing.assert_array_equal(pc, ec)
    # rows without light (skipped by the filter) between and next to lit
    # ones: the lit rows' windows still see them as zeros
    sparse = rb.copy()
    sparse[::2] = 0.0
    sparse[:5] = 0.0
    sparse[-3:] = 0.0
    for line_min in (np.inf, 0.5):
        np.testing.assert_array_equal(
            kn.neighbour_filter(sparse, 0.5, 2, line_min),
            kref.neighbour_filter(sparse, 0.5, 2, line_min),
        )
        pr, pc, n = kn.filtered_points(sparse.astype(np.float32), 0.5, 2, 10**6, line_min)
        er, ec = np.nonzero(kref.neighbour_filter(sparse, 0.5, 2, line_min))
        assert n == er.size > 0
        np.testing.assert_array_equal(pr, er)
        np.testing.assert_array_equal(pc, ec)
    # the line rule keeps more than the plain filter on noise at 0.5 ADU
    assert np.count_nonzero(kn.neighbour_filter(rb, 1.2, 3, 0.5)) > np.count_nonzero(
        kn.neighbour_filter(rb, 1.2, 3)
    )


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_line_rule_keeps_a_faint_line_one_pixel_wide(impl):
    # A line of 3 ADU one rebinned pixel wide: each pixel has 2 lit
    # neighbours of 8 (mean 0.75 < 1.2), so the plain filter drops it all.
    filt = kn.neighbour_filter if impl == "numba" else kref.neighbour_filter
    r = np.arange(12, 30)
    lines = [  # (rows, cols) of a line; the map's edge is a valid place
        (np.full(27, 5), np.arange(3, 30)),  # row
        (np.arange(8, 35), np.full(27, 37)),  # column
        (r, r - 10),  # diagonal
        (r, 46 - r),  # anti-diagonal
        (np.arange(10, 30), np.zeros(20, int)),  # on the map's first column
        (np.zeros(10, int), np.arange(10, 20)),  # on the map's first row
        (np.full(10, 39), np.arange(30, 40)),  # last row, to the last column
    ]
    for rr, cc in lines:
        rb = np.zeros((40, 40))
        rb[rr, cc] = 3.0
        assert not filt(rb, 1.2, 3).any()
        out = filt(rb, 1.2, 3, 2.5)
        # every pixel but the two ends (one lit neighbour only)
        assert (out[rr[1:-1], cc[1:-1]] == 3.0).all()
        assert out[rr[0], cc[0]] == 0 and out[rr[-1], cc[-1]] == 0
        assert np.count_nonzero(out) == rr.size - 2
        # too faint for line_min 2.5
        assert not filt(rb / 3.0 * 2.4, 1.2, 3, 2.5).any()
        np.testing.assert_array_equal(filt(rb, 1.2, 3, np.inf), filt(rb, 1.2, 3))
    # two lit neighbours at a corner (not opposite) are not a line
    corner = np.zeros((9, 9))
    corner[4, 4] = corner[3, 4] = corner[4, 5] = 3.0
    assert not filt(corner, 1.2, 3, 2.5).any()


def test_nonzero_points_row_major(gen, frame):
    rb, _ = _rebinned(gen, frame)
    pr, pc = kn.nonzero_points(rb)
    er, ec = np.nonzero(rb)
    np.testing.assert_array_equal(pr, er)
    np.testing.assert_array_equal(pc, ec)


def owner_map(prow, pcol, labels, nrows, ncols, margin):
    """The integration region on fresh work maps: the owner map (int32, -1
    = no cluster) and the region's block indices."""
    owner = np.full((nrows, ncols), -1, np.int32)
    own = np.zeros((nrows, ncols), np.bool_)
    blocks = np.empty(kn.region_room(prow.shape[0], margin), np.int64)
    n = kn.integration_region(prow, pcol, labels, margin, owner, own, blocks)
    return owner, blocks[:n]


@pytest.mark.parametrize("margin", [0, 1, 3])
def test_cluster_features_match_reference(gen, frame, margin):
    rb, thr = _rebinned(gen, frame)
    rbf = kref.neighbour_filter(rb, 1.2, 3)
    pr, pc, labels = kref.cluster_map(rbf, 2, 10)
    ncl = labels.max() + 1
    assert ncl >= 4
    cut = kn.threshold_cut(gen.mean, thr)
    own, blocks = owner_map(pr, pc, labels, 128, 128, margin)
    np.testing.assert_array_equal(own, kref.owner_map(pr, pc, labels, 128, 128, margin))
    # the block list is the region, each block once
    assert sorted(blocks.tolist()) == np.flatnonzero(own.ravel() >= 0).tolist()
    f = kn.cluster_features(frame, gen.mean, cut, 5000, *ACC, 4, pr, pc, labels, ncl, own, blocks)
    # the persistent work maps are clean again after clear_region
    owner = np.full((128, 128), -1, np.int32)
    own_b = np.zeros((128, 128), np.bool_)
    room = np.empty(kn.region_room(pr.size, margin), np.int64)
    n = kn.integration_region(pr, pc, labels, margin, owner, own_b, room)
    np.testing.assert_array_equal(owner, own)
    kn.clear_region(owner, own_b, room, n)
    assert (owner == -1).all() and not own_b.any()
    ref = kref.cluster_features(frame, gen.mean, thr, 5000, ACC, 4, pr, pc, labels, margin)
    exact = [
        kn.F_SIZE,
        kn.F_NHITS,
        kn.F_NBLOCKS,
        kn.F_ROW_MIN,
        kn.F_ROW_MAX,
        kn.F_COL_MIN,
        kn.F_COL_MAX,
    ]
    np.testing.assert_array_equal(f[:, exact], ref[:, exact])
    close = [
        kn.F_INTEGRAL,
        kn.F_ROW,
        kn.F_COL,
        kn.F_RMS,
        kn.F_DENSITY,
        kn.F_MAX,
        kn.F_SIGMA_LONG,
        kn.F_SIGMA_LAT,
    ]
    np.testing.assert_allclose(f[:, close], ref[:, close], rtol=1e-6, atol=1e-6)
    # axis-dependent quantities only where the axis is well defined
    aniso = ref[:, kn.F_SIGMA_LONG] > 1.05 * ref[:, kn.F_SIGMA_LAT]
    assert aniso.sum() >= 2
    np.testing.assert_allclose(
        f[aniso][:, [kn.F_LENGTH, kn.F_WIDTH, kn.F_SLIMNESS]],
        ref[aniso][:, [kn.F_LENGTH, kn.F_WIDTH, kn.F_SLIMNESS]],
        rtol=1e-6,
        atol=1e-6,
    )
    dang = (f[aniso, kn.F_ANGLE] - ref[aniso, kn.F_ANGLE] + 90.0) % 180.0 - 90.0
    np.testing.assert_allclose(dang, 0.0, atol=1e-6)


def test_features_on_a_known_line():
    # a horizontal bar of constant value on zero pedestal: exact geometry
    raw = np.zeros((64, 64), np.uint16)
    raw[30:32, 10:50] = 50
    raw[33, 30] = 5  # below the cut, in the margin block: integral only
    raw[60, 60] = 7  # far away: nowhere
    mean = np.zeros(raw.shape, np.float32)
    cut = np.full(raw.shape, 10, np.uint16)
    rb = kn.rebin_mean(kn.zero_suppress(raw, mean, cut, 5000, 0, 64, 0, 64), 4)
    pr, pc = kn.nonzero_points(rb)
    labels = kn.dbscan(pr, pc, 2.0, 3)
    own, blocks = owner_map(pr, pc, labels, 16, 16, 1)
    f = kn.cluster_features(raw, mean, cut, 5000, 0, 64, 0, 64, 4, pr, pc, labels, 1, own, blocks)
    f = f[0]
    # a bright pixel next to the footprint counts in the integral (margin 1)
    # but not as a hit of the cluster
    assert f[kn.F_INTEGRAL] == 50 * 80 + 5 and f[kn.F_NHITS] == 80
    assert f[kn.F_LENGTH] == pytest.approx(40.0) and f[kn.F_WIDTH] == pytest.approx(2.0)
    assert f[kn.F_ANGLE] == pytest.approx(0.0, abs=1e-9)
    assert (f[kn.F_ROW], f[kn.F_COL]) == pytest.approx((30.5, 29.5))
    assert f[kn.F_RMS] == 0 and f[kn.F_DENSITY] == (4000 + 5) / 80
    assert (f[kn.F_ROW_MIN], f[kn.F_ROW_MAX], f[kn.F_COL_MIN], f[kn.F_COL_MAX]) == (28, 32, 8, 52)


def test_pedestal_accumulate_matches_numpy(gen):
    frames = np.stack([gen.pedestal_frame() for _ in range(7)])
    shift = frames[0].copy()
    s1 = np.zeros(gen.shape, np.int64)
    s2 = np.zeros(gen.shape, np.int64)
    for f in frames:
        kn.pedestal_accumulate(f, shift, s1, s2)
    d = frames.astype(np.int64) - shift
    np.testing.assert_array_equal(s1, d.sum(axis=0))
    np.testing.assert_array_equal(s2, (d * d).sum(axis=0))


def test_pedestal_estimate_is_robust(gen):
    frames = np.stack([gen.pedestal_frame() for _ in range(15)])
    frames[3, 100:110, 100:110] += 500  # a track in one frame
    mean, sigma = kn.pedestal_estimate(frames, 3.0, 3.0)
    assert np.abs(mean[100:110, 100:110] - gen.mean[100:110, 100:110]).max() < 4 * 2.5
    assert abs(np.median(mean - gen.mean)) < 0.2
    assert np.median(sigma / gen.sigma) == pytest.approx(1.0, abs=0.15)


def test_classify_matches_the_cuts_row_by_row():
    """The numba classification against the cuts written out in numpy, on
    random rows around every boundary (and NaN features: no class)."""
    from cygno_online.analyzers.camera.classify import (
        ALPHA,
        FE55,
        MUON,
        OTHER,
        ClassCuts,
        classify,
    )

    cuts = ClassCuts()
    rng = np.random.default_rng(4)
    f = np.zeros((4000, kn.NFEATURES))
    f[:, kn.F_INTEGRAL] = rng.uniform(0, 3e4, len(f))
    f[:, kn.F_LENGTH] = rng.uniform(0, 400, len(f))
    f[:, kn.F_SLIMNESS] = rng.uniform(0, 1, len(f))
    f[:, kn.F_RMS] = rng.uniform(0, 10, len(f))
    f[:, kn.F_DENSITY] = rng.uniform(0, 50, len(f))
    f[:5] = np.nan
    integral, length, slim = f[:, kn.F_INTEGRAL], f[:, kn.F_LENGTH], f[:, kn.F_SLIMNESS]
    alpha = (f[:, kn.F_DENSITY] >= cuts.alpha_density_min) & (length >= cuts.alpha_length_min_px)
    muon = (length >= cuts.muon_length_min_px) & (slim <= cuts.muon_slimness_max)
    fe55 = (
        (integral > cuts.fe55_integral_min)
        & (integral < cuts.fe55_integral_max)
        & (f[:, kn.F_RMS] > cuts.fe55_rms_min)
        & (length * cuts.pixel_mm < cuts.fe55_length_max_mm)
        & (slim >= cuts.fe55_slimness_min)
    )
    want = np.where(alpha, ALPHA, np.where(muon, MUON, np.where(fe55, FE55, OTHER)))
    got = classify(f, cuts)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    assert {ALPHA, MUON, FE55, OTHER} <= set(got.tolist())
    assert (got[:5] == OTHER).all()


def test_noise_filter_thresholds_at_the_float32_boundary():
    # A float32 map compares with the thresholds rounded up to float32: a
    # window summing to exactly 9.5625 fails a threshold a hair above it
    # (float32 nearest rounding would let it pass) and passes at it.
    rb = np.zeros((5, 5))
    rb[1:4, 1:4] = 9.5625 / 8  # exact in float32
    rb[2, 2] = 1.0  # its 8 neighbours sum to exactly 9.5625
    for nb in (9.5625 / 8, (9.5625 + 1e-9) / 8, (9.5625 - 1e-9) / 8):
        for line_min in (np.inf, 1.0 + 1e-9, 1.0):
            want = kn.filtered_points(rb, nb, 3, 100, line_min)
            got = kn.filtered_points(rb.astype(np.float32), nb, 3, 100, line_min)
            assert got[2] == want[2]
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])

    # the centre's 8 neighbours sum to 9.5625: kept at the threshold, not above
    def kept(nb):
        pr, pc, _ = kn.filtered_points(rb.astype(np.float32), nb, 3, 100)
        return set(zip(pr.tolist(), pc.tolist(), strict=True))

    assert (2, 2) in kept(9.5625 / 8)
    assert (2, 2) not in kept((9.5625 + 1e-9) / 8)


def test_row_segments_cover_the_row_and_the_boxes():
    boxes = np.array([[0, 1, 0, 2600], [0, 1, 100, 356], [0, 1, 2500, 9000], [0, 1, 7, 7]])
    edges, ranges = kn.segment_edges(3000, boxes)
    assert edges[0] == 0 and edges[-1] == 3000
    assert (np.diff(edges) > 0).all() and np.diff(edges).max() <= kn._CHUNK
    assert {0, 100, 356, 2500, 2600} <= set(edges.tolist())
    for (_, _, c0, c1), (k0, k1) in zip(boxes, ranges, strict=True):
        c0, c1 = min(c0, 3000), min(c1, 3000)
        assert edges[k0] == c0 and (k1 == k0 if c1 <= c0 else edges[k1] == c1)


def test_frame_pass_equals_the_stages_on_random_frames():
    """Random shapes, rebin factors 1-8, clips, acceptance rectangles, noisy
    pixels (cut offsets over 255 ADU: the uint16 cut rows), pedestals above
    2048 ADU (the int64 sums), pedestals within a few ADU (rows on the packed
    map, with and without it) and saturated pixels: statistics, rebinned
    map (float64, and float32 for a power-of-two area), over-hot count and
    box sums equal the stages and plain numpy exactly."""
    rng = np.random.default_rng(7)
    for trial in range(30):
        rows, cols = int(rng.integers(9, 140)), int(rng.integers(9, 1400))
        factor = int(rng.choice([1, 2, 3, 4, 5, 8]))
        mean = rng.uniform(50, 3000 if trial % 5 == 0 else 200, (rows, cols)).astype(np.float32)
        sigma = rng.uniform(1, 40 if trial % 7 == 0 else 5, (rows, cols)).astype(np.float32)
        bright = (rng.random((rows, cols)) < 0.02) * rng.uniform(0, 65535, (rows, cols))
        noise = rng.normal(0, 1, (rows, cols)) * sigma * 3
        raw = np.clip(mean + noise + bright, 0, 65535).astype(np.uint16)
        if trial % 3 == 1:
            # a pedestal within 13 ADU: rows on the packed map (the same draws)
            mean = (95 + mean % 13).astype(np.float32)
            raw = np.clip(mean + noise + bright, 0, 65535).astype(np.uint16)
        clip = int(rng.choice([1, 300, 5000, 65536]))
        r0 = int(rng.integers(0, rows))
        c0 = int(rng.integers(0, cols))
        acc = (r0, int(rng.integers(r0 + 1, rows + 5)), c0, int(rng.integers(c0 + 1, cols + 5)))
        thr = threshold_map(sigma, 1.3)
        cut = kn.threshold_cut(mean, thr)
        hot_cut = kn.threshold_cut(mean, threshold_map(sigma, 8.0))
        mq, hd, _, _ = kn.pass_maps(mean, cut, hot_cut)
        cut_off, wide = kn.cut_offsets(cut, mq)
        boxes = np.array([[0, rows // 2, 0, cols // 2], [rows // 3, rows, cols // 4, cols + 10]])
        box_q = np.array([mq[a:b, c:d].sum(dtype=np.int64) for a, b, c, d in boxes])
        want = kref.rebin_mean(
            kref.median2x2(kref.zero_suppress(raw, mean, thr, clip, acc)), factor
        )
        r = raw.astype(np.int64)
        e = r - mq
        # the hot margin is clamped at 255 ADU (pass_maps)
        over = np.count_nonzero((raw >= cut) & (r - cut >= hd))
        dtypes = [np.float64, np.float32] if factor & (factor - 1) == 0 else [np.float64]
        no_pack = (np.zeros((0, 0), np.uint8), np.zeros(0, np.uint16), np.zeros(rows, np.bool_))
        pack = kn.packed_maps(mq, cut_off, wide)
        if trial % 3 == 1 and trial % 7 != 0:
            assert pack[2].any(), trial
        for dt, pk in [(dt, pk) for dt in dtypes for pk in (no_pack, pack)]:
            rb = np.zeros((rows // factor, cols // factor), dt)
            bsum = np.zeros((2, 4))
            s = kn.frame_pass_boxes(
                raw,
                mq,
                cut,
                hd,
                np.zeros((rows, cols), np.uint8),
                np.zeros(rows, np.int32),
                clip,
                *acc,
                factor,
                3,
                rb,
                np.zeros((factor + 1, cols), np.uint16),
                int(mq.sum(dtype=np.int64)),
                boxes,
                box_q,
                bsum,
                cut_off,
                wide,
                kn.row_min_u8(hd),
                *pk,
            )
            case = (trial, rows, cols, factor, clip, acc, dt.__name__, int(pk[2].sum()))
            np.testing.assert_array_equal(rb, want, err_msg=str(case))
            assert s[kn.S_RAW_SUM] == r.sum() and s[kn.S_RAW_SUMSQ] == (r * r).sum(), case
            assert s[kn.S_PED_SUM] == e.sum() and s[kn.S_PED_SUMSQ] == (e * e).sum(), case
            assert s[kn.S_N_CLIPPED] == np.count_nonzero(raw >= clip), case
            assert s[kn.S_N_HOT_OVER] == over, case
            kept = (raw < clip) & (raw.astype(np.float32) - mean > thr)
            assert s[kn.S_N_ZS] == np.count_nonzero(kept & kref.acceptance_mask(raw.shape, acc))
            for k, (a, b, c, d) in enumerate(boxes):
                rr_, ee = r[a:b, c:d], e[a:b, c:d]
                want_box = [rr_.sum(), (rr_ * rr_).sum(), ee.sum(), (ee * ee).sum()]
                assert bsum[k].tolist() == want_box, case


def test_chain_counts_the_rows_of_its_map_packed_in_one_byte():
    """FrameChain.packed_rows (in the daemon's log line on installing a map):
    the rows whose mean and cut fit in one byte per pixel. The simulator's
    pedestal is flat (per-pixel spread 0.3 ADU) and packs but for the hot
    pixels' rows; a real map's spread is not known here, so the count is what
    tells the operator whether the 3-byte pass applies on the real sensor."""
    from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain
    from cygno_online.analyzers.camera.pedestals import PedestalMaps

    rng = np.random.default_rng(3)
    mean = (99.5 + 0.3 * rng.standard_normal((64, 96))).astype(np.float32)
    sigma = np.full((64, 96), 2.5, np.float32)
    fc = FrameChain(CameraConfig(), (64, 96), "cam0")
    assert fc.packed_rows == 0  # no map
    fc.set_pedestal(PedestalMaps("cam0", mean, sigma, 1, 0, 0))
    assert fc.packed_rows == 64
    # a hot pixel's high mean (row 5), a pedestal ramp of 20 ADU along rows
    # 10-19 and a noisy pixel whose cut is 16 ADU over its mean (row 30)
    spread = mean.copy()
    spread[5, 40] = 900.0
    spread[10:20] += np.linspace(0, 20, 96, dtype=np.float32)
    noisy = sigma.copy()
    noisy[30, 3] = 12.5
    fc.set_pedestal(PedestalMaps("cam0", spread, noisy, 1, 0, 0))
    assert fc.packed_rows == 64 - 12
    assert not fc.packed[2][[5, 10, 19, 30]].any()
    fc.set_pedestal(None)
    assert fc.packed_rows == 0
