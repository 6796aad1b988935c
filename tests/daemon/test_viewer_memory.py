"""The viewers' Log and Runs tabs survive a daemon restart, and the log
shows where each run starts and stops."""

from __future__ import annotations

import json

from fakes import FakeSource
from test_pipeline import make_daemon

from cygno_online.daemon.main import run_end_text, run_in_thread
from cygno_online.publish.memory import ViewerMemory
from cygno_online.publish.state import LogRecord, MonitorState
from cygno_online.testing.waiting import wait_for


def test_log_and_summaries_survive_a_restart(tmp_path):
    source = FakeSource(n=10, lossless=True)
    d, _ = make_daemon(tmp_path, source)
    run_in_thread(d)
    try:
        wait_for(lambda: len(d.pipeline.summaries) >= 1, what="run summary")
        wait_for(
            lambda: any("run 5 stopped" in r.text for r in d.publisher.state.log),
            what="run stop line",
        )
    finally:
        d.request_stop()
        d.shutdown()
    texts = [r.text for r in d.publisher.state.log]
    assert any(t.startswith("run 5 started") for t in texts), texts
    assert (tmp_path / "state" / "viewers.json").exists()

    again, _ = make_daemon(tmp_path, FakeSource(n=0, endless=True))
    try:
        st = again.publisher.state
        assert [r.text for r in st.log][-len(texts) :] == texts
        assert [s["run"] for s in st.summaries] == [5]
        # and the first snapshot a viewer gets carries them
        snap = st.to_message().body
        assert snap["summaries"][0]["run"] == 5 and snap["log"]
    finally:
        again.shutdown()


def test_memory_file_problems_are_counted_not_fatal(tmp_path):
    path = tmp_path / "viewers.json"
    path.write_text("{not json")
    mem = ViewerMemory(path)
    st = MonitorState()
    assert mem.load_into(st) == 0 and mem.errors == 1
    path.write_text(json.dumps({"schema": 99}))
    assert mem.load_into(st) == 0 and mem.errors == 2
    st.log.append(LogRecord(1, "info", "daemon", "hello"))
    assert mem.save(st) and not mem.save(st)  # unchanged: not written again
    assert ViewerMemory(path).load_into(MonitorState()) == 1


def test_run_end_line_says_duration_events_and_quality():
    doc = {
        "duration_s": 241.2,
        "counters": {"events_seen": 400},
        "quality": "flagged",
        "quality_flags": [{"flag": "fe55_peak_shifted"}, {"flag": "spark_rate_high"}],
    }
    assert run_end_text(42, doc) == (
        "run 42 stopped: 241 s, 400 events, quality flagged (fe55_peak_shifted, spark_rate_high)"
    )
    assert run_end_text(42, None) == "run 42 stopped"
