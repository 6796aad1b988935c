"""The live MIDAS source against the stand-in: runs, events, messages,
MIDAS going away and coming back, shutdown requests."""

from __future__ import annotations

import threading

from conftest import wait_for
from standin import get_midas, small_event, standin, standin_autouse  # noqa: F401

from cygno_online.daemon.config import MidasRequest
from cygno_online.sources.midas_live import MidasLiveSource, event_bytes


class Sink:
    def __init__(self):
        self.runs, self.ends, self.serials, self.states = [], [], [], []
        self.beats = 0

    def begin_run(self, run):
        self.runs.append(run)

    def event(self, event, received_ns):
        self.serials.append(event.header.serial_number)

    def end_run(self, stop_time_ns, complete=True):
        self.ends.append(complete)

    def status(self, state, detail=""):
        self.states.append(state)

    def heartbeat(self):
        self.beats += 1


def start(source, sink):
    stop = threading.Event()
    box = {}

    def main():
        try:
            source.run(sink, stop)
        except SystemExit as exc:
            box["exit"] = exc

    t = threading.Thread(target=main, daemon=True)
    t.start()
    return stop, t, box


def make_source(name, **kw):
    return MidasLiveSource(
        expt_name=name,
        max_event_size=1 << 20,
        receive_timeout_ms=20,
        communicate_ms=5,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        **kw,
    )


def test_runs_events_and_messages():
    midas = get_midas()
    exp = midas.experiment.create("live")
    exp.start_run(41, "S001:DATA:Fe")  # already running when the monitor connects
    source = make_source("live")
    sink = Sink()
    stop, t, _ = start(source, sink)
    try:
        wait_for(lambda: sink.runs, what="run from the ODB at connect")
        assert sink.runs[0].run == 41
        for i in range(5):
            exp.produce(small_event(i))
        wait_for(lambda: sink.serials == list(range(5)), what="events")
        exp.stop_run()
        wait_for(lambda: sink.ends == [True], what="end of run")
        exp.start_run(42)
        wait_for(lambda: len(sink.runs) == 2 and sink.runs[1].run == 42, what="TR_START")
        source.send_message("cygno-online: alarm gas raised", is_error=True)
        wait_for(lambda: exp.messages, what="MIDAS message")
        assert exp.messages[0][1:] == ("cygno-online: alarm gas raised", True)
        # the monitor is a GET_NONBLOCKING reader by default
        reader = next(iter(exp.buffer("SYSTEM").readers.values()))
        assert reader.sampling == midas.GET_NONBLOCKING
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()


def test_midas_away_then_back_retries_with_backoff():
    midas = get_midas()
    exp = midas.experiment.create("flaky")
    exp.go_away()  # not there at start
    source = make_source("flaky")
    sink = Sink()
    stop, t, _ = start(source, sink)
    try:
        wait_for(lambda: source.failures >= 2, what="connection retries")
        assert "disconnected" in sink.states
        exp.come_back()
        wait_for(lambda: source.connects == 1, what="connected")
        exp.start_run(7)
        wait_for(lambda: sink.runs, what="run")
        exp.produce(small_event(1))
        wait_for(lambda: sink.serials == [1], what="first event")
        exp.go_away()
        wait_for(lambda: source.failures >= 3 and sink.ends, what="connection lost")
        assert sink.ends[-1] is False  # the run is closed as incomplete
        exp.come_back()
        wait_for(lambda: source.connects == 2, what="reconnected")
        exp.start_run(8)
        wait_for(lambda: sink.runs[-1].run == 8, what="run after reconnect")
        exp.produce(small_event(2))
        wait_for(lambda: sink.serials == [1, 2], what="events flow again")
    finally:
        stop.set()
        t.join(5)


def test_shutdown_request_ends_the_source_with_system_exit():
    midas = get_midas()
    exp = midas.experiment.create("sd")
    source = make_source("sd")
    sink = Sink()
    _stop, t, box = start(source, sink)
    wait_for(lambda: source.connects == 1, what="connected")
    exp.request_shutdown()
    t.join(5)
    assert isinstance(box.get("exit"), SystemExit)


def test_requests_and_sampling_from_config():
    midas = get_midas()
    exp = midas.experiment.create("req")
    source = make_source(
        "req", requests=[MidasRequest(1, -1, "all"), MidasRequest(6, -1, "nonblocking")]
    )
    sink = Sink()
    stop, t, _ = start(source, sink)
    try:
        wait_for(lambda: source.connects == 1, what="connected")
        reader = next(iter(exp.buffer("SYSTEM").readers.values()))
        assert sorted(r[:1] + r[2:] for r in reader.requests.values()) == [
            (1, midas.GET_ALL),
            (6, midas.GET_NONBLOCKING),
        ]
        exp.produce(small_event(1, event_id=2))  # not requested
        exp.produce(small_event(2, event_id=6))
        wait_for(lambda: sink.serials == [2], what="only requested events")
    finally:
        stop.set()
        t.join(5)


def test_event_bytes_round_trip():
    midas = get_midas()
    data = small_event(3)
    ev = midas.event.Event()
    ev.unpack(data, use_numpy=True)
    assert event_bytes(ev) == data


def test_unpackable_events_are_counted_not_fatal():
    from standin import midas_event

    midas = get_midas()
    exp = midas.experiment.create("bad")
    source = make_source("bad")
    sink = Sink()
    stop, t, _ = start(source, sink)
    try:
        wait_for(lambda: source.connects == 1, what="connected")
        exp.produce(midas_event(1, {"TEXT": (12, b"abc\0")}))
        exp.produce(small_event(2))
        wait_for(lambda: sink.serials == [2], what="next event")
        assert source.unpack_errors == 1 and source.failures == 0
    finally:
        stop.set()
        t.join(5)


def run_until_state(source, state):
    sink = Sink()
    stop, t, _ = start(source, sink)
    try:
        wait_for(lambda: state in sink.states, what=f"state {state}")
    finally:
        stop.set()
        t.join(5)
    assert source.connects == 0 and source.failures == 0  # no connection retried
    return sink


def test_missing_bindings_are_incompatible_not_retried(monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "midas.client", None)  # import raises ImportError
    source = make_source("none")
    run_until_state(source, "incompatible")
    assert any("midas.client" in m for m in source.incompatible)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "midas.client" in errors[0].getMessage()


def test_no_midassys_and_no_library_are_named(monkeypatch, tmp_path):
    monkeypatch.delenv("MIDASSYS")
    source = make_source("none")
    run_until_state(source, "incompatible")
    assert source.incompatible == ["MIDASSYS is not set"]
    monkeypatch.setenv("MIDASSYS", str(tmp_path))
    source = make_source("none")
    run_until_state(source, "incompatible")
    assert source.incompatible == [f"{tmp_path}/lib/libmidas-c-compat.so does not exist"]


def test_constants_missing_from_the_package_are_named(monkeypatch):
    midas = get_midas()
    monkeypatch.delattr(midas, "GET_NONBLOCKING")
    source = make_source("none")
    run_until_state(source, "incompatible")
    assert source.incompatible == ["midas.GET_NONBLOCKING is missing"]


def test_client_module_does_not_reexport_constants():
    # as the real bindings: the constants live in the package only
    midas = get_midas()
    assert not hasattr(midas.client, "GET_NONBLOCKING")
    assert midas.GET_NONBLOCKING == 2
