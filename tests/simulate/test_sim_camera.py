"""Camera images: determinism, pedestal statistics, injected objects, sparks."""

from __future__ import annotations

import numpy as np
import pytest

from cygno_online.errors import ConfigError
from cygno_online.simulate import Rates, Simulator, get_layout, spark_threshold

CROP = "crop:256"


def test_layouts() -> None:
    lime = get_layout("lime")
    assert lime.camera_shapes == ((2304, 2304),) and lime.dgh_layout == "A"
    assert [(b.model, b.nchannels, b.nsamples, b.sampling) for b in lime.boards] == [
        (1742, 32, 1024, 1333),
        (1720, 8, 4000, 250),
    ]
    c4 = get_layout("cygno04")
    assert c4.camera_shapes == ((2304, 4096),) * 2 and c4.dgh_layout == "B" and c4.time_bank
    assert get_layout("cygno04", cameras=6).ncameras == 6
    crop = get_layout("crop:512", cameras=2)
    assert crop.camera_shapes == ((512, 512),) * 2 and crop.dgh_layout == "A"
    for bad in ("nope", "crop:x", "crop:8"):
        with pytest.raises(ConfigError):
            get_layout(bad)
    with pytest.raises(ConfigError):
        get_layout("cygno04", cameras=7)
    with pytest.raises(ConfigError):
        get_layout("lime", cameras=2)


def test_same_seed_same_images_any_order() -> None:
    a = Simulator(CROP, seed=5, run=3)
    b = Simulator(CROP, seed=5, run=3)
    late_first = b.trigger(4)
    for k in range(5):
        ta = a.trigger(k)
        tb = b.trigger(k) if k != 4 else late_first
        assert np.array_equal(ta.images[0], tb.images[0])
        assert np.array_equal(ta.dig0, tb.dig0) and np.array_equal(ta.dgh0, tb.dgh0)
        assert ta.truth.to_dict() == tb.truth.to_dict()
    c = Simulator(CROP, seed=6, run=3).trigger(0)
    assert not np.array_equal(c.images[0], a.trigger(0).images[0])
    # consecutive frames differ (noise offsets change)
    assert not np.array_equal(a.trigger(0).images[0], a.trigger(1).images[0])


def test_detector_fixed_across_runs_and_seeds() -> None:
    a = Simulator(CROP, seed=1, run=1, pedestal=True)
    b = Simulator(CROP, seed=2, run=2)
    assert np.array_equal(a.pedestal_map(0), b.pedestal_map(0))
    assert np.array_equal(a.hot_pixels(0), b.hot_pixels(0))
    c = Simulator(CROP, detector_seed=9)
    assert not np.array_equal(a.pedestal_map(0), c.pedestal_map(0))


def test_maps_plausible() -> None:
    sim = Simulator(CROP)
    ped, noise = sim.pedestal_map(0), sim.noise_map(0)
    hot = sim.hot_pixels(0)
    assert ped.shape == noise.shape == (256, 256) and ped.dtype == np.float32
    mask = np.ones(ped.shape, bool)
    mask[hot[:, 0], hot[:, 1]] = False
    assert 98.5 < np.median(ped) < 100.5 and ped[mask].min() > 97.5 and ped[mask].max() < 102
    assert ped[mask].std() > 0.1  # structure and per-pixel spread
    assert 2.0 < np.median(noise) < 3.0
    assert len(hot) >= 3 and (ped[hot[:, 0], hot[:, 1]] > 300).all()
    # shared between simulators of the same detector: read-only
    with pytest.raises(ValueError):
        ped[0, 0] = 0


def test_simulators_in_threads_do_not_interfere() -> None:
    import threading

    rates = Rates(fe55=20, alpha=3, muon=3, spark=0)

    def frames(seed: int) -> list[np.ndarray]:
        sim = Simulator(CROP, seed=seed, rates=rates)
        return [sim.trigger(k, reuse_buffers=True).images[0].copy() for k in range(12)]

    reference = {seed: frames(seed) for seed in (1, 2)}
    got: dict[int, list[np.ndarray]] = {}
    threads = [threading.Thread(target=lambda s=s: got.update({s: frames(s)})) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (1, 2):
        assert all(np.array_equal(x, y) for x, y in zip(got[seed], reference[seed], strict=True))


def test_pedestal_frames_match_maps() -> None:
    sim = Simulator(CROP, seed=11, pedestal=True)
    n = 48
    stack = np.stack([sim.trigger(k).images[0] for k in range(n)]).astype(np.float64)
    for k in range(n):
        assert sim.frame_truth(k).objects == []
    ped, noise = sim.pedestal_map(0).astype(np.float64), sim.noise_map(0).astype(np.float64)
    mean, rms = stack.mean(axis=0), stack.std(axis=0, ddof=1)
    expected_rms = np.sqrt(noise**2 + 1 / 12)
    pull = (mean - ped) / (expected_rms / np.sqrt(n))
    assert abs(pull.mean()) < 0.05
    assert 0.95 < pull.std() < 1.05
    assert np.mean(np.abs(pull) > 5) < 1e-4
    ratio = rms / expected_rms
    assert abs(np.median(ratio) - 1) < 0.03
    # per-pixel RMS follows the map (pixel-to-pixel variation is real)
    order = np.argsort(noise.ravel())
    for chunk in np.array_split(order, 10):
        got = np.sqrt((rms.ravel()[chunk] ** 2).mean())
        want = np.sqrt((expected_rms.ravel()[chunk] ** 2).mean())
        assert got == pytest.approx(want, rel=0.02)
    noisy = noise > 4.5
    assert noisy.any() and (ratio[noisy] > 0.6).all() and (ratio[noisy] < 1.4).all()
    # frame-to-frame independence: residuals of two frames uncorrelated
    r0, r1 = stack[0] - ped, stack[1] - ped
    assert abs(np.corrcoef(r0.ravel(), r1.ravel())[0, 1]) < 0.02
    # hot pixels are bright in every frame
    hot = sim.hot_pixels(0)
    assert (stack[:, hot[:, 0], hot[:, 1]] > 300).all()


def test_pedestal_run_has_no_objects_or_pmt_triggers() -> None:
    sim = Simulator(CROP, seed=2, pedestal=True, rates=Rates(fe55=20, alpha=5, muon=5, spark=1))
    for k in range(5):
        t = sim.trigger(k)
        assert t.truth.objects == [] and t.truth.n_pmt_triggers == 0
        assert t.dig0.size == 0


def _box_sum(img: np.ndarray, ped: np.ndarray, box) -> float:
    r0, c0, r1, c1 = box
    return float((img[r0:r1, c0:c1].astype(np.float64) - ped[r0:r1, c0:c1]).sum())


def test_objects_are_where_truth_says() -> None:
    sim = Simulator("crop:512", seed=4, rates=Rates(fe55=4, alpha=0.7, muon=0.7, spark=0))
    ped = sim.pedestal_map(0).astype(np.float64)
    noise = sim.noise_map(0).astype(np.float64)
    hot = sim.hot_pixels(0)
    kinds = set()
    for k in range(12):
        t = sim.trigger(k)
        img = t.images[0].astype(np.float64)
        img[hot[:, 0], hot[:, 1]] = ped[hot[:, 0], hot[:, 1]]
        covered = np.zeros(img.shape, bool)
        for o in t.truth.objects:
            kinds.add(o.kind)
            r0, c0, r1, c1 = o.bbox
            assert 0 <= r0 < r1 <= 512 and 0 <= c0 < c1 <= 512
            assert r0 <= o.center[0] <= r1 and c0 <= o.center[1] <= c1
            covered[r0:r1, c0:c1] = True
            box_noise = np.sqrt((noise[r0:r1, c0:c1] ** 2 + 1 / 12).sum())
            s = _box_sum(img, ped, o.bbox)
            # the object's light is in its box (others may add to it)...
            assert s > 0.97 * o.integral - 6 * box_noise, (o, s)
            assert o.integral > 8 * box_noise, o
            assert o.pmt_triggers == 1
        # ...and nowhere else
        outside = img[~covered] - ped[~covered]
        assert abs(outside.mean()) < 0.05
        if t.truth.objects:
            boxes = [o.bbox for o in t.truth.objects]
            total = sum(o.integral for o in t.truth.objects)
            union = np.zeros(img.shape, bool)
            for r0, c0, r1, c1 in boxes:
                union[r0:r1, c0:c1] = True
            measured = float((img[union] - ped[union]).sum())
            sigma = np.sqrt((noise[union] ** 2).sum())
            assert abs(measured - total) < 0.02 * total + 6 * sigma
    assert kinds == {"fe55", "alpha", "muon"}


def test_object_shapes() -> None:
    sim = Simulator("crop:1024", seed=8, rates=Rates(fe55=3, alpha=1, muon=1, spark=0))
    objs = [o for k in range(6) for o in sim.trigger(k).truth.objects]
    fe = [o for o in objs if o.kind == "fe55"]
    al = [o for o in objs if o.kind == "alpha"]
    mu = [o for o in objs if o.kind == "muon"]
    assert fe and al and mu
    assert all(2 <= o.sigma <= 4 and o.length == 0 for o in fe)
    assert np.mean([o.integral for o in fe]) == pytest.approx(3000, rel=0.25)
    assert all(100 <= o.length <= 500 for o in al)
    assert all(o.length >= 0.6 * 1024 for o in mu)
    # dense alphas, faint muons (per unit length)
    assert min(o.integral / o.length for o in al) > 5 * max(o.integral / o.length for o in mu)
    assert all(-90 <= o.angle_deg < 90 for o in objs)


def test_spark_frames_exceed_veto_threshold_and_normal_ones_do_not() -> None:
    for size in (256, 512):
        npix = size * size
        spark = Simulator(f"crop:{size}", seed=3, rates=Rates(spark=1.0))
        calm = Simulator(f"crop:{size}", seed=3, rates=Rates(spark=0.0, alpha=2, muon=2))
        for k in range(4):
            t = spark.trigger(k)
            assert t.truth.spark
            assert int(t.images[0].sum(dtype=np.int64)) > spark_threshold(npix)
            c = calm.trigger(k)
            assert not c.truth.spark
            assert int(c.images[0].sum(dtype=np.int64)) < spark_threshold(npix)


def test_default_spark_rate_is_low_but_present() -> None:
    sim = Simulator("crop:64", seed=0, pmt=False)
    sparks = sum(sim.trigger(k).truth.spark for k in range(400))
    assert 0 < sparks < 15


def test_lime_full_frame() -> None:
    sim = Simulator("lime", seed=1, rates=Rates(spark=0))
    t = sim.trigger(0)
    img = t.images[0]
    assert img.shape == (2304, 2304) and img.dtype == np.uint16
    assert 99 < img.mean() < 101
    assert int(img.sum(dtype=np.int64)) < spark_threshold(img.size)
