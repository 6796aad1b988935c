"""The camera analyzer: configuration, pedestal store and estimation,
outputs, concurrency, run summary."""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from camera_framegen import Gen
from cygno_online.analyzers.camera import CameraAnalyzer
from cygno_online.analyzers.camera import reference as kref
from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain, warm_up_kernels
from cygno_online.analyzers.camera.clusters import fit_peak
from cygno_online.analyzers.camera.pedestals import (
    PedestalAccumulator,
    PedestalMaps,
    PedestalStore,
    threshold_map,
)

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.analysis.plugin import AnalyzerEnv, discover
from cygno_online.decode.items import CameraFrame, EventContext, RunInfo
from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params

SAMPLE = Path(__file__).resolve().parents[2] / "analyzers" / "camera" / "sample.yaml"
DAY = 86400 * 10**9
T0 = 1_767_000_000 * 10**9


def make(params=None, state_dir=None) -> CameraAnalyzer:
    a = CameraAnalyzer()
    p = Params(params or {}, "analyzers[0].params")
    a.configure(p, AnalyzerEnv(state_dir=state_dir))
    p.finish()
    return a


def frame(img, serial=0, camera=0, run=1, t=T0) -> CameraFrame:
    return CameraFrame(
        EventContext(run, serial, 1, 0, t + serial * 10**9), camera, f"CAM{camera}", img
    )


def feed(a, frames, run: RunInfo):
    a.begin_run(run)
    outs, flows = [], []
    for f in frames:
        flow = {}
        outs.append(a.process(f, flow))
        flows.append(flow)
    return outs, flows, a.end_run(run)


def metric(outs, family):
    return [
        o for o in outs if isinstance(o, Metric) and o.family == family and "cluster" not in o.tags
    ]


# -- configuration --------------------------------------------------------------


def test_sample_yaml_is_valid_and_equals_defaults():
    doc = yaml.safe_load(SAMPLE.read_text())
    entry = doc["analyzers"][0]
    assert entry["plugin"] == "camera"
    p = Params(entry["params"], "analyzers[0].params")
    cfg = CameraConfig.from_params(p)
    p.finish()
    assert cfg == CameraConfig()


def test_plugin_is_discovered():
    assert discover()["camera"] is CameraAnalyzer


def test_config_errors_name_key_paths():
    p = Params(
        {
            "dbscan": {"epss": 2},
            "nsigma": "x",
            "display": {"scale": 6},
            "classes": {"fe55": {"rms": 1}},
        },
        "analyzers[0].params",
    )
    CameraAnalyzer().configure(p, AnalyzerEnv())
    with pytest.raises(ConfigErrors) as ei:
        p.finish()
    paths = {e.path for e in ei.value.errors}
    assert "analyzers[0].params.dbscan.epss" in paths
    assert "analyzers[0].params.nsigma" in paths
    assert "analyzers[0].params.display.scale" in paths
    assert "analyzers[0].params.classes.fe55.rms" in paths


def test_noise_line_rule_is_configurable():
    for given, want in ((None, 2.5), (4.0, 4.0)):
        p = Params({"noise": {"line_min": given}} if given else {}, "a.params")
        assert CameraConfig.from_params(p).nb_line_min == want
        p.finish()
    p = Params({"noise": {"line_min": None}}, "a.params")  # null = no line rule
    assert CameraConfig.from_params(p).nb_line_min == math.inf
    p.finish()
    for bad in (0, -1.0, "x", True):
        p = Params({"noise": {"line_min": bad}}, "a.params")
        CameraConfig.from_params(p)
        with pytest.raises(ConfigError, match=r"a\.params\.noise\.line_min"):
            p.finish()


def test_unknown_top_level_key():
    p = Params({"nsgima": 1.0}, "a.params")
    CameraAnalyzer().configure(p, AnalyzerEnv())
    with pytest.raises(ConfigError, match=r"a\.params\.nsgima"):
        p.finish()


def test_acceptance_boxes_and_spark_threshold_per_shape():
    cfg = CameraConfig()
    assert cfg.acceptance((2304, 2304)) == (304, 2054, 0, 2304)
    assert cfg.acceptance((2304, 4096)) == (0, 2304, 0, 4096)
    assert cfg.acceptance((512, 512)) == (0, 512, 0, 512)
    assert cfg.spark_sum((2304, 2304)) == 2 * 100 * 2304 * 2304 + 9e6
    b = cfg.boxes((2304, 2304))
    assert b[0].tolist() == [256, 512, 256, 512] and b[4].tolist() == [1024, 1280, 1024, 1280]
    assert b[8].tolist() == [1792, 2048, 1792, 2048]
    q = cfg.boxes((2304, 4096))
    assert (q[:, 1] - q[:, 0] == 256).all() and (q[:, 3] <= 4096).all()
    small = cfg.boxes((90, 120))
    assert (small[:, 1] - small[:, 0] == 30).all() and (small[:, 3] - small[:, 2] == 40).all()
    c2 = CameraConfig(acceptance_rows=(10, 5000))
    assert c2.acceptance((512, 512)) == (10, 512, 0, 512)


# -- pedestals --------------------------------------------------------------------


def test_accumulator_matches_numpy():
    g = Gen((64, 80), seed=2)
    frames = np.stack([g.pedestal_frame() for _ in range(9)])
    acc = PedestalAccumulator()
    for f in frames:
        acc.add(f)
    mean, sigma = acc.maps()
    rm, rs = kref.pedestal_maps(frames)
    np.testing.assert_allclose(mean, rm, rtol=0, atol=1e-4)
    np.testing.assert_allclose(sigma, rs, rtol=1e-5, atol=1e-4)


def _maps(cam="cam0", shape=(8, 8), run=1, t=T0, exposure=0.3, level=100.0):
    return PedestalMaps(
        cam,
        np.full(shape, level, np.float32),
        np.full(shape, 2.0, np.float32),
        20,
        run,
        t,
        exposure,
    )


def test_store_round_trip_and_newest_match(tmp_path):
    store = PedestalStore(tmp_path / "peds")
    assert store.find("cam0", (8, 8), 0.3) is None
    p = store.save(_maps(run=5, t=T0, level=101.0))
    assert p.name == "cam0_8x8_exp300ms_run000005.npz" and p.with_suffix(".json").exists()
    store.save(_maps(run=7, t=T0 + DAY, level=102.0))  # newest
    store.save(_maps(run=9, t=T0 - DAY, level=103.0))  # higher run, older
    store.save(_maps(run=11, t=T0 + 2 * DAY, exposure=1.0))  # other exposure
    store.save(_maps(run=12, t=T0 + 3 * DAY, shape=(8, 9)))  # other shape
    store.save(_maps("cam1", run=13, t=T0 + 4 * DAY))  # other camera
    e = store.find("cam0", (8, 8), 0.3)
    assert e["run"] == 7
    m = store.load(e)
    assert m.mean[0, 0] == 102.0 and m.sigma.dtype == np.float32 and m.n_frames == 20
    assert e["mean_of_means"] == pytest.approx(102.0) and e["mean_sigma"] == pytest.approx(2.0)
    assert store.find("cam0", (8, 8), 1.0)["run"] == 11
    # unknown run exposure: any exposure, newest
    assert store.find("cam0", (8, 8), None)["run"] == 11
    # unknown map exposure is the fallback for a known run exposure
    store.save(_maps(run=20, t=T0 + 9 * DAY, exposure=None))
    assert store.find("cam0", (8, 8), 0.3)["run"] == 7
    assert store.find("cam0", (8, 8), 2.5)["run"] == 20


def test_store_ignores_broken_entries(tmp_path):
    store = PedestalStore(tmp_path)
    store.save(_maps(run=1))
    (tmp_path / "cam0_8x8_exp300ms_run000002.npz").write_bytes(b"junk")  # no JSON
    (tmp_path / "notes.npz").write_bytes(b"x")
    assert [e["run"] for e in store.entries()] == [1]


# -- the analyzer on generated frames ----------------------------------------------


@pytest.fixture(scope="module")
def gen() -> Gen:
    return Gen((256, 256), seed=11)


def _pedestal_then_physics(a, gen, n_phys=4, ped_time=T0, phys_time=T0 + DAY):
    ped = RunInfo(run=1, start_time_ns=ped_time, exposure_s=0.3, pedestal=True)
    _, _, s_ped = feed(a, [frame(gen.pedestal_frame(), i, t=ped_time) for i in range(12)], ped)
    frames = [frame(gen.frame(n_fe=3)[0], i, run=2, t=phys_time) for i in range(n_phys)]
    phys = RunInfo(run=2, start_time_ns=phys_time, exposure_s=0.3)
    outs, flows, s = feed(a, frames, phys)
    return s_ped, outs, flows, s


def test_pedestal_run_then_physics_uses_stored_map(tmp_path, gen):
    a = make(state_dir=tmp_path)
    s_ped, outs, flows, s = _pedestal_then_physics(a, gen)
    info = s_ped["cameras"]["cam0"]["pedestal_run"]
    assert info["stored"] and info["n_frames"] == 12 and Path(info["path"]).exists()
    assert info["mean_sigma"] == pytest.approx(float(gen.sigma.mean()), rel=0.1)
    m = metric(outs[0], "camera")[0]
    assert m.fields["pedestal_source"] == "store"
    assert m.fields["pedestal_age_days"] == pytest.approx(1.0, abs=0.01)
    assert m.fields["pedestal_too_old"] is False and m.fields["pedestal_map_run"] == 1
    assert m.fields["clustered"] and m.fields["n_clusters"] >= 2
    assert all(type(m.fields[f"box{k}_light"]) is bool for k in range(9))
    cam = s["cameras"]["cam0"]
    assert cam["pedestal"]["source"] == "store" and cam["pedestal"]["run"] == 1
    assert cam["clusters"]["by_class"]["fe55"] >= 8
    assert len(flows[0]["clusters"]) == m.fields["n_clusters"]


def test_old_pedestal_is_flagged(tmp_path, gen):
    a = make({"pedestal": {"max_age_days": 3}}, state_dir=tmp_path)
    _, outs, _, s = _pedestal_then_physics(a, gen, n_phys=1, phys_time=T0 + 5 * DAY)
    m = metric(outs[0], "camera")[0]
    assert m.fields["pedestal_too_old"] is True and m.fields["pedestal_age_days"] > 3
    assert s["cameras"]["cam0"]["pedestal"]["too_old"] is True


def test_short_pedestal_run_is_not_stored(tmp_path, gen):
    a = make({"pedestal": {"min_frames": 20}}, state_dir=tmp_path)
    s_ped, *_ = _pedestal_then_physics(a, gen, n_phys=0)
    assert s_ped["cameras"]["cam0"]["pedestal_run"]["stored"] is False
    assert PedestalStore(tmp_path / "pedestals").entries() == []


def test_without_map_the_pedestal_is_estimated(gen):
    a = make({"pedestal": {"estimate_frames": 5}})
    frames = [frame(gen.frame(n_fe=2)[0], i) for i in range(8)]
    run = RunInfo(run=3, start_time_ns=T0, exposure_s=0.3)
    a.begin_run(run)
    outs = [a.process(f, {}) for f in frames[:5]]
    assert a.state("cam0").estimator.wait(60)
    outs += [a.process(f, {}) for f in frames[5:]]
    s = a.end_run(run)
    cams = [metric(o, "camera") for o in outs]
    # frames 0-4 estimating; frame 5 brings the late analysis of 0-4, then itself
    assert [c[0].fields["pedestal_source"] for c in cams[:5]] == ["estimating"] * 5
    assert [m.serial for m in cams[5]] == [0, 1, 2, 3, 4, 5]
    assert all(m.fields["analysed_late"] and m.fields["clustered"] for m in cams[5][:5])
    assert "analysed_late" not in cams[5][5].fields
    assert [c[-1].fields["pedestal_source"] for c in cams[5:]] == ["estimated"] * 3
    first = cams[0][0].fields
    assert "raw_mean" in first and "ped_mean" not in first and not first["clustered"]
    cam = s["cameras"]["cam0"]
    assert cam["frames"] == 8
    assert cam["clusters"]["frames_without_pedestal"] == 0
    assert cam["clusters"]["frames_analysed_late"] == 5
    assert cam["clusters"]["frames_clustered"] == 8
    assert cam["pedestal"]["source"] == "estimated" and cam["pedestal"]["estimate_s"] > 0
    assert metric(outs[-1], "clusters")[0].fields["n_fe55"] >= 1


def test_metrics_units_and_displays(tmp_path, gen):
    a = make({"per_cluster_metrics": True}, state_dir=tmp_path)
    _, outs, _, s = _pedestal_then_physics(a, gen, n_phys=2)
    for o in outs[1]:
        if isinstance(o, Metric):
            assert set(o.units) == set(o.fields), o.family
            assert o.tags["camera"] == "cam0"
    cam = metric(outs[1], "camera")[0]
    assert cam.units["raw_mean"] == "ADU" and cam.units["pedestal_age_days"] == "days"
    assert isinstance(cam.fields["n_clusters"], int) and isinstance(cam.fields["spark"], bool)
    # 4 statistics and, on a clustered frame, the light flag per box
    assert len([k for k in cam.fields if k.startswith("box")]) == 45
    rows = [o for o in outs[1] if isinstance(o, Metric) and "cluster" in o.tags]
    assert len(rows) == cam.fields["n_clusters"] and rows[0].units["length_mm"] == "mm"
    disp = {o.name: o for o in outs[1] if isinstance(o, Display)}
    img = disp["camera/cam0/frame"]
    assert img.kind == "image" and img.arrays["image"].shape == (16, 16)
    assert img.arrays["image"].dtype == np.float32 and img.meta["scale"] == 16
    assert len(img.meta["boxes"]) == cam.fields["n_clusters"]
    h = disp["clusters/cam0/integral"]
    assert (
        h.kind == "histogram"
        and h.arrays["counts"].sum() + h.meta["underflow"] + h.meta["overflow"]
        == s["cameras"]["cam0"]["clusters"]["total"]
    )
    assert len(h.arrays["edges"]) == len(h.arrays["counts"]) + 1
    sc = disp["clusters/cam0/length_integral"]
    assert sc.kind == "scatter" and len(sc.arrays["x"]) == len(sc.arrays["y"]) > 0


def test_summary_keys(tmp_path, gen):
    a = make(state_dir=tmp_path)
    *_, s = _pedestal_then_physics(a, gen, n_phys=3)
    cam = s["cameras"]["cam0"]
    for k in (
        "frames",
        "image",
        "boxes",
        "clusters",
        "fe55",
        "sparks",
        "hot_pixels",
        "pedestal",
        "alpha_rate_hz",
        "muon_rate_hz",
        "integral_histogram",
        "process_ms",
        "live_time_s",
    ):
        assert k in cam, k
    assert len(cam["boxes"]) == 9 and cam["frames"] == 3
    assert cam["live_time_s"] == pytest.approx(0.9)
    assert set(cam["clusters"]["by_class"]) == {"other", "fe55", "alpha", "muon"}
    assert cam["image"]["raw_mean"] == pytest.approx(100, abs=3)
    assert cam["image"]["ped_rms"] < 10
    # the summary is written as JSON by the host
    json.loads(json.dumps(s, allow_nan=False))


def test_spark_frame_is_flagged_and_not_clustered(tmp_path, gen):
    a = make(state_dir=tmp_path)
    _pedestal_then_physics(a, gen, n_phys=0)
    spark = np.full(gen.shape, 400, np.uint16)
    outs, _, s = feed(a, [frame(spark)], RunInfo(run=4, start_time_ns=T0, exposure_s=0.3))
    m = metric(outs[0], "camera")[0]
    assert m.fields["spark"] is True and m.fields["clustered"] is False
    assert s["cameras"]["cam0"]["sparks"]["count"] == 1


def test_bad_frame_raises_typed_message(gen):
    a = make()
    a.begin_run(RunInfo(run=1, start_time_ns=T0))
    with pytest.raises(ValueError, match="serial 0 bank CAM0"):
        a.process(frame(np.zeros((4, 4), np.float32)), {})


def test_shape_change_and_camera_filter(gen):
    a = make({"pedestal": {"estimate_frames": 2}, "cameras": ["cam0"]})
    a.begin_run(RunInfo(run=1, start_time_ns=T0))
    for i in range(3):
        a.process(frame(gen.pedestal_frame(), i), {})
    small = Gen((128, 128), seed=1)
    out = a.process(frame(small.pedestal_frame(), 3), {})
    assert metric(out, "camera")[0].fields["pedestal_source"] == "estimating"
    assert a.process(frame(gen.pedestal_frame(), 4, camera=1), {}) == []


def test_reconfigure_keeps_pedestal(tmp_path, gen):
    a = make(state_dir=tmp_path)
    _pedestal_then_physics(a, gen, n_phys=1)
    p = Params({"nsigma": 2.0}, "x")
    a.configure(p, AnalyzerEnv(state_dir=tmp_path))
    p.finish()
    out = a.process(frame(gen.frame(n_fe=2)[0], 9, run=2), {})
    m = metric(out, "camera")[0]
    assert m.fields["pedestal_source"] == "store" and m.fields["clustered"]


def test_cameras_concurrently_equal_sequential(tmp_path):
    gens = [Gen((256, 256), seed=20 + c) for c in range(2)]
    phys = [[frame(g.frame(n_fe=3)[0], i, camera=c) for i in range(4)] for c, g in enumerate(gens)]
    warm = [[frame(g.pedestal_frame(), i, camera=c) for i in range(3)] for c, g in enumerate(gens)]

    def run(concurrent: bool):
        a = make({"pedestal": {"estimate_frames": 3}})
        a.begin_run(RunInfo(run=1, start_time_ns=T0))
        results = {0: [], 1: []}
        barrier = threading.Barrier(2)

        def cam(c):
            barrier.wait() if concurrent else None
            for k, f in enumerate(warm[c] + phys[c]):
                if k == len(warm[c]):
                    # the estimate runs in the background: the first frame
                    # clustered live depends on when it ends, so wait for it
                    assert a.state(f"cam{c}").estimator.wait(60)
                flow = {}
                a.process(f, flow)
                results[c].append(flow["clusters"].features.copy())

        if concurrent:
            with ThreadPoolExecutor(2) as ex:
                list(ex.map(cam, [0, 1]))
        else:
            cam(0)
            cam(1)
        return results

    seq, par = run(False), run(True)
    for c in (0, 1):
        assert len(seq[c]) == len(par[c]) == 7
        for x, y in zip(seq[c], par[c], strict=True):
            np.testing.assert_array_equal(x, y)
    assert sum(len(x) for x in seq[0][3:]) >= 6


def test_warm_up_compiles_everything():
    assert warm_up_kernels() >= 0
    a = make()
    a.warm_up()


def test_fit_peak_recovers_gaussian():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(5000, 600, 800), rng.uniform(1500, 20000, 200)])
    edges = np.linspace(1500, 20000, 101)
    counts = np.histogram(x, edges)[0]
    r = fit_peak(counts, edges)
    assert r["ok"]
    assert r["mean"] == pytest.approx(5000, rel=0.02)
    assert r["sigma"] == pytest.approx(600, rel=0.1)
    assert not fit_peak(counts[:0], edges[:1])["ok"]
    assert fit_peak(np.zeros(100), edges)["reason"].startswith("fewer")


def test_frame_chain_matches_reference_pipeline(gen):
    raw, _ = gen.frame(n_fe=3, n_alpha=1)
    cfg = CameraConfig()
    ch = FrameChain(cfg, raw.shape, "cam0")
    ch.set_pedestal(PedestalMaps("cam0", gen.mean, gen.sigma, 1, 0, 0))
    res = ch.process(raw, run=1, serial=0, time_ns=0, source="store")
    ref = kref.process_frame(
        raw,
        gen.mean,
        threshold_map(gen.sigma, cfg.nsigma),
        clip=cfg.clip,
        acc=ch.acc,
        factor=cfg.rebin,
        nb_mean_min=cfg.nb_mean_min,
        min_count=cfg.nb_min_count,
        line_min=cfg.nb_line_min,
        eps=cfg.eps,
        min_samples=cfg.min_samples,
        boxes=ch.box_table,
        margin=cfg.integral_margin,
        directional=cfg.reference_directional(),
        extension=cfg.reference_extension(),
    )
    assert res.n_over_threshold == ref["n_zs"]
    np.testing.assert_allclose(res.clusters.features, ref["features"], rtol=1e-6, atol=1e-6)
    assert res.raw_mean == pytest.approx(ref["stats"]["raw_mean"])
    np.testing.assert_allclose(res.boxes[:, :3], ref["boxes"][:, :3], rtol=1e-6, atol=1e-6)
    # the box's pedestal-subtracted RMS comes from integer sums of raw -
    # rint(mean) corrected by the rounding's moments, the noise-rounding
    # covariance neglected (chain.ped_moments): ~1e-3 ADU on 170x170 px
    np.testing.assert_allclose(res.boxes[:, 3], ref["boxes"][:, 3], rtol=0, atol=0.02)


def test_read_only_frames_from_the_decoder(gen):
    # decoded images are read-only views of the event buffer
    a = make({"pedestal": {"estimate_frames": 2}})
    a.begin_run(RunInfo(run=1, start_time_ns=T0))
    srcs = []
    for i in range(3):
        img = gen.frame(n_fe=2)[0]
        img.setflags(write=False)
        flow = {}
        if i == 2:
            assert a.state("cam0").estimator.wait(60)
        out = a.process(frame(img, i), flow)
        srcs.append(metric(out, "camera")[0].fields["pedestal_source"])
    assert srcs == ["estimating", "estimating", "estimated"] and len(flow["clusters"]) >= 1


def test_unstored_pedestal_run_is_used_in_memory(gen):
    a = make({"pedestal": {"save": False}})
    s_ped, outs, _, s = _pedestal_then_physics(a, gen, n_phys=2)
    assert s_ped["cameras"]["cam0"]["pedestal_run"]["reason"] == "no pedestal store"
    m = metric(outs[0], "camera")[0]
    assert m.fields["pedestal_source"] == "store" and m.fields["clustered"]
    assert s["cameras"]["cam0"]["pedestal"]["run"] == 1


def test_occupancy_is_a_fraction_beside_the_gaussian_noise_expectation(tmp_path, gen):
    """Noise-only frames: the fraction over threshold (of the acceptance)
    sits at what Gaussian noise passes at nsigma (9.7 % at 1.3, slightly less
    after digitisation); a frame with tracks is well above it."""
    from cygno_online.analyzers.camera.chain import noise_fraction

    assert noise_fraction(1.3) == pytest.approx(0.0968, abs=1e-4)
    assert noise_fraction(3.0) == pytest.approx(0.00135, abs=1e-5)
    a = make({"acceptance": {"rows": [0, 128]}}, state_dir=tmp_path)
    ped = RunInfo(run=1, start_time_ns=T0, exposure_s=0.3, pedestal=True)
    # 40 frames: a short pedestal run underestimates sigma (ddof 0) and
    # raises the noise occupancy (12 frames: ~12.5 %)
    feed(a, [frame(gen.pedestal_frame(), i) for i in range(40)], ped)
    phys = RunInfo(run=2, start_time_ns=T0, exposure_s=0.3)
    noise = [frame(gen.pedestal_frame(), i, run=2) for i in range(3)]
    busy = frame(gen.frame(n_fe=0, n_alpha=4, margin=10)[0], 3, run=2)
    outs, _, _ = feed(a, [*noise, busy], phys)
    for o in outs[:3]:
        f = metric(o, "camera")[0].fields
        assert f["frac_over_threshold_noise"] == pytest.approx(0.0968, abs=1e-4)
        assert f["n_over_threshold"] / (128 * 256) == f["frac_over_threshold"]
        assert 0.08 < f["frac_over_threshold"] < 0.115, f["frac_over_threshold"]
    f = metric(outs[3], "camera")[0].fields
    assert f["frac_over_threshold"] > f["frac_over_threshold_noise"] + 0.01


def test_boxes_holding_a_cluster_are_named():
    # a 55Fe-like spot in the middle of box 4 and a track through boxes 0
    # and 1 of a 768x768 image (boxes: 256 px squares centred in a 3x3
    # grid); the pedestal check must know these boxes hold light this frame
    g = Gen((768, 768), seed=5)
    ch = FrameChain(CameraConfig(), g.shape, "cam0")
    ch.set_pedestal(PedestalMaps("cam0", g.mean, g.sigma, 1, 1, 0))
    img = g.pedestal_frame().astype(np.float64)
    sig = np.zeros(g.shape)
    g._add_gauss(sig, 384.0, 384.0, 3.0, 6000.0)
    g._add_line(sig, 128.0, 256.0, 300.0, 0.0, 2.0, 30.0 * 300)
    raw = np.clip(img + np.rint(sig), 0, 65535).astype(np.uint16)
    res = ch.process(raw, run=1, serial=1, time_ns=0, source="store")
    assert len(res.clusters) == 2
    assert ch.boxes_with_clusters(res.clusters) == [
        True, True, False, False, True, False, False, False, False
    ]  # fmt: skip
    empty = ch.process(g.pedestal_frame(), run=1, serial=2, time_ns=0, source="store")
    assert not any(ch.boxes_with_clusters(empty.clusters))
