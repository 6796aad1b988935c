"""Pedestal estimation without lost frames: the estimate runs in the
background, live frames go on being analysed (never blocked, never dropped),
and the frames seen meanwhile are analysed with the map once it exists."""

from __future__ import annotations

import threading

import pytest
from camera_framegen import Gen
from cygno_online.analyzers.camera import CameraAnalyzer
from cygno_online.analyzers.camera import pedestals as ped_mod

from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.daemon.pipeline import EventQueue, QItem
from cygno_online.decode.items import CameraFrame, EventContext, RunInfo
from cygno_online.params import Params
from cygno_online.testing.waiting import wait_for

T0 = 1_767_000_000 * 10**9


@pytest.fixture
def gate(monkeypatch):
    """Hold every pedestal estimate until the test opens the gate (a slow
    estimate on a busy machine, made as slow as the test wants)."""
    gate = threading.Event()
    started = threading.Event()
    real = ped_mod.kn.pedestal_estimate

    def held(stack, clip, spread):
        started.set()
        assert gate.wait(60), "test never opened the gate"
        return real(stack, clip, spread)

    monkeypatch.setattr(ped_mod.kn, "pedestal_estimate", held)
    gate.started = started
    yield gate
    gate.set()


def make(params) -> CameraAnalyzer:
    a = CameraAnalyzer()
    p = Params(params, "analyzers[0].params")
    a.configure(p, AnalyzerEnv(state_dir=None))
    p.finish()
    return a


def frames(n, seed=3):
    g = Gen((256, 256), seed=seed)
    return [
        CameraFrame(EventContext(7, i, 1, 0, T0 + i * 10**9), 0, "CAM0", g.frame(n_fe=2)[0])
        for i in range(n)
    ]


def run_waiting_on_the_estimate(gate, n):
    """A run whose estimate (3 frames) is held while ``n`` frames come, then
    let go: the analyzer and the run, for the end of the run."""
    a = make({"pedestal": {"estimate_frames": 3}})
    run = RunInfo(run=7, start_time_ns=T0, exposure_s=0.3)
    a.begin_run(run)
    for f in frames(n):
        a.process(f, {})
    gate.set()
    return a, run


def cam_metrics(outs):
    return [o for o in outs if isinstance(o, Metric) and o.family == "camera"]


def test_live_frames_are_analysed_while_the_estimate_runs(gate):
    a = make({"pedestal": {"estimate_frames": 4, "max_deferred": 3}})
    run = RunInfo(run=7, start_time_ns=T0, exposure_s=0.3)
    a.begin_run(run)
    fr = frames(10)
    outs = []
    for f in fr[:9]:
        # every call returns while the estimate is held (it would hang here
        # if the estimate ran in the analysis thread)
        outs.append(a.process(f, {}))
    assert gate.started.is_set()
    assert all(cam_metrics(o)[0].fields["pedestal_source"] == "estimating" for o in outs)
    gate.set()
    assert a.state("cam0").estimator.wait(60)
    last = a.process(fr[9], {})
    ms = cam_metrics(last)
    # 4 frames of the estimate + 3 kept while it ran, then the live frame
    assert [m.serial for m in ms] == [0, 1, 2, 3, 4, 5, 6, 9]
    assert all(m.fields["clustered"] for m in ms)
    assert all(m.fields["analysed_late"] for m in ms[:-1])
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["frames"] == 10
    assert s["clusters"]["frames_analysed_late"] == 7
    # frames 7 and 8 came beyond max_deferred: raw statistics only, counted
    assert s["clusters"]["frames_without_pedestal"] == 2
    assert s["pedestal"]["frames_over_max_deferred"] == 2
    assert s["clusters"]["frames_clustered"] == 8


def test_end_of_run_waits_for_the_estimate_and_counts_the_frames(gate):
    a, run = run_waiting_on_the_estimate(gate, 5)
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["clusters"]["frames_analysed_late"] == 5
    assert s["clusters"]["frames_without_pedestal"] == 0
    assert s["pedestal"]["source"] == "estimated"


def test_zero_drops_at_run_start_through_a_bounded_live_queue(gate):
    """The daemon's newest-wins queue (4 events) between a camera that makes
    a frame when the analysis is at most 3 behind (or after 5 s anyway, as a
    real camera would) and the analysis thread: with the estimate held for
    the whole start of the run, nothing is dropped."""
    a = make({"pedestal": {"estimate_frames": 5}})
    run = RunInfo(run=7, start_time_ns=T0, exposure_s=0.3)
    a.begin_run(run)
    q = EventQueue(4)
    fr = frames(12)
    done = []
    cond = threading.Condition()
    outs = []

    def analysis():
        while True:
            item = q.get(1.0)
            if item is None:
                continue
            if item.kind == "stop":
                return
            outs.append(a.process(item.payload, {}))
            with cond:
                done.append(item.payload.ctx.serial)
                cond.notify_all()

    t = threading.Thread(target=analysis, daemon=True)
    t.start()
    dropped = 0
    for k, f in enumerate(fr[:10]):
        with cond:
            cond.wait_for(lambda k=k: len(done) >= k - 3, timeout=5.0)
        dropped += q.put_event(QItem("event", f)) is not None
    with cond:
        assert cond.wait_for(lambda: len(done) == 10, timeout=30.0)
    assert not a.state("cam0").estimator.ready()  # still held: 10 frames went by
    gate.set()
    wait_for(lambda: a.state("cam0").estimator.ready(), what="estimate")
    for f in fr[10:]:
        dropped += q.put_event(QItem("event", f)) is not None
    q.put_control(QItem("stop"))
    t.join(30)
    assert dropped == 0
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["frames"] == 12
    assert s["clusters"]["frames_clustered"] == 12
    assert s["clusters"]["frames_analysed_late"] == 10
    assert s["clusters"]["frames_without_pedestal"] == 0


def test_frames_still_waiting_at_the_end_of_the_run_are_published(gate):
    """The run ends before the estimate is in: finish_run waits for it and
    returns the frames' analysis (points, displays) for the host to publish,
    so the run's points do not depend on how long the estimate took."""
    a, run = run_waiting_on_the_estimate(gate, 5)
    ms = cam_metrics(a.finish_run(run))
    assert [m.serial for m in ms] == [0, 1, 2, 3, 4]
    assert all(m.fields["clustered"] and m.fields["analysed_late"] for m in ms)
    s = a.end_run(run)["cameras"]["cam0"]
    assert s["clusters"]["frames_clustered"] == 5 and s["clusters"]["frames_without_pedestal"] == 0
