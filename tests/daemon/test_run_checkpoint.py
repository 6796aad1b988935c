"""A run survives a daemon restart: the open run's state is checkpointed in
the state directory and resumed when the same run is still running; a
checkpoint of another run or a corrupt file is one log line and a fresh
start. The whole shipped analysis chain (camera with a stored pedestal, PMT,
slow control, DAQ health) on simulated LIME events, small and fast."""

from __future__ import annotations

import json
import logging
import pickle
import threading

import pytest

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.daemon.checkpoint import MAGIC, RunCheckpoint, run_checkpoint
from cygno_online.daemon.health import Health
from cygno_online.daemon.pipeline import Pipeline
from cygno_online.decode.runinfo import run_info_from_odb
from cygno_online.midas.event import parse_event
from cygno_online.params import Params
from cygno_online.simulate.run import Simulator
from cygno_online.sources.base import Source
from cygno_online.testing.waiting import wait_for

NTRIG = 24
SPLIT = 11  # triggers seen before the restart


class Quiet:
    def __init__(self):
        self.finished = []
        self.tail = []

    def run_started(self, run, outputs):
        pass

    def event_done(self, result, event, run):
        pass

    def run_outputs(self, run, outputs):
        self.tail.extend(outputs)

    def run_finished(self, run, summary):
        self.finished.append(summary)

    def periodic(self):
        pass

    def source_state(self, state, detail):
        pass

    def source_failed(self, exc):
        raise AssertionError(exc)

    def shutdown_requested(self):
        pass


class ListSource(Source):
    """Begin of run, the given events, end of run when ``end``: what the live
    source does for a run in progress at connect (run from the ODB)."""

    name = "midas"
    sampling = "nonblocking"
    endless = True
    lossless = True

    def __init__(self, run, events, *, end):
        self.info, self.events, self.end = run, events, end
        self.sent = threading.Event()

    def run(self, sink, stop):
        sink.begin_run(self.info)
        for ev in self.events:
            sink.event(ev, 1)
        if self.end:
            sink.end_run(self.info.start_time_ns + 10**12, complete=True)
        self.sent.set()
        stop.wait()


CONFIG = {
    "analyzers": [
        {"plugin": "daqhealth", "params": {"sampling": "simulator"}},
        # frames seen while the pedestal loads are kept (max_deferred) and
        # analysed once it is in: room for every frame of these small runs, so
        # that no frame's analysis depends on how long the load takes on a
        # loaded machine (beyond max_deferred a frame keeps raw statistics only)
        {"plugin": "camera", "params": {"pedestal": {"max_deferred": 2 * NTRIG}}},
        {"plugin": "pmt", "params": {"models": {1742: {"ttt_tick_ns": 8.0}}}},
        {"plugin": "slowcontrol"},
    ]
}


def chain_for(state_dir, pedestal=None):
    config = json.loads(json.dumps(CONFIG))
    config["analyzers"][1]["params"]["pedestal"].update(pedestal or {})
    return AnalysisChain.from_params(Params(config, ""), AnalyzerEnv(state_dir=state_dir))


def run_info(sim, experiment="LIME"):
    bor = parse_event(sim.bor(), source="midas")
    return run_info_from_odb(
        bor.odb(),
        run=sim.run,
        time_stamp=bor.header.time_stamp,
        source="midas",
        experiment=experiment,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A stored pedestal (the camera needs one, like in the experiment) and
    the events of one data run."""
    state = tmp_path_factory.mktemp("state")
    ped = Simulator("crop:256", seed=1, run=1, pedestal=True, sc_every_n_triggers=4)
    chain = chain_for(state)
    chain.begin_run(run_info(ped))
    for ev in ped.events(12):
        chain.process_event(parse_event(ev.data, source="sim"), run=1)
    assert chain.end_run()["camera"]["cameras"]["cam0"]["pedestal_run"]["stored"]
    chain.close()
    sim = Simulator("crop:256", seed=2, run=2, sc_every_n_triggers=4)
    info = run_info(sim)
    events = [parse_event(ev.data, source="sim") for ev in sim.events(NTRIG)]
    split = next(i for i, ev in enumerate(events) if ev.header.serial_number == SPLIT)
    return state, info, events, split


def run_part(state, info, events, out, *, end, checkpoint, quality=None, pedestal=None, rec=None):
    src = ListSource(info, events, end=end)
    rec = rec or Quiet()
    p = Pipeline(
        chain_for(state, pedestal),
        src,
        rec,
        Health(),
        summary_dir=out,
        checkpoint=checkpoint,
        checkpoint_every_s=3600,
        quality=quality,
    )
    p.start()
    wait_for(src.sent.is_set, timeout=120, what="events sent")
    if end:
        wait_for(lambda: rec.finished, timeout=120, what="summary")
    assert p.stop()  # the daemon's SIGTERM path: drain, checkpoint, part summary
    p.chain.close()
    return rec.finished[-1]


#: what differs between the parts of one run by construction
PART_KEYS = ("generated_ns", "part", "previous_parts", "covers_from_part", "counters_all_parts",
             "resumed")  # fmt: skip


def numbers(doc):
    """The whole summary but its part bookkeeping: what must be equal between
    an interrupted and an uninterrupted run."""
    doc = {k: v for k, v in doc.items() if k not in PART_KEYS}
    doc["counters"] = {k: v for k, v in doc["counters"].items() if k != "complete"}
    return _no_timings(json.loads(json.dumps(doc, sort_keys=True, default=str)))


def _no_timings(tree):
    # the analyzers' own processing times (wall clock) differ between any two runs
    if isinstance(tree, dict):
        return {k: _no_timings(v) for k, v in tree.items() if k != "process_ms"}
    return tree


def diff(a, b, path=""):
    """Paths where two JSON trees differ (a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    state, info, events, _ = data
    out = tmp_path_factory.mktemp("whole")
    return run_part(state, info, events, out, end=True, checkpoint=None)


def test_restart_in_mid_run_gives_the_numbers_of_an_uninterrupted_run(
    data, uninterrupted, tmp_path, caplog
):
    state, info, events, split = data
    ckpt = RunCheckpoint(tmp_path / "ckpt" / "run-checkpoint.bin")
    out = tmp_path / "summaries"
    first = run_part(state, info, events[:split], out, end=False, checkpoint=ckpt)
    assert first["counters"]["complete"] is False
    assert ckpt.path.exists()
    part1 = (out / "run00002-summary.json").read_text()
    with caplog.at_level(logging.INFO):
        final = run_part(state, info, events[split:], out, end=True, checkpoint=ckpt)
    assert "resumed from the checkpoint" in caplog.text
    assert (out / "run00002-summary.json").read_text() == part1  # never overwritten
    assert final["part"] == 2 and final["covers_from_part"] == 1
    assert final["resumed"]["analyzers_fresh"] == []
    assert sorted(final["resumed"]["analyzers_resumed"]) == [
        "camera",
        "daqhealth",
        "pmt",
        "slowcontrol",
    ]
    assert final["resumed"]["events_before_restart"] == split
    whole = numbers(uninterrupted)
    assert whole["counters"]["events_seen"] == len(events)
    cam = whole["cameras"]["cam0"]
    assert cam["images"] == NTRIG and cam["clusters_by_class"]["fe55"] > 0
    assert diff(numbers(final), whole) == []
    # the run totals over the parts are the run's, not part 1 counted twice
    assert final["counters_all_parts"]["events_seen"] == len(events)
    assert not ckpt.path.exists()  # the run ended: nothing left to resume


def test_checkpoint_of_another_run_is_ignored(data, uninterrupted, tmp_path, caplog):
    state, info, events, split = data
    ckpt = RunCheckpoint(tmp_path / "run-checkpoint.bin")
    out = tmp_path / "summaries"
    run_part(state, info, events[:split], out, end=False, checkpoint=ckpt)
    # the same run number, but a run started at another time (a new run 2
    # after a run-number reset, or a stale file): not this run
    other = run_info(Simulator("crop:256", seed=2, run=2, start_time=info.start_time_ns / 1e9 + 60))
    other.experiment = info.experiment
    out2 = tmp_path / "other"
    with caplog.at_level(logging.INFO):
        doc = run_part(state, other, events, out2, end=True, checkpoint=ckpt)
    lines = [r for r in caplog.records if "run checkpoint" in r.getMessage()]
    assert len(lines) == 1 and "ignoring the run checkpoint" in lines[0].getMessage()
    assert "started 2026-01-01 00:20:00 UTC" in lines[0].getMessage()  # which run it was
    assert "resumed" not in doc and not ckpt.path.exists()
    # a fresh start: this run's own events only, none of the other run's
    got, whole = numbers(doc), numbers(uninterrupted)
    assert got["counters"] == whole["counters"]
    for doc in (got, whole):
        doc["cameras"]["cam0"].pop("pedestal_age_days")  # the start times differ
    assert diff(got["cameras"], whole["cameras"]) == []


def test_corrupt_checkpoint_is_one_line_and_a_fresh_start(data, uninterrupted, tmp_path, caplog):
    state, info, events, _ = data
    ckpt = RunCheckpoint(tmp_path / "run-checkpoint.bin")
    out = tmp_path / "summaries"
    run_part(state, info, events[:3], out, end=False, checkpoint=ckpt)
    good = ckpt.path.read_bytes()
    for bad in (b"garbage", good[: len(good) // 2], b""):
        ckpt.path.write_bytes(bad)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            doc = run_part(
                state, info, events, tmp_path / f"s{len(bad)}", end=True, checkpoint=ckpt
            )
        errors = [r for r in caplog.records if "run checkpoint" in r.getMessage()]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert (
            str(ckpt.path) in errors[0].getMessage() and "starting fresh" in errors[0].getMessage()
        )
        assert "resumed" not in doc
        assert diff(numbers(doc), numbers(uninterrupted)) == []


def test_a_planted_checkpoint_cannot_run_code(tmp_path, caplog):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    path = tmp_path / "run-checkpoint.bin"
    path.write_bytes(MAGIC + pickle.dumps({"key": {}, "x": Evil()}))
    ckpt = RunCheckpoint(path)
    with caplog.at_level(logging.INFO):
        assert ckpt.load_for(run_info(Simulator("crop:256", seed=2, run=2))) is None
    assert "builtins.exec" in caplog.text
    assert not path.exists()


def test_an_analyzer_without_run_state_starts_fresh_and_says_so(data, tmp_path):
    from cygno_online.analysis.plugin import Analyzer
    from cygno_online.daemon.checkpoint import export_analyzers, import_analyzers

    class Plain(Analyzer):
        name = "plain"

    a = Plain()
    assert a.export_run_state() is None  # the safe default: not checkpointed
    _, info, _, _ = data
    resumed, fresh = import_analyzers([a], export_analyzers([a], 2), info)
    assert (resumed, fresh) == ([], ["plain"])


def test_daemon_checkpoints_into_its_state_dir(tmp_path):
    assert run_checkpoint(None) is None
    assert run_checkpoint(tmp_path).path == tmp_path / "run-checkpoint.bin"


def test_periodic_checkpoint_is_what_a_crash_resumes(data, uninterrupted, tmp_path):
    """No stop at all (SIGKILL, power): the last periodic checkpoint is
    resumed; here it was written after the last event before the 'crash'."""
    state, info, events, split = data
    ckpt = RunCheckpoint(tmp_path / "run-checkpoint.bin")
    src = ListSource(info, events[:split], end=False)
    p = Pipeline(chain_for(state), src, Quiet(), Health(), checkpoint=ckpt, checkpoint_every_s=0.01)
    p.start()
    wait_for(lambda: p.health.counters()["events_processed"] == split, timeout=120, what="events")
    wait_for(lambda: p._checkpointed_events == split, timeout=30, what="periodic checkpoint")
    crashed = ckpt.path.read_bytes()  # what a killed daemon leaves behind
    assert p.stop()
    p.chain.close()
    ckpt.path.write_bytes(crashed)
    final = run_part(state, info, events[split:], tmp_path / "s", end=True, checkpoint=ckpt)
    assert final["resumed"]["events_before_restart"] == split
    assert diff(numbers(final), numbers(uninterrupted)) == []


def test_checkpoint_period_is_configurable():
    from cygno_online.daemon.config import parse_config
    from cygno_online.errors import ConfigError

    cfg, _ = parse_config({"pipeline": {"checkpoint_every_s": 5}}, build_chain=False)
    assert cfg.pipeline.checkpoint_every_s == 5
    assert parse_config({}, build_chain=False)[0].pipeline.checkpoint_every_s == 60
    with pytest.raises(ConfigError, match=r"pipeline\.checkpoint_every_s"):
        parse_config({"pipeline": {"checkpoint_every_s": 0}}, build_chain=False)


def test_an_analyzer_that_cannot_export_costs_only_itself(data, caplog):
    from cygno_online.analysis.plugin import Analyzer
    from cygno_online.daemon.checkpoint import export_analyzers

    class Broken(Analyzer):
        name = "broken"
        run_state = ("lock",)

        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()  # not picklable

    class Fine(Analyzer):
        name = "fine"
        run_state = ("n",)
        n = 3

    with caplog.at_level(logging.INFO):
        for _ in range(3):  # periodic checkpoints: one line for the run
            out = export_analyzers([Broken(), Fine()], 99)
    assert list(out) == ["fine"]
    assert caplog.text.count("broken: cannot export its run state") == 1


def test_unwritable_checkpoint_is_one_line_until_it_works_again(data, tmp_path, caplog):
    _, info, _, _ = data
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    ckpt = RunCheckpoint(blocker / "run-checkpoint.bin")  # its parent is a file
    with caplog.at_level(logging.INFO):
        assert not ckpt.save(info, {"n": 1})
        assert not ckpt.save(info, {"n": 2})
        assert caplog.text.count("cannot write the run checkpoint") == 1
        blocker.unlink()
        assert ckpt.save(info, {"n": 3})
    assert "is written again" in caplog.text
    assert ckpt.stats() == {"written": 1, "write_errors": 2, "ok": True}
    assert ckpt.read()["n"] == 3


def test_run_quality_histograms_survive_a_restart(data, tmp_path, caplog):
    """The run-quality checks of a resumed run cover the whole run: their
    histograms travel in the checkpoint like the analyzers' state."""
    from cygno_online.quality.monitor import QualityConfig, RunQuality

    state, info, events, split = data
    whole = run_part(state, info, events, tmp_path / "whole", end=True, checkpoint=None,
                     quality=RunQuality(QualityConfig.default()))  # fmt: skip
    ckpt = RunCheckpoint(tmp_path / "ckpt" / "run-checkpoint.bin")
    out = tmp_path / "parts"
    run_part(state, info, events[:split], out, end=False, checkpoint=ckpt,
             quality=RunQuality(QualityConfig.default()))  # fmt: skip
    final = run_part(state, info, events[split:], out, end=True, checkpoint=ckpt,
                     quality=RunQuality(QualityConfig.default()))  # fmt: skip
    assert final["resumed"]["quality_resumed"] is True
    assert whole["histograms"]["image_rms"]["counts"]  # something was filled
    assert diff(numbers(final)["histograms"], numbers(whole)["histograms"]) == []
    assert [(c["name"], c["status"]) for c in final["checks"]] == [
        (c["name"], c["status"]) for c in whole["checks"]
    ]


def test_run_quality_refuses_histograms_of_another_configuration():
    from cygno_online.quality.book import HistogramSpec
    from cygno_online.quality.monitor import QualityConfig, RunQuality

    q = RunQuality(QualityConfig.default())
    exported = q.export_run_state()
    assert q.import_run_state(exported) is True
    assert q.import_run_state({"histograms": {"no_such_histogram": None}}) is False
    assert q.import_run_state("garbage") is False
    assert isinstance(q.book.specs[0], HistogramSpec)


# -- a restart while the pedestal is not there yet ----------------------------------
# The first frames of a run wait for their map (a stored one loading, or an
# estimate from the run's first frames). A restart then must not lose them:
# the checkpoint carries them and the resumed run analyses them with the map
# once it is in, as the uninterrupted run did. Each test holds the map back
# until the checkpoint is written, so the frames are certainly still waiting
# (no timing involved), then lets it go.


@pytest.fixture
def hold_until_checkpoint(monkeypatch):
    """``hold(module, name, path)``: calls of ``module.name`` wait until the
    file ``path`` exists (the stop checkpoint of part 1), then go on."""

    def hold(module, name, path):
        real = getattr(module, name)

        def held(*args, **kwargs):
            wait_for(path.exists, timeout=120, what=f"{path} before releasing {name}")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, held)

    return hold


def saved_pending(ckpt, info):
    from cygno_online.daemon.checkpoint import restricted_loads

    doc = ckpt.load_for(info)
    return restricted_loads(doc["analyzers"]["camera"]["state"])["cam0"]["pending"]


#: what depends on the time the analysis took, not on the events: the
#: estimate's duration and how many frames came while it ran
TIMING = ("estimate_s", "frames_analysed_late")


def without_timing(doc):
    def strip(tree):
        if isinstance(tree, dict):
            return {k: strip(v) for k, v in tree.items() if k not in TIMING}
        return tree

    return strip(numbers(doc))


def test_restart_while_the_stored_pedestal_loads_keeps_the_waiting_frames(
    data, uninterrupted, tmp_path, hold_until_checkpoint
):
    from cygno_online.analyzers.camera.pedestals import PedestalStore

    state, info, events, split = data
    ckpt = RunCheckpoint(tmp_path / "ckpt" / "run-checkpoint.bin")
    hold_until_checkpoint(PedestalStore, "load", ckpt.path)
    out = tmp_path / "summaries"
    first = run_part(state, info, events[:split], out, end=False, checkpoint=ckpt)
    frames = first["sections"]["camera"]["cameras"]["cam0"]["frames"]
    pending = saved_pending(ckpt, info)
    # every frame of part 1 was still waiting for the map at the checkpoint
    assert frames > 0 and len(pending["frames"]) == frames and pending["estimate"] is None
    final = run_part(state, info, events[split:], out, end=True, checkpoint=ckpt)
    assert diff(numbers(final), numbers(uninterrupted)) == []


@pytest.mark.parametrize("estimate_frames", [5, SPLIT + 3])
def test_restart_while_the_pedestal_is_estimated_keeps_its_frames(
    data, tmp_path, hold_until_checkpoint, estimate_frames, tmp_path_factory
):
    """5: the estimate was computing at the checkpoint (held), the resumed
    run computes it again from the same frames; SPLIT + 3: it was still
    collecting its frames, the resumed run goes on collecting."""
    from cygno_online.analyzers.camera import pedestals

    _, info, events, split = data
    state = tmp_path / "state"
    ped = {"estimate_frames": estimate_frames}
    whole = run_part(
        state, info, events, tmp_path / "whole", end=True, checkpoint=None, pedestal=ped
    )
    ckpt = RunCheckpoint(tmp_path / "ckpt" / "run-checkpoint.bin")
    hold_until_checkpoint(pedestals.kn, "pedestal_estimate", ckpt.path)
    out = tmp_path / "summaries"
    first = run_part(state, info, events[:split], out, end=False, checkpoint=ckpt, pedestal=ped)
    frames = first["sections"]["camera"]["cameras"]["cam0"]["frames"]
    pending = saved_pending(ckpt, info)
    assert len(pending["frames"]) == frames
    assert len(pending["estimate"]) == min(frames, estimate_frames)
    assert pending["estimate_started"] is (frames >= estimate_frames)
    final = run_part(state, info, events[split:], out, end=True, checkpoint=ckpt, pedestal=ped)
    cam = final["sections"]["camera"]["cameras"]["cam0"]
    assert cam["pedestal"]["source"] == "estimated"
    assert cam["pedestal"]["n_frames"] == estimate_frames
    # every frame clustered but the spark-vetoed one, none left without pedestal
    assert cam["frames"] == NTRIG and cam["clusters"]["frames_without_pedestal"] == 0
    assert cam["clusters"]["frames_clustered"] == NTRIG - cam["sparks"]["count"]
    assert diff(without_timing(final), without_timing(whole)) == []


def test_frames_waiting_at_the_end_of_the_run_are_published(data, tmp_path, monkeypatch):
    """The map comes in only when the run ends: the frames kept meanwhile are
    analysed at the end of the run and their points go out (run_outputs,
    then the summary) with their own events' point times, like those of any
    event."""
    from cygno_online.analyzers.camera import CameraAnalyzer
    from cygno_online.analyzers.camera.pedestals import PedestalStore

    from cygno_online.analysis.outputs import Metric

    state, info, events, _ = data
    ending = threading.Event()
    real_load, real_finish = PedestalStore.load, CameraAnalyzer.finish_run

    def held(self, entry):  # the load is held until the run ends
        assert ending.wait(120), "the run never ended"
        return real_load(self, entry)

    def finish(self, run):
        ending.set()
        return real_finish(self, run)

    monkeypatch.setattr(PedestalStore, "load", held)
    monkeypatch.setattr(CameraAnalyzer, "finish_run", finish)
    rec = Quiet()
    part = events[:8]
    doc = run_part(state, info, part, tmp_path / "s", end=True, checkpoint=None, rec=rec)
    late = [o for o in rec.tail if isinstance(o, Metric) and o.family == "camera"]
    frames = {ev.header.serial_number for ev in part if ev.header.event_id == 1}
    assert {m.serial for m in late} == frames and len(late) == len(frames) > 0
    assert all(m.fields["analysed_late"] and m.fields["pedestal_source"] == "store" for m in late)
    # each at the point time of its own event (not its raw event time)
    assert all(m.time_ns % 10**9 != 0 for m in late), [m.time_ns for m in late]
    cam = doc["sections"]["camera"]["cameras"]["cam0"]
    assert cam["clusters"]["frames_without_pedestal"] == 0


def test_restart_while_loading_a_map_that_is_gone_then_estimates_from_the_kept_frames(
    data, tmp_path, hold_until_checkpoint
):
    import shutil

    from cygno_online.analyzers.camera.pedestals import PedestalStore

    shared, info, events, split = data
    state = tmp_path / "state"
    shutil.copytree(shared, state)
    ckpt = RunCheckpoint(tmp_path / "ckpt" / "run-checkpoint.bin")
    hold_until_checkpoint(PedestalStore, "load", ckpt.path)
    out = tmp_path / "summaries"
    ped = {"estimate_frames": 5}
    run_part(state, info, events[:split], out, end=False, checkpoint=ckpt, pedestal=ped)
    assert len(saved_pending(ckpt, info)["frames"]) > 0
    for f in (state / "pedestals").iterdir():
        f.unlink()  # the map is gone when the daemon comes back
    final = run_part(state, info, events[split:], out, end=True, checkpoint=ckpt, pedestal=ped)
    cam = final["sections"]["camera"]["cameras"]["cam0"]
    assert cam["pedestal"]["source"] == "estimated" and cam["pedestal"]["run"] == 2
    assert cam["frames"] == NTRIG and cam["clusters"]["frames_without_pedestal"] == 0
    assert cam["clusters"]["frames_clustered"] == NTRIG - cam["sparks"]["count"]
    assert cam["clusters"]["frames_analysed_late"] >= 5
