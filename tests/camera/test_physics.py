"""Physics on simulator truth: efficiency, fakes, 55Fe scale, LIME/Quest shapes."""

from __future__ import annotations

import numpy as np
import pytest
from cygno_online.analyzers.camera import CameraAnalyzer
from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain
from cygno_online.analyzers.camera.classify import ALPHA, FE55
from cygno_online.analyzers.camera.pedestals import PedestalMaps

from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.decode.items import CameraFrame, EventContext, RunInfo
from cygno_online.params import Params
from cygno_online.simulate.run import Simulator


def analyzer(tmp_path, params=None) -> CameraAnalyzer:
    a = CameraAnalyzer()
    p = Params(params or {}, "analyzers[0].params")
    a.configure(p, AnalyzerEnv(state_dir=tmp_path))
    p.finish()
    return a


def run_sim(a: CameraAnalyzer, sim: Simulator, n: int):
    """Feed ``n`` trigger events; returns ([(truth objects, ClusterTable) per
    camera frame], summary)."""
    info = RunInfo(
        run=sim.run,
        start_time_ns=sim.start_time_ns,
        exposure_s=sim.exposure_s,
        pedestal=sim.pedestal,
    )
    a.begin_run(info)
    frames = []
    for s in range(n):
        trig = sim.trigger(s)
        for c, img in enumerate(trig.images):
            flow: dict = {}
            a.process(
                CameraFrame(EventContext(sim.run, s, 1, 0, trig.time_ns), c, f"CAM{c}", img), flow
            )
            objs = [o for o in trig.truth.objects if o.camera == c]
            frames.append((objs, flow["clusters"], flow["camera"]))
    return frames, a.end_run(info)


def _overlaps(a, b, pad=0) -> bool:
    return not (
        a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1]
    )


def efficiency(frames, kind: str, shape=(512, 512), acc_rows=None, edge=12):
    """(found, total, correctly classified) over isolated objects of ``kind``
    whose truth box lies inside the image (and the acceptance rows) by
    ``edge`` px: an object is found when a cluster barycentre lies inside its
    truth box (+4 px)."""
    found = total = good = 0
    want = {"fe55": FE55, "alpha": ALPHA}[kind]
    lo, hi = acc_rows if acc_rows is not None else (0, shape[0])
    for objs, table, info in frames:
        if info["spark"]:
            continue
        rows = table.column("row")
        cols = table.column("col")
        for o in objs:
            if o.kind != kind:
                continue
            r0, c0, r1, c1 = o.bbox
            if any(_overlaps(o.bbox, p.bbox, 8) for p in objs if p is not o):
                continue
            if not (lo + edge <= r0 and r1 <= hi - edge and edge <= c0 and c1 <= shape[1] - edge):
                continue
            total += 1
            inside = (rows >= r0 - 4) & (rows < r1 + 4) & (cols >= c0 - 4) & (cols < c1 + 4)
            if inside.any():
                found += 1
                good += int((table.classes[inside] == want).any())
    return found, total, good


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crop")
    a = analyzer(tmp)
    ped = Simulator("crop:512", seed=1, run=1, pedestal=True, pmt=False)
    _, s_ped = run_sim(a, ped, 20)
    assert s_ped["cameras"]["cam0"]["pedestal_run"]["stored"]
    sim = Simulator("crop:512", seed=2, run=2, pmt=False)
    frames, summary = run_sim(a, sim, 150)
    return a, frames, summary, sim


def test_fe55_and_alpha_are_found(crop_run):
    _, frames, _, _ = crop_run
    f, t, g = efficiency(frames, "fe55")
    assert t >= 200 and f / t >= 0.95, (f, t)
    assert g / f >= 0.9, (g, f)
    f, t, g = efficiency(frames, "alpha")
    assert t >= 10 and f / t >= 0.95, (f, t)
    assert g / f >= 0.9, (g, f)


def test_fe55_peak_matches_injected(crop_run):
    _, frames, summary, sim = crop_run
    fit = summary["cameras"]["cam0"]["fe55"]["fit"]
    assert fit["ok"], fit
    injected = np.mean([o.integral for objs, _, _ in frames for o in objs if o.kind == "fe55"])
    assert injected == pytest.approx(sim.rates.fe55_integral, rel=0.05)
    assert fit["mean"] == pytest.approx(injected, rel=0.05), (fit, injected)


def test_pedestal_only_frames_have_few_fakes(crop_run, tmp_path):
    a, *_ = crop_run
    # HV-off frames analysed as physics with the stored pedestal of the module run
    sim = Simulator("crop:512", seed=9, run=3, pedestal=True, pmt=False)
    info = RunInfo(run=3, start_time_ns=sim.start_time_ns + 10**9, exposure_s=0.3, pedestal=False)
    a.begin_run(info)
    n_cl = 0
    n = 60
    for s in range(n):
        trig = sim.trigger(s)
        flow: dict = {}
        a.process(
            CameraFrame(EventContext(3, s, 1, 0, trig.time_ns), 0, "CAM0", trig.images[0]), flow
        )
        assert flow["camera"]["clustered"]
        n_cl += len(flow["clusters"])
    assert n_cl / n < 0.1, n_cl
    summ = a.end_run(info)["cameras"]["cam0"]
    assert summ["pedestal"]["source"] == "store"
    assert summ["hot_pixels"]["max"] == 0


def test_sparks_are_vetoed(tmp_path):
    from cygno_online.simulate.camera import Rates

    a = analyzer(tmp_path, {"pedestal": {"estimate_frames": 4}})
    sim = Simulator("crop:256", seed=4, run=5, pmt=False, rates=Rates(spark=0.3))
    frames, _ = run_sim(a, sim, 24)
    truth = [any(o.kind == "spark" for o in objs) for objs, _, _ in frames[4:]]
    flagged = [info["spark"] for _, _, info in frames[4:]]
    assert any(truth) and truth == flagged


def test_lime_frame(tmp_path):
    """Full-size LIME frames: pedestal run, then physics; 55Fe spots inside
    the acceptance are found, nothing outside the acceptance is clustered."""
    a = analyzer(tmp_path)
    ped = Simulator("lime", seed=1, run=1, pedestal=True, pmt=False)
    run_sim(a, ped, 10)
    sim = Simulator("lime", seed=3, run=2, pmt=False)
    frames, summary = run_sim(a, sim, 3)
    f, t, _ = efficiency(frames, "fe55", shape=(2304, 2304), acc_rows=(304, 2054))
    assert t >= 3 and f == t
    for _, table, _ in frames:
        rows = table.column("row")
        assert ((rows >= 304 - 4) & (rows < 2054 + 4)).all()
    assert summary["cameras"]["cam0"]["acceptance"] == [304, 2054, 0, 2304]


def test_quest_frame_with_truth_maps():
    """A CYGNO-04 (Quest 2304x4096) frame through the chain with the
    simulator's own maps: spots found, whole image accepted."""
    sim = Simulator("cygno04", seed=5, run=1, pmt=False, cameras=1)
    trig = sim.trigger(0)
    raw = trig.images[0]
    assert raw.shape == (2304, 4096)
    sigma = np.sqrt(sim.noise_map(0) ** 2 + 1 / 12).astype(np.float32)
    ch = FrameChain(CameraConfig(), raw.shape, "cam0")
    ch.set_pedestal(PedestalMaps("cam0", sim.pedestal_map(0), sigma, 1, 1, 0))
    res = ch.process(raw, run=1, serial=0, time_ns=0, source="store")
    assert ch.acc == (0, 2304, 0, 4096) and ch.rebinned.shape == (576, 1024)
    frames = [([o for o in trig.truth.objects], res.clusters, {"spark": res.spark})]
    f, t, _ = efficiency(frames, "fe55", shape=(2304, 4096))
    assert t >= 1 and f == t
