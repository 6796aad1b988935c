"""Runs tab, issue 14: a run compared with its reference run - the run its
quality checks used, else the latest good run of the same type and exposure
- which the daemon looks up in its run registry (control command
``reference``, answered off the publisher thread)."""

from __future__ import annotations

import json

from fakedata import NOW_NS, RUN_START_NS, make_source, summary_doc
from helpers import run_app, screen_text

from cygno_online.daemon.runlookup import MAX_ROW_BYTES, ReferenceLookup
from cygno_online.publish.control import ControlServer
from cygno_online.sinks.registry import RunRegistry
from cygno_online.tui.screens.runs import RunSummaryScreen, latest_good_local, reference_request

H = 600 * 10**9


def registry_with_runs(tmp_path) -> RunRegistry:
    """Older runs than the viewer's summaries: a good 55Fe run (the automatic
    reference), a flagged one after it, a pedestal run, another exposure."""
    reg = RunRegistry(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    base = RUN_START_NS - 20 * H
    # the real summaries carry the per-camera block the registry reads too
    cams = {"cameras": {"cam0": {"fe55_peak": 7150.0, "fe55_width": 850.0}}}
    reg.record(summary_doc(42880, base, camera={"fe55_peak": 7150.0}, **cams))
    reg.record(
        summary_doc(
            42881,
            base + H,
            quality_flags=[{"flag": "spark_rate_high", "reason": "x", "severity": "warning"}],
        )
    )
    reg.record(summary_doc(42882, base + 2 * H, pedestal=True))
    reg.record(summary_doc(42883, base + 3 * H, exposure_s=0.5))
    return reg


class AskingSource:
    """A FakeSource whose control requests go through the daemon's own
    control dispatch and reference lookup (lookups run at once)."""

    def __init__(self, src, lookup: ReferenceLookup) -> None:
        self._src = src
        self._control = ControlServer(None, {"reference": lookup.command})
        self.asked: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._src, name)

    def query(self, cmd: str, timeout_s: float = 3.0, **args):
        self.asked.append({"cmd": cmd, **args})
        return json.loads(json.dumps(self._control.answer({"cmd": cmd, **args}), default=str))


def test_lookup_finds_the_latest_good_run_of_the_same_type_and_exposure(tmp_path):
    lookup = ReferenceLookup(registry_with_runs(tmp_path), submit=lambda fn: fn())
    got = lookup.command({"run": 42900, "run_type": "DATA:Fe", "exposure_s": 0.3})
    row = got["reference"]
    # not the flagged 42881, the pedestal 42882 or the 0.5 s run 42883
    assert row["run"] == 42880 and row["fe55_peak"] == 7150.0
    assert "latest good DATA:Fe run with exposure 0.3 s before run 42900" in got["how"]
    assert "histograms" not in row and "checks" not in row
    assert len(json.dumps(row, default=str)) < MAX_ROW_BYTES
    # the run the quality checks used, when the summary names it
    got = lookup.command({"run": 42900, "reference_run": 42883})
    assert got["reference"]["run"] == 42883 and "quality checks of run 42900" in got["how"]
    got = lookup.command({"run": 42900, "reference_run": 1})
    assert got["reference"] is None and "not in the run registry" in got["how"]


def test_lookup_never_blocks_the_caller_and_refuses_bad_requests(tmp_path):
    jobs = []
    lookup = ReferenceLookup(registry_with_runs(tmp_path), submit=jobs.append)
    req = {"run": 42900, "run_type": "DATA:Fe", "exposure_s": 0.3}
    assert lookup.command(req) == {"pending": True}  # the lookup is queued, not run
    assert lookup.command(req) == {"pending": True} and len(jobs) == 1  # asked once
    jobs.pop()()  # the worker runs it
    assert lookup.command(req)["reference"]["run"] == 42880  # from the cache now
    for bad in ({"run": "x", "run_type": "DATA"}, {"run": 5}, {"run": 5, "run_type": 7}):
        reply = ControlServer(None, {"reference": lookup.command}).answer(
            {"cmd": "reference", **bad}
        )
        assert not reply["ok"] and reply["code"] == "bad_request", reply
    # at most a few lookups wait at once
    for i in range(10):
        lookup.command({"run": 50000 + i, "run_type": "DATA:Fe"})
    assert len(jobs) == 4
    assert "too many" in lookup.command({"run": 60000, "run_type": "DATA:Fe"})["error"]
    assert ReferenceLookup(None).command(req)["how"].startswith("no run registry")


def test_the_daemon_answers_reference_on_its_control_socket(tmp_path):
    from cygno_online.daemon.config import parse_config
    from cygno_online.daemon.main import Daemon

    data = {
        "source": {"type": "simulator"},
        "state_dir": str(tmp_path),
        "publish": {
            "bind": "tcp://127.0.0.1:*",
            "snapshot_bind": "tcp://127.0.0.1:*",
            "control_bind": "tcp://127.0.0.1:*",
        },
    }
    cfg, _ = parse_config(data, build_chain=False)
    daemon = Daemon(cfg, None)
    try:
        registry_with_runs(tmp_path).close()  # the daemon's default registry file
        daemon.reference_lookup._submit = lambda fn: fn()
        reply = ControlServer(None, daemon.publisher.control_handlers).answer(
            {"cmd": "reference", "run": 42900, "run_type": "DATA:Fe", "exposure_s": 0.3}
        )
        assert reply["ok"] and reply["reference"]["run"] == 42880, reply
    finally:  # never started: no sockets or threads to stop
        if daemon.registry is not None:
            daemon.registry.close()


def test_runs_tab_toggles_between_previous_and_reference_run(tmp_path):
    src = make_source()
    from fakedata import add_summaries

    add_summaries(src)  # 42898 ped, 42899 good, 42900 flagged
    lookup = ReferenceLookup(registry_with_runs(tmp_path), submit=lambda fn: fn())
    asking = AskingSource(src, lookup)

    async def body(app, pilot):
        await pilot.press("7")
        await pilot.pause()
        await pilot.press("enter")  # 42900, the newest
        await pilot.pause()
        first = screen_text(app)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        second = screen_text(app)
        await pilot.press("r")
        await pilot.pause()
        third = screen_text(app)
        return first, second, third, isinstance(app.screen, RunSummaryScreen)

    first, second, third, still = run_app(asking, body, size=(120, 50))["value"]
    assert still
    assert (
        "Compared with the previous data run, 42899" in first and "(r: the reference run)" in first
    )
    # the reference run: asked from the daemon (42900's summary names none)
    assert asking.asked[-1]["cmd"] == "reference" and asking.asked[-1]["run_type"] == "DATA:Fe"
    assert "Compared with the reference run, 42880" in second
    assert "latest good DATA:Fe run with exposure 0.3 s before run 42900" in second
    assert "reference: run 42880" in second
    row = next(ln for ln in second.splitlines() if "55Fe peak" in ln and "ADU" in ln)
    # 6100 against the reference run's 7150 (-14.7 %) and the configured 7200
    assert "6100 ADU" in row and "7150 ADU" in row and "-14.7%" in row and "7200 -15%" in row
    assert "Compared with the previous data run, 42899" in third


def test_reference_run_from_the_summaries_at_hand_and_without_a_control_socket():
    docs = [
        summary_doc(10, NOW_NS, reference_run=None),
        summary_doc(11, NOW_NS + H, quality="flagged", verdict="warning"),
        summary_doc(12, NOW_NS + 2 * H, reference_run=10),
    ]
    assert reference_request(docs[2]) == {"run": 12, "reference_run": 10}
    assert reference_request(docs[1]) == {"run": 11, "run_type": "DATA:Fe", "exposure_s": 0.3}
    got, how = latest_good_local(docs, docs[2])
    assert got is docs[0] and "latest good DATA:Fe run before run 12" in how  # not the flagged 11
    got, how = latest_good_local(docs, docs[0])
    assert got is None and "no good DATA:Fe run" in how


def test_without_a_configured_peak_the_overview_uses_the_reference_runs(tmp_path):
    import numpy as np
    from fakedata import populate

    from cygno_online.tui.source import Expectations, FakeSource

    src = FakeSource(limits=[], expectations=Expectations())  # no summary.references
    populate(src)
    # the live checks compare with run 42880 (its 55Fe peak: 7150 ADU)
    src.metric(
        "quality",
        {"status": "good", "level": 0.0, "reason": "ok", "reference_run": 42880.0},
        tags={"check": "fe55_peak"},
        time_ns=NOW_NS,
    )
    edges = np.linspace(0, 20000, 201)
    counts = np.histogram(np.random.default_rng(1).normal(7000, 600, 2000), edges)[0]
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": counts.astype(float), "edges": edges},
        meta={"units": "ADU"},
        time_ns=NOW_NS,
    )
    lookup = ReferenceLookup(registry_with_runs(tmp_path), submit=lambda fn: fn())
    asking = AskingSource(src, lookup)

    async def body(app, pilot):
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.poll_now()
        await pilot.pause()
        return screen_text(app)

    text = run_app(asking, body, size=(100, 30))["value"]
    line = next(ln for ln in text.splitlines() if ln.lstrip().startswith("55Fe  peak"))
    assert "ref 7150 ±10% run 42880" in line and "OK" in line
    assert {"cmd": "reference", "run": 42901, "reference_run": 42880} in asking.asked
