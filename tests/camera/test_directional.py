"""Directional clustering: same clusters as the numpy reference, determinism,
and whole tracks on truth (simulator runs and hand-made tracks at several
angles and lengths, crossing each other, along the image edge)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from camera_framegen import Gen
from cygno_online.analyzers.camera import directional as dk
from cygno_online.analyzers.camera import kernels as kn
from cygno_online.analyzers.camera import reference as ref
from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain
from cygno_online.analyzers.camera.pedestals import PedestalMaps

from cygno_online.errors import ConfigErrors
from cygno_online.params import Params
from cygno_online.simulate.camera import Rates
from cygno_online.simulate.run import Simulator

CFG = CameraConfig()


def sim_chain(seed, size=512, cfg=CFG):
    sim = Simulator(
        f"crop:{size}", seed=seed, run=1, pmt=False, rates=Rates(muon=1.0, alpha=0.6, spark=0)
    )
    sigma = np.sqrt(sim.noise_map(0).astype(np.float64) ** 2 + 1 / 12).astype(np.float32)
    ch = FrameChain(cfg, (size, size), "cam0")
    ch.set_pedestal(PedestalMaps("cam0", sim.pedestal_map(0), sigma, 1, 1, 0))
    return sim, ch


def seeds_of(res):
    """The DBSCAN labels of a processed frame."""
    return kn.dbscan(res.prow, res.pcol, CFG.eps, CFG.min_samples)


def seeded(res):
    """The directional input: DBSCAN's and the secondary seeds (numba and
    reference must agree on those too)."""
    seeds = seeds_of(res)
    got = dk.seed_labels(res.prow, res.pcol, seeds, CFG.eps, CFG.dir_seed_min_samples)
    want = ref.seed_labels(res.prow, res.pcol, seeds, CFG.eps, CFG.dir_seed_min_samples)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    return got


def directional_checked(prow, pcol, vals, seeds, npri, atol=1e-12):
    """The numba ``directional_labels`` (CFG's parameters), checked against
    the numpy reference: identical labels, fit RMS to rtol 1e-9."""
    args = CFG.directional_args()
    got, rms = dk.directional_labels(prow, pcol, vals, seeds, npri, *args)
    want, wrms = ref.directional_labels(prow, pcol, vals, seeds, npri, *args)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(rms, wrms, rtol=1e-9, atol=atol)
    return got, rms


def config_error_paths(directional):
    """The key paths of the errors of a camera config with these
    ``directional`` keys (it must have some)."""
    bad = Params({"directional": directional}, "analyzers[0].params")
    CameraConfig.from_params(bad)
    with pytest.raises(ConfigErrors) as ei:
        bad.finish()
    return {e.path for e in ei.value.errors}


@pytest.fixture(scope="module")
def sim_frames():
    sim, ch = sim_chain(2)
    out = []
    for s in range(30):
        trig = sim.trigger(s)
        res = ch.process(trig.images[0], run=1, serial=s, time_ns=0, source="store")
        res.rebinned = res.rebinned.copy()  # the chain's buffer, reused per frame
        out.append((trig, res))
    return out


def extended_checked(res, vals, labels, rms, cfg=CFG):
    """``directional.extended_track_lengths`` of a processed frame (its
    rebinned map, the frame's background spread), checked against the numpy
    reference: the same steps past every end."""
    shape = (res.rebinned.shape[0] * cfg.rebin, res.rebinned.shape[1] * cfg.rebin)
    region = cfg.extension_region(shape)
    sig = dk.background_sigma(res.rebinned, res.prow, res.pcol, *region)
    assert sig == pytest.approx(
        ref.background_sigma(res.rebinned, res.prow, res.pcol, *region), rel=1e-9
    )
    lab = np.full(res.rebinned.shape, -1, np.int32)
    lab[res.prow, res.pcol] = labels
    args = (res.prow, res.pcol, vals, labels, rms, *cfg.length_args())
    tl, ext = dk.extended_track_lengths(*args, res.rebinned, lab, *region, *cfg.extension_args(sig))
    noise, window, gap, _ = cfg.extension_args(sig)
    want = ref.track_extensions(
        *args[:2], *args[3:], res.rebinned.astype(np.float64), lab, region, noise, window, gap
    )
    np.testing.assert_array_equal(ext, want)
    return tl, ext


def test_same_clusters_as_the_numpy_reference(sim_frames):
    n_tracks = 0
    n_extended = 0
    for _, res in sim_frames + sim_frames_of(7, copy=True):
        seeds, npri = seeded(res)
        vals = res.rebinned[res.prow, res.pcol]
        got, rms = directional_checked(res.prow, res.pcol, vals, seeds, npri)
        np.testing.assert_array_equal(got, res.labels)
        n_tracks += int(np.count_nonzero(rms > 0))
        # the track length along the fit, numba and numpy
        tl = dk.track_lengths(res.prow, res.pcol, vals, got, rms, *CFG.length_args())
        wtl = ref.track_lengths(res.prow, res.pcol, vals, got, rms, *CFG.length_args())
        np.testing.assert_allclose(tl, wtl, rtol=1e-9, atol=1e-9)
        assert ((tl > 0) == (rms > 0)).all()
        # and its extension past the last points (the same steps)
        tl2, ext = extended_checked(res, vals, got, rms)
        np.testing.assert_array_equal(tl2, tl)
        n_extended += int(np.count_nonzero(ext))
        fitted = rms > 0
        np.testing.assert_allclose(
            res.clusters.features[fitted, kn.F_TRACK_LENGTH],
            (tl + ext.sum(axis=1))[fitted] * CFG.rebin,
        )
    assert n_tracks >= 80
    # (few ends of these 512 crops lack points: 1 extended end)
    assert n_extended >= 1


def test_deterministic_and_switchable(sim_frames):
    args = CFG.directional_args()
    _, res = sim_frames[3]
    seeds, npri = seeded(res)
    vals = res.rebinned[res.prow, res.pcol]
    a = dk.directional_labels(res.prow, res.pcol, vals, seeds, npri, *args)
    b = dk.directional_labels(
        res.prow.copy(), res.pcol.copy(), vals.copy(), seeds.copy(), npri, *args
    )
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    # switched off: exactly DBSCAN's clusters, fit_rms 0
    off = CameraConfig(dir_enabled=False)
    trig = sim_frames[3][0]
    _, ch = sim_chain(2, cfg=off)
    r2 = ch.process(trig.images[0], run=1, serial=3, time_ns=0, source="store")
    np.testing.assert_array_equal(r2.labels, seeds_of(res))
    assert (r2.clusters.column("fit_rms") == 0).all()
    assert (res.clusters.column("fit_rms") > 0).any()


def _path_dist(o, r, c):
    th = math.radians(o.angle_deg)
    ur, uc = math.sin(th), math.cos(th)
    dr, dc = r - o.center[0], c - o.center[1]
    if o.kind == "fe55":
        return np.hypot(dr, dc)
    u, v = dr * ur + dc * uc, -dr * uc + dc * ur
    return np.hypot(np.clip(np.abs(u) - o.length / 2, 0, None), v)


def visible_length(o, rows):
    """Length of the straight path of ``o`` inside the rows ``[r0, r1)`` that
    the chain analyses (outside the acceptance the pixels are never read)."""
    r0, r1 = rows
    sr = math.sin(math.radians(o.angle_deg))
    a, b = -o.length / 2, o.length / 2
    if abs(sr) > 1e-9:
        t0, t1 = sorted(((r0 - o.center[0]) / sr, (r1 - o.center[0]) / sr))
        a, b = max(a, t0), min(b, t1)
    elif not r0 <= o.center[0] < r1:
        return 0.0
    return max(b - a, 0.0)


def whole_tracks(frames, kind, factor=4, rows=None):
    """(tracks, one cluster, one cluster with track_length within 10 %):
    a track is one cluster when one cluster holds >= 90 % of the clustered
    points near its path (points also near another injected object, e.g.
    where tracks cross, are left out: they belong to either). With ``rows``
    (an acceptance band) the truth length is the part inside it, and tracks
    with less than 50 px or (alphas) half their length inside are left out."""
    total = one = good = 0
    for trig, res in frames:
        objs = [o for o in trig.truth.objects if o.kind != "spark"]
        pr = res.prow * factor + factor / 2
        pc = res.pcol * factor + factor / 2
        near = [
            _path_dist(o, pr, pc)
            < 3 * o.sigma + factor + (0.04 * o.length if o.kind == "alpha" else 0)
            for o in objs
        ]
        for i, o in enumerate(objs):
            if o.kind != kind:
                continue
            others = np.zeros(pr.size, bool)
            for j, m in enumerate(near):
                if j != i:
                    others |= m
            mine = near[i] & ~others & (res.labels >= 0)
            truth = o.length if rows is None else visible_length(o, rows)
            if truth < 50 or (kind == "alpha" and truth < 0.5 * o.length):
                continue
            if mine.sum() < 5:
                continue
            total += 1
            cnt = np.bincount(res.labels[mine])
            k = int(np.argmax(cnt))
            if cnt[k] >= 0.9 * mine.sum():
                one += 1
                length = res.clusters.features[k, kn.F_TRACK_LENGTH]
                good += abs(length - truth) <= 0.1 * truth
    return total, one, good


def sim_frames_of(seed, n=30, size=512, copy=False):
    sim, ch = sim_chain(seed, size)
    out = []
    for s in range(n):
        trig = sim.trigger(s)
        res = ch.process(trig.images[0], run=1, serial=s, time_ns=0, source="store")
        if copy:
            res.rebinned = res.rebinned.copy()  # the chain's buffer, reused per frame
        out.append((trig, res))
    return out


def test_simulated_muons_and_alphas_are_whole(sim_frames):
    # The truth length is the whole injected track: the simulator draws a
    # muon from image border to image border and keeps an alpha (plus 3
    # sigma) inside the image, and a crop has no acceptance cut, so all of
    # it is in the image. Measured on seed 2 (30 frames of 512x512, muon
    # rate 1, alpha 0.6 per frame: ~40x the LIME density of tracks):
    # alphas 16/16 whole (15/16 before tracks shared their points,
    # `directional._share`: an alpha starting on another alpha had the
    # overlap counted to it, +13 %); muons 28/29 one cluster and with
    # track_length within 10 % (the miss: frame 19, a 378 px muon among
    # five other tracks). Requirement (95 % each) on more seeds: below.
    t, one, good = whole_tracks(sim_frames, "alpha")
    assert t >= 12 and one == t and good == t, (t, one, good)
    t, one, good = whole_tracks(sim_frames, "muon")
    assert t >= 25 and one / t >= 0.95 and good / t >= 0.95, (t, one, good)
    # DBSCAN alone: a muon is almost never one cluster
    _, ch = sim_chain(2, cfg=CameraConfig(dir_enabled=False))
    plain = [
        (trig, ch.process(trig.images[0], run=1, serial=s, time_ns=0, source="store"))
        for s, (trig, _) in enumerate(sim_frames)
    ]
    t0, _, good0 = whole_tracks(plain, "muon")
    assert good0 / t0 < 0.2


@pytest.mark.slow
def test_simulated_tracks_on_more_seeds(sim_frames):
    # Seeds 2, 7, 11 (90 frames of 512x512): alphas 46/46 one cluster and
    # with the length within 10 % (44/46 before the crossing work:
    # `directional._share`, `_band`, `_dense_ends`); muons 78/78 one
    # cluster, 76/78 (97.4 %) with the length (the same before; 74/77
    # before the noise filter's line rule). The misses: muons crossing
    # other tracks.
    # (The same with the points' light in the growth, `directional._alike`,
    # `_absorb_halo`.) With the last sharing's bands counting only up to
    # grow_radius past their tracks' ends (`directional._share`'s reach):
    # muons 77/78.
    frames = sim_frames + sim_frames_of(7) + sim_frames_of(11)
    assert whole_tracks(frames, "alpha") == (46, 46, 46)
    assert whole_tracks(frames, "muon") == (78, 78, 77)
    # Seeds 13, 17, 23: muons 105/109 (96.3 %; 101/109 before the crossing
    # work: `directional._share`, `_band`, `_dense_ends`; 96/104 before the
    # noise filter's line rule), alphas 64/69 (92.8 %; 58/69 before): these
    # frames hold 3-5 tracks each and every miss is a track crossing
    # another: alphas lying on or across other alphas, muons across alphas
    # (40x LIME's density; on full LIME frames every alpha is whole, see
    # below). Requirement 95 %: met for muons, not for alphas. (The
    # clustering of main before the length/bridging work: muons 81/104,
    # alphas 53/69.) With the points' light in the growth the counts are the
    # same, 64/69 and 105/109, not the same frames: seed 23 frame 10's alpha
    # is whole now (its halo strand joins it, `directional._absorb_halo`),
    # frame 2's is not (a strand of halo of two alphas and a muon, 14 deg
    # off the alpha, of other light: it gives up only its points on the
    # alpha's reach and keeps 83 of the alpha's points).
    # With the last sharing's bands counting only up to grow_radius past
    # their tracks' ends (`directional._share`'s reach): alphas 66/69 (95.7
    # %), muons 105/109. Two alphas are whole now: seed 13 frame 6's (146
    # px; its band, continued along its end tangent, cut the extent of a
    # muon crossing that line ~40 px beyond the alpha's end, and the
    # alpha, wider, took the muon's end: 2x its length) and seed 23 frame
    # 2's (the halo strand's, above; not traced further). Muons: seed 13
    # frame 6's is whole, seed 23 frame 2's is not. The 3 misses left: three
    # alphas meeting at one point (seed 13 frame 19: one DBSCAN seed; a
    # track fitted between two of them merges them, 2 alphas) and an alpha
    # branching off another at 16 deg (seed 23 frame 4: the longer keeps the
    # overlap, the short one is 29 % short).
    # With a track's length past its last point on the map's light
    # (`directional.extension`): muons 106/109 (105 before), the rest the
    # same.
    frames = sim_frames_of(13) + sim_frames_of(17) + sim_frames_of(23)
    assert whole_tracks(frames, "alpha") == (69, 69, 66)
    assert whole_tracks(frames, "muon") == (109, 109, 106)


@pytest.mark.slow
def test_simulated_tracks_on_small_crops():
    # 256x256 crops (64x64 rebinned px), seeds 2 and 7, 40 frames each: the
    # tracks (150-360 px) of a frame lie on top of each other. Alphas 38/39
    # (37/39 before the last sharing's reach, `directional._share`; 36/39
    # before the points' light: seed 7's alpha of frame 3 is whole now, its
    # halo strand joins it). Muons 65/75 whole (87 %), 73/75 one cluster;
    # before, in the order the steps came: 57/75 (before the reach), 58/75
    # and 66 one cluster, 61 and 69 (a long thin track takes its piece out
    # of a cluster without a fit: a muon's end with 55Fe spots), 65 and 73
    # (a seed holding two crossing lines is split, `directional._one_line`;
    # the split alone: 64 and 72). The 14 misses before the split: 9 muons
    # split among the other tracks' clusters (an alpha's or a crossing
    # muon's takes an end), 4 ends lost 13-28 px short of the border (one
    # rebinned px wide at ~2 ADU: neighbour mean ~0.7, below the noise
    # filter's 1.2 ADU; not an edge effect), 1 end still with spots.
    # A thin track's point never going to a wide track beyond that one's
    # extent when tracks share points (`directional._share`, within a seed
    # and the last sharing): muons 66/75 whole,
    # 74 one cluster (65 and 73 before): seed 7 frame 35's muon along the
    # image border keeps its last 28 px, which an alpha ending beside it had
    # taken; seed 2 frame 19's is one cluster now (0.84 -> 0.92 of its
    # points), still 17 % short (an alpha's cluster holds its first 20 px
    # where a third track crosses). The 9 misses: 4 ends without points
    # (above; seed 7 frame 19's, 24 px, is 243.6 px of 272 without the 55Fe
    # spot on it, 217 with), 4 muons whose end lies in another track's light
    # (seed 2 frame 19: two along alphas; seed 2 frame 33 and seed 7 frame
    # 22: pairs of muons meeting at the image border at 28 and 14 deg, the
    # other muon's cluster holds the overlap) and a faint muon never fitted
    # (seed 2 frame 35: unfitted 10-point clusters, one with a spot, and
    # noise). Seed 7 frame 22's was 15 % long before a short piece left a
    # round cluster alone (a piece's curve reached a spot 8 px off the
    # line); it is 30 % short now, the same count.
    # A track's length past its last point, followed on the rebinned map's
    # light before the noise filter (`directional.extension`): muons 69/75
    # whole (66 before), alphas the same 38/39 (no alpha grows past its
    # truth: its halo is far below LIGHT_FRACTION of its own light). Three
    # ends without points are measured now (seed 2 frames 6, 15, 33: +24,
    # +24, +12 px). The 6 misses: seed 7 frame 19's end is measured (+24
    # px) but the 55Fe spot on the muon keeps it 11 % short (241 of 272
    # px); the 4 muons whose end lies in another track's light (seed 2
    # frame 19's two, seed 2 frame 33's and seed 7 frame 22's meeting
    # another muon at the border): the walk stops at another cluster's
    # points, that light is not the track's alone; seed 2 frame 35's
    # faint muon, never fitted.
    frames = sim_frames_of(2, n=40, size=256) + sim_frames_of(7, n=40, size=256)
    assert whole_tracks(frames, "alpha") == (39, 39, 38)
    assert whole_tracks(frames, "muon") == (75, 74, 69)


@pytest.mark.slow
def test_simulated_tracks_on_full_lime_frames():
    # 40 full LIME frames (seed 3; muon rate 1, alpha 0.6 per frame, twice
    # the simulator's default). LIME analyses only rows 304-2054 (lime.md,
    # the acceptance): a muon runs border to border of the sensor, so its
    # truth is the part of its path inside those rows. Measured (with the
    # noise filter's line rule): alphas 16/16 whole with the length within
    # 10 %; muons 51/51 whole and with the length (49/50 before the rule).
    # Seed 5: alphas 23/23, muons 31/31; seed 9: alphas 16/16, muons 38/39
    # (before: 30/31 and 35/39); seed 9's muons 39/39 with a track's length
    # past its last point (`directional.extension`), the rest the same.
    sim = Simulator("lime", seed=3, run=1, pmt=False, rates=Rates(muon=1.0, alpha=0.6, spark=0))
    sigma = np.sqrt(sim.noise_map(0).astype(np.float64) ** 2 + 1 / 12).astype(np.float32)
    ch = FrameChain(CFG, (2304, 2304), "cam0")
    ch.set_pedestal(PedestalMaps("cam0", sim.pedestal_map(0), sigma, 1, 1, 0))
    assert ch.acc[:2] == (304, 2054)
    frames = []
    for s in range(40):
        trig = sim.trigger(s)
        frames.append(
            (trig, ch.process(trig.images[0], run=1, serial=s, time_ns=0, source="store"))
        )
    t, one, good = whole_tracks(frames, "alpha", rows=ch.acc[:2])
    assert t >= 14 and good / t >= 0.95, (t, one, good)
    t, one, good = whole_tracks(frames, "muon", rows=ch.acc[:2])
    assert t >= 45 and good / t >= 0.95, (t, one, good)


# -- hand-made tracks --------------------------------------------------------


def line_frame(gen, tracks, n_fe=0):
    """A frame with muon-like lines ``(row, col, length, angle_deg)`` (30
    ADU per px of track, sigma 2 px) on the generator's pedestal and noise."""
    img, _ = gen.frame(n_fe=n_fe)
    sig = np.zeros(gen.shape)
    for r, c, length, ang in tracks:
        gen._add_line(sig, r, c, length, math.radians(ang), 2.0, 30.0 * length)
    return np.clip(img + np.rint(sig), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def gen512():
    return Gen((512, 512), seed=5, noise=2.5)


def chain_for(gen):
    ch = FrameChain(CFG, gen.shape, "cam0")
    sigma = np.sqrt(gen.sigma.astype(np.float64) ** 2 + 1 / 12).astype(np.float32)
    ch.set_pedestal(PedestalMaps("cam0", gen.mean, sigma, 1, 1, 0))
    return ch


def clusters_along(res, r, c, length, ang, factor=4, tol=8.0):
    """{label: points} of the clusters with points within ``tol`` px of the
    segment, and the label holding most of them."""
    th = math.radians(ang)
    ur, uc = math.sin(th), math.cos(th)
    pr = res.prow * factor + factor / 2 - r
    pc = res.pcol * factor + factor / 2 - c
    u, v = pr * ur + pc * uc, -pr * uc + pc * ur
    near = (np.abs(v) < tol) & (np.abs(u) < length / 2 + tol) & (res.labels >= 0)
    labs, cnt = np.unique(res.labels[near], return_counts=True)
    return dict(zip(labs.tolist(), cnt.tolist(), strict=True)), near.sum()


@pytest.mark.parametrize("ang", [0, 20, 45, 70, 90, 115, 160])
@pytest.mark.parametrize("length", [200, 300, 420])
def test_one_cluster_per_track_at_any_angle_and_length(gen512, ang, length):
    ch = chain_for(gen512)
    raw = line_frame(gen512, [(256, 256, length, ang)])
    res = ch.process(raw, run=1, serial=0, time_ns=0, source="store")
    found, n = clusters_along(res, 256, 256, length, ang)
    k = max(found, key=found.get)
    assert found[k] >= 0.95 * n, found
    f = res.clusters.features[k]
    assert f[kn.F_TRACK_LENGTH] == pytest.approx(length, rel=0.1)
    assert f[kn.F_FIT_RMS] > 0
    assert abs(((f[kn.F_ANGLE] - ang + 90) % 180) - 90) < 5


def test_crossing_tracks_are_two_clusters(gen512):
    ch = chain_for(gen512)
    tracks = [(256, 256, 400, 30), (256, 256, 380, 110)]
    res = ch.process(line_frame(gen512, tracks), run=1, serial=0, time_ns=0, source="store")
    main = []
    for r, c, length, ang in tracks:
        found, n = clusters_along(res, r, c, length, ang, tol=6.0)
        k = max(found, key=found.get)
        assert found[k] >= 0.8 * n, found
        assert res.clusters.features[k, kn.F_TRACK_LENGTH] == pytest.approx(length, rel=0.1)
        main.append(k)
    assert main[0] != main[1]


def test_tracks_along_the_image_edge(gen512):
    ch = chain_for(gen512)
    tracks = [(6, 256, 400, 0), (300, 505, 300, 90)]
    res = ch.process(line_frame(gen512, tracks), run=1, serial=0, time_ns=0, source="store")
    for r, c, length, ang in tracks:
        found, n = clusters_along(res, r, c, length, ang)
        k = max(found, key=found.get)
        assert found[k] >= 0.95 * n, found
        assert res.clusters.features[k, kn.F_TRACK_LENGTH] == pytest.approx(length, rel=0.1)


def test_spots_stay_spots_next_to_a_track(gen512):
    ch = chain_for(gen512)
    raw = line_frame(gen512, [(256, 256, 400, 45)], n_fe=6)
    res = ch.process(raw, run=1, serial=0, time_ns=0, source="store")
    plain = FrameChain(CameraConfig(dir_enabled=False), gen512.shape, "cam0")
    plain.set_pedestal(ch.maps)
    res0 = plain.process(raw, run=1, serial=0, time_ns=0, source="store")
    from cygno_online.analyzers.camera.classify import FE55

    assert res.clusters.count(FE55) >= res0.clusters.count(FE55) - 1


def _seeded_line(holes: bool):
    """Points of a horizontal track seed (3 rows, cols 0-59, a DBSCAN
    cluster; with ``holes`` every third column empty, as a faint muon) and
    beyond it single unclustered points on its line every 12 rebinned px."""
    cols = [c for c in range(60) if not (holes and c % 3 == 2)]
    pts = [(r, c) for c in cols for r in (20, 21, 22)]
    far = [(21, c) for c in range(71, 160, 12)]
    prow = np.array([p[0] for p in pts + far], np.int64)
    pcol = np.array([p[1] for p in pts + far], np.int64)
    seeds = np.array([0] * len(pts) + [-1] * len(far), np.int64)
    return prow, pcol, seeds, len(far)


@pytest.mark.parametrize("holes", [True, False])
def test_only_a_track_with_holes_bridges_gaps(holes):
    # A faint track leaves holes; its further points may lie a few
    # grow_radius apart: it reaches across gaps up to 3 grow_radius (12 px
    # here, grow_radius 6). A complete track (an alpha) ends where its light
    # stops: points 12 px beyond stay unclustered.
    prow, pcol, seeds, nfar = _seeded_line(holes)
    vals = np.ones(prow.size)
    got, rms = directional_checked(prow, pcol, vals, seeds, 1, atol=0.0)
    assert rms[0] > 0
    if holes:
        assert (got == 0).all()
    else:
        assert (got[-nfar:] == -1).all() and (got[:-nfar] == 0).all()
    tl = dk.track_lengths(prow, pcol, vals, got, rms, *CFG.length_args())
    np.testing.assert_allclose(
        tl, ref.track_lengths(prow, pcol, vals, got, rms, *CFG.length_args())
    )
    # with holes end to end (cols 0-155: 156 px), complete: the 60 px segment
    assert tl[0] == pytest.approx(156 if holes else 60, rel=0.03)


def test_hole_bridging_is_configurable():

    p = Params({"directional": {"hole_bridge": 1.0, "min_coverage": 0.5}}, "analyzers[0].params")
    cfg = CameraConfig.from_params(p)
    p.finish()
    assert (cfg.dir_hole_bridge, cfg.dir_min_coverage) == (1.0, 0.5)
    # no bridging: the points beyond the faint seed stay unclustered
    prow, pcol, seeds, nfar = _seeded_line(True)
    for impl in (dk, ref):
        vals = np.ones(prow.size)
        got, _ = impl.directional_labels(prow, pcol, vals, seeds, 1, *cfg.directional_args())
        assert (got[-nfar:] == -1).all()
    paths = config_error_paths({"hole_bridge": 0.5, "min_coverage": 1.5})
    assert {"analyzers[0].params.directional.hole_bridge"} <= paths
    assert {"analyzers[0].params.directional.min_coverage"} <= paths


# -- the light past a track's last point (directional.extension) -------------


def _faint_map(seed=3):
    """A 64x64 rebinned map of background as the chain leaves it (mostly 0
    after the zero suppression and 2x2 median, some small values)."""
    rng = np.random.default_rng(seed)
    img = np.where(rng.random((64, 64)) < 0.3, rng.exponential(0.5, (64, 64)), 0.0)
    return img.astype(np.float32)


def _extended(img, rows, cols):
    """Steps past the low and high end of a track of points ``(rows,
    cols)`` (one cluster, fitted) on ``img``, numba == numpy."""
    prow, pcol = np.asarray(rows, np.int32), np.asarray(cols, np.int32)
    img[prow, pcol] = np.maximum(img[prow, pcol], 8.0)
    res = SimpleNamespace(rebinned=img, prow=prow, pcol=pcol)
    vals = img[prow, pcol].astype(np.float64)
    _, ext = extended_checked(res, vals, np.zeros(prow.size, np.int64), np.ones(1))
    return ext[0]


def test_a_faint_end_below_the_noise_filter_is_measured():
    # a muon's points on row 30, cols 5-40, its light continuing one px wide
    # at 2 ADU to col 55 (neighbour mean 2/8 + noise: no point there)
    img = _faint_map()
    img[30, 41:56] = 2.0
    cols = np.arange(5, 41)
    ext = _extended(img, np.full(cols.size, 30), cols)
    assert ext[0] <= 1 and ext[1] == pytest.approx(15, abs=1), ext
    # at 1 ADU it is not: 4 ADU over a window of 4 steps is below 3 sigma
    # of the contrast (the background's spread here is 0.39 ADU: 5.4 ADU)
    # and below LIGHT_FRACTION of the track's own contrast (8 ADU per step)
    img = _faint_map()
    img[30, 41:56] = 1.0
    assert _extended(img, np.full(cols.size, 30), cols)[1] <= 1


def test_a_track_that_ends_is_not_extended_into_noise():
    for seed in range(5):
        img = _faint_map(seed)
        cols = np.arange(5, 41)
        ext = _extended(img, np.full(cols.size, 30), cols)
        assert ext.max() <= 1, (seed, ext)
    # an alpha's end: bright, its diffusion halo past the last point far
    # below LIGHT_FRACTION of its own contrast
    img = _faint_map()
    rows, cols = np.mgrid[28:33, 5:41]
    img[28:33, 5:41] = 200.0
    img[28:33, 41:44] = [[20.0, 5.0, 1.0]]
    assert _extended(img, rows.ravel(), cols.ravel()).max() <= 1


def test_a_crossing_track_beyond_a_gap_does_not_extend_it():
    cols = np.arange(5, 41)
    # unclustered faint light (a muon's below the noise filter: 4 ADU, 2 px
    # wide) crossing the line at 30 degrees at col 52, 12 px past the end:
    # beyond window + gap (the gap of 20 steps reaches it, 15 steps)
    img = _faint_map()
    rr, cc = np.mgrid[0:64, 0:64]
    t = math.radians(30.0)
    img[np.abs((cc - 52) * math.sin(t) - (rr - 30) * math.cos(t)) < 1.0] += 4.0
    assert _extended(img.copy(), np.full(cols.size, 30), cols)[1] <= 1
    far = SimpleNamespace(rebinned=img, prow=np.full(cols.size, 30, np.int32), pcol=cols)
    far.pcol = far.pcol.astype(np.int32)
    vals = img[far.prow, far.pcol].astype(np.float64)
    one = np.zeros(cols.size, np.int64)
    wide_gap = CameraConfig(dir_extend_gap=20)
    assert extended_checked(far, vals, one, np.ones(1), wide_gap)[1][0, 1] >= 10
    # the same light right at the end, across the line at 90 degrees: on
    # the flanks as much as on the line, no contrast
    img = _faint_map()
    img[:, 41:50] += 3.0
    assert _extended(img, np.full(cols.size, 30), cols)[1] <= 1
    # another cluster's points on the line stop the walk: a faint end (2
    # ADU) running into a spot of another cluster 3 px past the end
    img = _faint_map()
    img[30, 41:56] = 2.0
    prow = np.r_[np.full(cols.size, 30), [29, 30, 31, 30]].astype(np.int32)
    pcol = np.r_[cols, [44, 44, 44, 45]].astype(np.int32)
    img[prow, pcol] = np.maximum(img[prow, pcol], 8.0)
    labels = np.r_[np.zeros(cols.size, np.int64), np.ones(4, np.int64)]
    res = SimpleNamespace(rebinned=img, prow=prow, pcol=pcol)
    vals = img[prow, pcol].astype(np.float64)
    _, ext = extended_checked(res, vals, labels, np.array([1.0, 0.0]))
    assert ext[0, 1] <= 3 and (ext[1] == 0).all(), ext


def test_extension_is_configurable():

    d = {"extend": False, "extend_nsigma": 4.0, "extend_window": 6, "extend_gap": 1}
    p = Params({"directional": d}, "analyzers[0].params")
    cfg = CameraConfig.from_params(p)
    p.finish()
    assert (cfg.dir_extend, cfg.dir_extend_nsigma) == (False, 4.0)
    assert (cfg.dir_extend_window, cfg.dir_extend_gap) == (6, 1)
    assert cfg.extension_args(0.5)[0] == 0.0 and cfg.reference_extension() is None
    on = CameraConfig(dir_extend_nsigma=4.0)
    assert on.extension_args(0.5)[:3] == (2.0, 4, 2)
    assert CameraConfig().extension_region((2304, 2304)) == (76, 513, 0, 576)
    paths = config_error_paths({"extend_nsigma": 0, "extend_window": 0})
    assert {"analyzers[0].params.directional.extend_nsigma"} <= paths
    assert {"analyzers[0].params.directional.extend_window"} <= paths


# -- crossing tracks: a systematic set ----------------------------------------
#
# Hand-made 512x512 frames (the Gen pedestal and noise of the tests above),
# two tracks each, drawn as the simulator draws them: a muon 25 ADU per px of
# track, sigma 2 px, uniform; an alpha 1000 ADU/px, sigma 3.5-4 px, its light
# rising 0.5 -> 1.5 towards the stopping end (Bragg-like). "Whole" is the
# truth criterion of the simulator tests (`whole_tracks`: one cluster holds
# >= 90 % of the points near the track and not near the other one, and
# track_length is within 10 %).


def _truth(kind, r, c, length, ang, sigma):
    """An injected object as `whole_tracks` reads it (the simulator's
    InjectedObject fields it uses)."""
    return SimpleNamespace(kind=kind, center=(r, c), length=length, angle_deg=ang, sigma=sigma)


def _along(o, x):
    th = math.radians(o.angle_deg)
    return o.center[0] + x * math.sin(th), o.center[1] + x * math.cos(th)


def _through(kind, point, x, length, ang, sigma):
    """A track at ``ang`` whose centre lies ``x`` px along it from ``point``
    (so it passes through ``point``)."""
    th = math.radians(ang)
    return _truth(
        kind, point[0] + x * math.sin(th), point[1] + x * math.cos(th), length, ang, sigma
    )


def crossing_frame(gen, objs):
    img, _ = gen.frame(n_fe=0)
    sig = np.zeros(gen.shape)
    for o in objs:
        n = max(int(o.length), 2)
        t = (np.arange(n) + 0.5) / n
        w = 0.5 + t if o.kind == "alpha" else np.ones(n)
        w = w / w.sum() * (1000.0 if o.kind == "alpha" else 25.0) * o.length
        for k in range(n):
            r, c = _along(o, (t[k] - 0.5) * o.length)
            gen._add_gauss(sig, r, c, o.sigma, w[k])
    return np.clip(img + np.rint(sig), 0, 65535).astype(np.uint16)


def crossing_cases(family):
    """Pairs of tracks of one family of the crossing set."""
    out = []
    if family == "muon x muon":
        # crossing angles 10-90 deg, the crossing 50 px off one's centre
        for base in (0, 37, 115):
            for d in (10, 20, 30, 45, 60, 75, 90):
                out.append(
                    [
                        _truth("muon", 256, 256, 420, base, 2.0),
                        _through("muon", (256, 256), -50, 380, base + d, 2.0),
                    ]
                )
    elif family == "muon x alpha":
        for base in (10, 80, 140):
            for d in (15, 30, 45, 60, 90):
                out.append(
                    [
                        _truth("muon", 256, 256, 420, base, 2.0),
                        _through("alpha", (256, 256), 40, 220, base + d, 4.0),
                    ]
                )
    elif family == "alpha T-junction":
        # a 200 px alpha ending on the axis of a 180 px one, 30 px off its centre
        for base in (5, 70):
            for d in (30, 45, 60, 90, 120, 150):
                b = _truth("alpha", 256, 256, 180, base, 4.0)
                out.append([b, _through("alpha", _along(b, 30), -100, 200, base + d, 3.5)])
    elif family == "alpha x alpha":
        for base in (0, 60):
            for d in (20, 45, 90):
                out.append(
                    [
                        _truth("alpha", 256, 256, 240, base, 4.0),
                        _through("alpha", (256, 256), 30, 200, base + d, 3.5),
                    ]
                )
    else:
        # near-parallel muons, sep px apart at the centre, parallel or 3 deg
        sep = int(family.split()[-1])
        for dang in (0, 3):
            for base in (20, 100):
                th = math.radians(base)
                dr, dc = sep / 2 * math.cos(th), sep / 2 * math.sin(th)
                out.append(
                    [
                        _truth("muon", 256 - dr, 256 + dc, 420, base, 2.0),
                        _truth("muon", 256 + dr, 256 - dc, 400, base + dang, 2.0),
                    ]
                )
    return out


def crossing_figures(family, seeds=(5, 6)):
    """(whole tracks, tracks, the frames' misses) of one family, each frame
    drawn once per noise seed."""
    good = total = 0
    misses = []
    for seed in seeds:
        g, t, m = _crossing_figures(family, seed)
        good += g
        total += t
        misses += [(seed, *x) for x in m]
    return good, total, misses


def _crossing_figures(family, seed):
    gen = Gen((512, 512), seed=seed, noise=2.5)
    ch = chain_for(gen)
    good = total = 0
    misses = []
    for i, objs in enumerate(crossing_cases(family)):
        res = ch.process(crossing_frame(gen, objs), run=1, serial=i, time_ns=0, source="store")
        trig = SimpleNamespace(truth=SimpleNamespace(objects=objs))
        for kind in ("muon", "alpha"):
            t, _, g = whole_tracks([(trig, res)], kind)
            total += t
            good += g
            if g < t:
                misses.append((i, kind))
    return good, total, misses


# Whole tracks measured per family, 2 tracks per frame, each frame on two
# noise seeds (5 and 6): muon x muon 84/84, muon x alpha 59/60,
# T-junctions 47/48, alpha x alpha 24/24, parallel at 20, 24, 32 px 13/16,
# 15/16, 16/16: 258/264 (97.7 %; seed 5 alone 129/132, seed 6 129/132).
# Before a short piece's start line was straight too and a short
# piece left a round cluster on its line alone (`directional.LINE_HALF`,
# `BLOB_TAKER_LENGTH`): muon x muon 80/84 (seed 6's 10-deg crossings, cases 7
# and 8, are whole now), parallel 20 13/16 (one frame more on seed 6, one
# less on seed 5: 20 px apart is the limit, below), 254/264 (130 and 124).
# Before a short piece refitted as a straight line: parallel 24 14/16,
# 253/264 (130 and 123; this comment had 131 for seed 5: 130 measured).
# Before a seed holding two crossing lines was split
# (`directional._one_line`): muon x muon 78/84, 251/264 (129 and 122).
# Before the points' light entered the growth
# (`directional._alike`, `LIGHT_FRACTION`, `_absorb_halo`): muon x alpha
# 56/60, 248/264 (93.9 %; 128 and 120). Before the tracks shared their points
# (`directional._share`), wide tracks' bands were capped at their members'
# reach (`_band`), alphas stopped growing into sparser points (`_dense_ends`)
# and a track across another gave up only its points on the other's reach:
# 68, 58, 26, 24, 13, 13, 15 = 217/264 (82.2 %). Requirement 95 %: met on
# the set and on each noise seed. The misses: near-parallel muons 20-24 px
# apart (2 of 8 parallel frames on seed 6, 2 on seed 5), one T-junction alpha,
# and a muon crossing an alpha at 15 deg (case 5, seed 5: the muon's piece
# beyond the alpha is not on the curve of its other pieces).
# Near-parallel muons are required apart by at least 20 px (5 rebinned px
# = 2 x thickness): closer, the other track's light lies inside a track's
# own band of +-thickness (10 px), its points cannot tell which line they
# belong to, and `whole_tracks` leaves out most points of both (within
# 3 sigma + 4 px of either path).
CROSSING_FAMILIES = {
    "muon x muon": 84,
    "muon x alpha": 59,
    "alpha T-junction": 47,
    "alpha x alpha": 24,
    "parallel 20": 13,
    "parallel 24": 15,
    "parallel 32": 16,
}


@pytest.mark.parametrize("family", list(CROSSING_FAMILIES))
def test_crossing_tracks_are_whole(family):
    good, total, misses = crossing_figures(family)
    assert total == 4 * len(crossing_cases(family))
    assert good == CROSSING_FAMILIES[family], (good, total, misses)


@pytest.mark.parametrize("family", ["muon x alpha", "alpha T-junction", "parallel 20"])
def test_crossings_same_clusters_as_the_numpy_reference(family):
    # the sharing, band and dense-end rules act on these frames, and the
    # light rules (a track of other light found foreign, not taken whole: 5
    # times; a halo strand joining its alpha: not here, twice on the
    # simulator frames of test_same_clusters_as_the_numpy_reference, where
    # 9 tracks are found foreign)
    gen = Gen((512, 512), seed=5, noise=2.5)
    ch = chain_for(gen)
    for i, objs in enumerate(crossing_cases(family)[::2]):
        res = ch.process(crossing_frame(gen, objs), run=1, serial=i, time_ns=0, source="store")
        seeds, npri = seeded(res)
        vals = res.rebinned[res.prow, res.pcol]
        directional_checked(res.prow, res.pcol, vals, seeds, npri)


def test_light_keeps_a_muon_off_a_crossing_alpha():
    # Case 10 of "muon x alpha" on noise seed 6: a muon crossing an alpha at
    # 15 deg, inside the alpha's band for ~120 px. Its piece there lies on
    # the alpha's reach and within the merge angle: by geometry it is the
    # alpha's. Its light (median 2 ADU per rebinned px against the alpha's
    # 27, `LIGHT_RATIO` 4) says it is another track: the alpha takes only
    # its points on the reach and the rest joins the muon's other pieces.
    gen = Gen((512, 512), seed=6, noise=2.5)
    ch = chain_for(gen)
    for _ in range(10):
        gen.frame(n_fe=0)  # the frames before it in the crossing set
    objs = crossing_cases("muon x alpha")[10]
    res = ch.process(crossing_frame(gen, objs), run=1, serial=10, time_ns=0, source="store")
    trig = SimpleNamespace(truth=SimpleNamespace(objects=objs))
    assert whole_tracks([(trig, res)], "muon") == (1, 1, 1)
    assert whole_tracks([(trig, res)], "alpha") == (1, 1, 1)
    # every point of the same light: the growth gives the muon's piece to
    # the alpha (as before the light rules); the last sharing gives it back
    # (a track's band counts only up to grow_radius past its ends there, so
    # the alpha's band no longer cuts the muon's extent), on other points
    # than the light's growth (before that rule the muon stayed two clusters)
    seeds, npri = seeded(res)
    flat = np.ones(res.prow.size)
    got, _ = directional_checked(res.prow, res.pcol, flat, seeds, npri)
    nf = res.clusters.features.shape[1]
    split = SimpleNamespace(
        prow=res.prow,
        pcol=res.pcol,
        labels=got,
        clusters=SimpleNamespace(features=np.zeros((got.max() + 1, nf))),
    )
    assert whole_tracks([(trig, split)], "muon")[:2] == (1, 1)
    assert (got != res.labels).any()


def test_band_of_a_flat_track_is_its_reach():
    # A bright alpha's cross-section is flat: points at residuals -3..3
    # (uniform). width_nsigma x MAD scale would give 2.5 x 1.4826 x 1.5 =
    # 5.6 px; the band stops at the 98 % quantile of |residual| (3) plus
    # BAND_MARGIN. A Gaussian-like muon keeps width_nsigma x scale.
    rr = np.repeat(np.arange(-3.0, 4.0), 20)
    s = 1.4826 * np.median(np.abs(rr))
    th = dk._band(rr, s, CFG.dir_thickness, CFG.dir_width_nsigma)
    assert th == pytest.approx(3.0 + dk.BAND_MARGIN)
    assert th == ref._band(rr, s, CFG.dir_thickness, CFG.dir_width_nsigma)
    g = np.random.default_rng(1).normal(0, 1.2, 400)
    sg = 1.4826 * np.median(np.abs(g - np.median(g)))
    assert dk._band(g, sg, CFG.dir_thickness, CFG.dir_width_nsigma) == pytest.approx(
        CFG.dir_width_nsigma * sg
    )


def test_a_muon_keeps_its_end_past_an_alpha_end():
    # A thin vertical track (2 ADU per point, cols 0-1, rows 0-26) ending in
    # the band of a wide one (an alpha: 30 ADU, rows 21-27, cols 3-60) that
    # ends 2 px beside it. The last sharing cut each track's extent where
    # the other's band lies; the thin track's then stopped at row ~17 and its
    # points at rows 23-26 were nearer the alpha's segment (10 points went
    # to the alpha). They lie beyond the alpha's extent: the thin track
    # keeps them (`directional._share`).
    alpha = [(r, c) for r in range(21, 28) for c in range(3, 61)]
    muon = [(r, c) for r in range(27) for c in (0, 1)]
    prow = np.array([p[0] for p in alpha + muon], np.int64)
    pcol = np.array([p[1] for p in alpha + muon], np.int64)
    vals = np.array([30.0] * len(alpha) + [2.0] * len(muon))
    seeds = np.array([0] * len(alpha) + [1] * len(muon), np.int64)
    got, rms = directional_checked(prow, pcol, vals, seeds, 2)
    assert (rms > 0).all() and rms.size == 2
    assert (got[: len(alpha)] == got[0]).all()
    assert (got[len(alpha) :] == got[-1]).all() and got[-1] != got[0]


def test_a_short_piece_refits_as_a_straight_line():
    # A refit track within LINE_HALF (5 rebinned px) of its centroid along
    # the axis is a straight line: a parabola on 9 px of a faint muon bends
    # its end tangents, and the growth follows them (the crossing set's
    # near-parallel muons 24 px apart: 14 -> 15/16). Longer tracks keep the
    # parabola.
    rng = np.random.default_rng(3)
    cols = np.repeat(np.arange(-4, 5), 3).astype(np.float64)
    rows = 10.0 + rng.integers(-1, 2, cols.size) + 0.05 * cols**2
    for impl in (dk, ref):
        p = impl.fit_track(rows, cols, dk.LINE_HALF)[4]
        assert p[2] == 0.0
        assert impl.fit_track(rows, cols)[4][2] != 0.0
    np.testing.assert_allclose(
        dk.fit_track(rows, cols, dk.LINE_HALF)[4], ref.fit_track(rows, cols, ref._LINE_HALF)[4]
    )
    long_cols = np.repeat(np.arange(-12, 13), 3).astype(np.float64)
    long_rows = 10.0 + rng.integers(-1, 2, long_cols.size) + 0.02 * long_cols**2
    assert dk.fit_track(long_rows, long_cols, dk.LINE_HALF)[4][2] != 0.0


@pytest.mark.parametrize("length", [8, 30])
def test_a_short_piece_leaves_a_round_cluster_on_its_line(length):
    # A track piece (2 rows, `length` rebinned px) and a round DBSCAN cluster
    # (5x5, a 55Fe spot) on its line 4 px beyond its end: all of the cluster
    # lies on the piece's reach. A piece shorter than BLOB_TAKER_LENGTH (20)
    # cannot tell its direction well enough to call the spot a piece of its
    # track: the spot stays a cluster of its own (before: taken whole, and
    # the piece's refit turned towards it). A long track takes it.
    piece = [(r, c) for r in (20, 21) for c in range(length)]
    spot = [(r, c) for r in range(19, 24) for c in range(length + 4, length + 9)]
    prow = np.array([p[0] for p in piece + spot], np.int64)
    pcol = np.array([p[1] for p in piece + spot], np.int64)
    seeds = np.array([0] * len(piece) + [1] * len(spot), np.int64)
    got, _ = directional_checked(prow, pcol, np.full(prow.size, 2.0), seeds, 2)
    assert (got[: len(piece)] == got[0]).all() and (got[len(piece) :] == got[-1]).all()
    assert (got[0] != got[-1]) == (length < dk.BLOB_TAKER_LENGTH)
