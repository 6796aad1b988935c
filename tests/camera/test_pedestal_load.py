"""Stored pedestals without a first-event stall: the integer cut maps are
derived once per map (and nsigma) and reused across runs, and a map that has
to be read from the store is loaded and derived in the background (started
at begin_run when the camera's shape is known) while the frames meanwhile are
kept and analysed with it once it is in - none waits, none is dropped."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from camera_framegen import Gen
from cygno_online.analyzers.camera import CameraAnalyzer
from cygno_online.analyzers.camera import chain as chain_mod
from cygno_online.analyzers.camera.chain import CameraConfig, FrameChain
from cygno_online.analyzers.camera.pedestals import PedestalMaps, PedestalStore

from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.decode.items import CameraFrame, EventContext, RunInfo
from cygno_online.params import Params

T0 = 1_767_000_000 * 10**9
DAY = 86400 * 10**9


@pytest.fixture(scope="module")
def gen() -> Gen:
    return Gen((128, 128), seed=5)


@pytest.fixture
def cut_calls(monkeypatch):
    """Count the derivations of threshold cuts (0.4 s CPU each on Quest)."""
    calls = []
    real = chain_mod.kn.threshold_cut

    def counted(mean, thr):
        calls.append(mean.shape)
        return real(mean, thr)

    monkeypatch.setattr(chain_mod.kn, "threshold_cut", counted)
    return calls


@pytest.fixture
def held_load(monkeypatch):
    """Hold every store load until the test opens the gate (a compressed
    Quest map on a busy machine takes seconds)."""
    gate = threading.Event()
    started = threading.Event()
    real = PedestalStore.load

    def held(self, entry):
        started.set()
        assert gate.wait(60), "test never opened the gate"
        return real(self, entry)

    monkeypatch.setattr(PedestalStore, "load", held)
    gate.started = started
    yield gate
    gate.set()


def make(state_dir, params=None) -> CameraAnalyzer:
    a = CameraAnalyzer()
    p = Params(params or {}, "analyzers[0].params")
    a.configure(p, AnalyzerEnv(state_dir=state_dir))
    p.finish()
    return a


def frame(img, serial, run) -> CameraFrame:
    return CameraFrame(EventContext(run, serial, 1, 0, T0 + DAY + serial * 10**9), 0, "CAM0", img)


def maps_of(gen, run=1) -> PedestalMaps:
    return PedestalMaps("cam0", gen.mean.copy(), gen.sigma.copy(), 50, run, T0, 0.3)


def cam_metrics(outs):
    return [o for o in outs if isinstance(o, Metric) and o.family == "camera"]


def phys(run) -> RunInfo:
    return RunInfo(run=run, start_time_ns=T0 + DAY, exposure_s=0.3)


def test_cuts_are_derived_once_per_map_and_nsigma(gen, cut_calls):
    maps = maps_of(gen)
    cfg = CameraConfig()
    a = FrameChain(cfg, gen.shape, "cam0")
    a.set_pedestal(maps)
    assert len(cut_calls) == 2  # the zero-suppression cut and the hot cut
    a.set_pedestal(None)
    a.set_pedestal(maps)
    FrameChain(cfg, gen.shape, "cam0").set_pedestal(maps)
    assert len(cut_calls) == 2
    b = FrameChain(CameraConfig(nsigma=2.0), gen.shape, "cam0")
    b.set_pedestal(maps)
    assert len(cut_calls) == 4
    # a copy of the map is another map: derived afresh, with the same result
    c = FrameChain(cfg, gen.shape, "cam0")
    c.set_pedestal(maps_of(gen))
    assert len(cut_calls) == 6
    np.testing.assert_array_equal(c.cut, a.cut)
    np.testing.assert_array_equal(c.mean_q, a.mean_q)
    assert b.cut is not a.cut and not np.array_equal(b.cut, a.cut)


def test_next_run_with_the_same_map_derives_nothing(tmp_path, gen, cut_calls):
    PedestalStore(tmp_path / "pedestals").save(maps_of(gen))
    a = make(tmp_path)
    srcs = []
    for run in (2, 3, 4):
        a.begin_run(phys(run))
        outs = [a.process(frame(gen.frame(n_fe=2)[0], i, run), {}) for i in range(2)]
        srcs.append([cam_metrics(o)[0].fields["pedestal_source"] for o in outs])
        s = a.end_run(phys(run))["cameras"]["cam0"]
        assert s["clusters"]["frames_clustered"] == 2 and s["pedestal"]["source"] == "store"
    # the first run loads the map in the background (its first frame may be
    # kept meanwhile); the next ones reuse the map and its cuts from frame 0
    assert srcs[1:] == [["store", "store"]] * 2
    assert len(cut_calls) == 2


def test_a_stored_map_loads_in_the_background_and_no_frame_waits(tmp_path, gen, held_load):
    PedestalStore(tmp_path / "pedestals").save(maps_of(gen))
    a = make(tmp_path, {"pedestal": {"max_deferred": 4}})
    run = phys(2)
    a.begin_run(run)
    fr = [frame(gen.frame(n_fe=2)[0], i, 2) for i in range(7)]
    outs = [a.process(f, {}) for f in fr[:6]]  # would hang if the load were inline
    assert held_load.started.is_set()
    srcs = [cam_metrics(o)[0].fields["pedestal_source"] for o in outs]
    assert srcs == ["loading"] * 6
    held_load.set()
    assert a.state("cam0").loader.wait(60)
    ms = cam_metrics(a.process(fr[6], {}))
    # the 4 frames kept while loading (max_deferred), then the live one
    assert [m.serial for m in ms] == [0, 1, 2, 3, 6]
    assert all(m.fields["clustered"] and m.fields["pedestal_source"] == "store" for m in ms)
    assert all(m.fields["analysed_late"] for m in ms[:-1])
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["frames"] == 7 and s["clusters"]["frames_clustered"] == 5
    # analysed with the map they would have had at once: not "late" (so a
    # summary does not depend on how long the load took); the 2 frames over
    # max_deferred kept their raw statistics only and count as without
    assert s["clusters"]["frames_analysed_late"] == 0
    assert s["clusters"]["frames_without_pedestal"] == 2
    assert s["pedestal"]["frames_over_max_deferred"] == 2
    assert s["pedestal"]["source"] == "store"


def test_a_new_map_is_loaded_ahead_of_the_first_frame(tmp_path, gen, held_load):
    store = PedestalStore(tmp_path / "pedestals")
    store.save(maps_of(gen, run=1))
    a = make(tmp_path)
    held_load.set()
    a.begin_run(phys(2))
    assert a.state("cam0").pedestal_checked is False  # shape unknown before a frame
    a.process(frame(gen.frame(n_fe=1)[0], 0, 2), {})
    # the load is released, so it may already be installed by that frame
    ld = a.state("cam0").loader
    assert ld is None or ld.wait(60)
    a.end_run(phys(2))
    # a new pedestal run elsewhere: the next run starts loading it at begin_run
    store.save(PedestalMaps("cam0", gen.mean + 1, gen.sigma, 50, 5, T0 + 1, 0.3))
    held_load.clear()
    held_load.started.clear()
    a.begin_run(phys(3))
    assert held_load.started.wait(60) and a.state("cam0").loader is not None
    held_load.set()
    assert a.state("cam0").loader.wait(60)
    ms = cam_metrics(a.process(frame(gen.frame(n_fe=1)[0], 0, 3), {}))
    assert [m.fields["pedestal_map_run"] for m in ms] == [5]
    assert "analysed_late" not in ms[0].fields
    s = a.end_run(phys(3))["cameras"]["cam0"]
    assert s["clusters"]["frames_without_pedestal"] == 0 and s["pedestal"]["run"] == 5


def test_an_unreadable_map_falls_back_to_the_estimate(tmp_path, gen, monkeypatch):
    PedestalStore(tmp_path / "pedestals").save(maps_of(gen))

    def broken(self, entry):
        raise OSError("truncated npz")

    monkeypatch.setattr(PedestalStore, "load", broken)
    a = make(tmp_path, {"pedestal": {"estimate_frames": 3}})
    run = phys(2)
    a.begin_run(run)
    for i in range(5):
        a.process(frame(gen.frame(n_fe=1)[0], i, 2), {})
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["pedestal"]["source"] == "estimated"
    assert s["frames"] == 5 and s["clusters"]["frames_clustered"] == 5
    assert s["clusters"]["frames_without_pedestal"] == 0


def test_frames_kept_while_a_map_failed_to_load_make_the_estimate(tmp_path, gen, monkeypatch):
    """A slow load that then fails: the frames kept meanwhile are the
    estimate's frames, so the estimate (and every result) is the one of a run
    without any map, however long the failed load took."""
    PedestalStore(tmp_path / "pedestals").save(maps_of(gen))
    gate = threading.Event()

    def slow_then_broken(self, entry):
        assert gate.wait(60), "test never opened the gate"
        raise OSError("truncated npz")

    monkeypatch.setattr(PedestalStore, "load", slow_then_broken)
    fr = [frame(gen.frame(n_fe=2)[0], i, 2) for i in range(8)]
    ped = {"pedestal": {"estimate_frames": 3}}
    summaries = []
    for state_dir, held_for in ((tmp_path, 4), (tmp_path, 1), (None, 0)):
        a = make(state_dir, ped)
        run = phys(2)
        a.begin_run(run)
        gate.clear()
        for k, f in enumerate(fr):
            if k == held_for:
                gate.set()
                if a.state("cam0").loader is not None:
                    assert a.state("cam0").loader.wait(60)
            a.process(f, {})
        summaries.append(a.end_run(run)["cameras"]["cam0"])
    for s in summaries:
        assert s["pedestal"]["source"] == "estimated" and s["clusters"]["frames_clustered"] == 8
        assert s["clusters"]["frames_without_pedestal"] == 0
    keys = ("mean_of_means", "mean_sigma", "outlier_pixels")
    assert len({tuple(s["pedestal"][k] for k in keys) for s in summaries}) == 1
    assert len({json.dumps(s["clusters"]["by_class"]) for s in summaries}) == 1
