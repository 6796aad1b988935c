"""The live MIDAS source (supervisor + reader process) against the stand-in
experiment process: runs, raw events, skips, every kind of session end,
reconnection, incompatible installs, local and remote access."""

from __future__ import annotations

import os
import signal
import struct
import threading
import time

import pytest

from cygno_online.daemon.config import MidasRequest
from cygno_online.sources.midas_live import MidasLiveSource, proc_memory
from cygno_online.testing.midas_standin.frontend import (
    array_bank_event,
    oversized_event,
    slow_control_event,
    small_event,
    string_bank_event,
    struct_bank_event,
)
from cygno_online.testing.waiting import wait_for


class Sink:
    def __init__(self):
        self.runs, self.ends, self.events, self.states = [], [], [], []
        self.log = []

    def begin_run(self, run):
        self.runs.append(run)
        self.log.append(("bor", run.run))

    def event(self, event, received_ns):
        self.events.append(event)
        self.log.append(("ev", event.header.serial_number))

    @property
    def serials(self):
        return [e.header.serial_number for e in self.events]

    def end_run(self, stop_time_ns, complete=True):
        self.ends.append(complete)
        self.log.append(("eor", complete))

    def status(self, state, detail=""):
        self.states.append((state, detail))

    @property
    def state(self):
        return self.states[-1][0] if self.states else None

    def heartbeat(self):
        pass


class Running:
    def __init__(self, source, sink=None):
        self.source = source
        self.sink = sink or Sink()
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self):
        try:
            self.source.run(self.sink, self.stop)
        except BaseException as exc:  # the test fails on it
            self.error = exc

    def close(self):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


@pytest.fixture
def live(request):
    started = []

    def start(exp, **kw):
        kw.setdefault("max_event_size", 1 << 16)
        source = MidasLiveSource(env=exp.client_env(), **kw)
        r = Running(source)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def connected(r, n=1):
    wait_for(
        lambda: r.source.connects >= n and r.sink.state in ("connected", "running"),
        what=f"session {n}",
    )


def test_runs_raw_events_and_messages(experiment, live):
    r = live(experiment)
    connected(r)
    assert r.sink.runs == []
    experiment.start_run(41, "S001:DATA:Fe", **{"/Configurations/Exposure": 0.5})
    wait_for(lambda: r.sink.runs, what="run 41")
    assert r.sink.runs[0].run == 41 and r.sink.runs[0].description == "S001:DATA:Fe"
    evs = [small_event(1), slow_control_event(2, [1.0, 2.0]), small_event(3)]
    experiment.produce(evs)
    wait_for(lambda: r.sink.serials == [1, 2, 3], what="events")
    # the bytes as sent, 32-bit and 16-bit banks alike
    assert r.sink.events[1].banks["MSRD"].data.tobytes() == evs[1][16 + 8 + 8 :]
    experiment.stop_run()
    wait_for(lambda: r.sink.ends == [True], what="end of run")
    r.source.send_message("cygno-online: alarm gas raised", is_error=True)
    wait_for(lambda: experiment.messages(), what="MIDAS message")
    assert experiment.messages()[0][1:] == ["cygno-online: alarm gas raised", True]
    # a GET_NONBLOCKING reader by default
    assert [rd[1] for rd in experiment.readers()] == [2]


def test_requests_and_sampling_from_config(experiment, live):
    r = live(experiment, requests=[MidasRequest(1, -1, "all"), MidasRequest(6, -1, "nonblocking")])
    connected(r)
    (reader,) = experiment.readers()
    assert sorted(tuple(x) for x in reader[3]) == [(1, -1, 1), (6, -1, 2)]
    experiment.produce([small_event(1, event_id=2), small_event(2, event_id=6)])
    wait_for(lambda: r.sink.serials == [2], what="only requested events")


def test_string_bank_corrupt_and_oversized_events_are_skipped_not_fatal(experiment, live):
    r = live(experiment)
    connected(r)
    experiment.start_run(5)
    wait_for(lambda: r.sink.runs, what="run")
    corrupt = bytearray(small_event(3))
    corrupt[16:20] = (9999).to_bytes(4, "little")  # all_bank_size beyond the event
    experiment.produce(
        [string_bank_event(1), oversized_event(2, 100_000), bytes(corrupt), small_event(4)]
    )
    wait_for(lambda: r.sink.serials == [1, 4], what="the next event analysed")
    # the STRING bank is kept as in files
    assert r.sink.events[0].banks["TEXT"].type_id == 12
    assert bytes(r.sink.events[0].banks["TEXT"].data).startswith(b"hello LIME")
    assert r.source.skipped == {"oversized": 1, "corrupt": 1}
    assert r.source.connects == 1 and r.sink.ends == []  # the session went on


def test_struct_and_array_banks_are_kept_like_in_files_not_fatal(experiment, live):
    r = live(experiment)
    connected(r)
    experiment.start_run(6)
    wait_for(lambda: r.sink.runs, what="run")
    experiment.produce([struct_bank_event(1), array_bank_event(2), small_event(3)])
    wait_for(lambda: r.sink.serials == [1, 2, 3], what="every event analysed")
    # kept as the frontend sent them: type id, unpadded size, the bytes
    info = r.sink.events[0].banks["INFO"]
    assert (info.type_id, info.size) == (14, 16)
    assert bytes(info.data) == struct.pack("<If8s", 7, 1.5, b"GEM1")
    arry = r.sink.events[1].banks["ARRY"]
    assert (arry.type_id, arry.size, bytes(arry.data)) == (13, 13, bytes(range(13)))
    # the other bank of the same event decodes as usual
    assert r.sink.events[1].banks["CAM0"].data.tolist() == [1] * 8
    assert r.source.skipped == {} and r.sink.ends == []  # nothing skipped, the session went on
    assert r.source.connects == 1


def test_stale_running_state_makes_no_phantom_run(experiment, live):
    experiment.start_run(7)
    r = live(experiment)
    connected(r)
    experiment.shutdown_all()  # the monitor is shut down too; State stays 3
    wait_for(lambda: r.source.session_ends["shutdown"] == 1, what="shutdown ends the session")
    connected(r, 2)  # ... not the service
    assert experiment.odb_get("/Runinfo/State") == 3
    assert r.sink.runs == []  # no events: no run
    experiment.start_run(8)
    wait_for(lambda: [x.run for x in r.sink.runs] == [8], what="the real next run")


def test_run_in_progress_at_connect_opens_with_its_first_event(experiment, live):
    experiment.start_run(9, "already running")
    r = live(experiment)
    connected(r)
    assert r.sink.runs == []
    experiment.produce(small_event(1))
    wait_for(lambda: r.sink.log[:2] == [("bor", 9), ("ev", 1)], what="run 9 with its event")
    assert r.sink.runs[0].description == "already running"


@pytest.mark.parametrize("how", ["SIGKILL", "SIGABRT"])
def test_reader_killed_mid_run_the_run_continues(experiment, live, how):
    r = live(experiment)
    connected(r)
    experiment.start_run(11)
    experiment.produce(small_event(1))
    wait_for(lambda: r.sink.serials == [1], what="first event")
    os.kill(r.source.reader_pid, getattr(signal, how))
    wait_for(lambda: r.source.session_ends["crash"] == 1, what="crash seen")
    connected(r, 2)
    experiment.produce(small_event(2))
    wait_for(lambda: r.sink.serials == [1, 2], what="events flow again")
    assert r.sink.log.count(("bor", 11)) == 1 and r.sink.ends == []  # one run, still open
    assert any(how in d for _, d in r.sink.states)


def test_vanished_shared_memory_aborts_only_the_reader(experiment, live):
    r = live(experiment)
    connected(r)
    experiment.start_run(12)
    experiment.produce(small_event(1))
    wait_for(lambda: r.sink.serials == [1], what="first event")
    experiment.remove_shm()
    wait_for(lambda: r.source.session_ends["crash"] == 1, what="libmidas abort()")
    assert any("SIGABRT" in d for _, d in r.sink.states)
    experiment.kill()
    experiment.restart()  # the experiment is set up again
    connected(r, 2)
    experiment.produce(small_event(2))
    wait_for(lambda: r.sink.serials == [1, 2], what="events flow again")


def test_experiment_away_and_back_five_times(experiment, live):
    r = live(experiment)
    connected(r)
    back_after = []
    for i in range(5):
        experiment.kill()
        wait_for(lambda i=i: r.source.session_ends["lost"] == i + 1, what="session lost")
        experiment.restart()
        t0 = time.monotonic()
        wait_for(lambda i=i: r.source.connects == i + 2, what="reconnected")
        experiment.produce(small_event(100 + i))
        wait_for(lambda i=i: r.sink.serials[-1:] == [100 + i], what=f"events after return {i}")
        back_after.append(time.monotonic() - t0)
    assert r.source.connects == 6
    print("events again after", [f"{s:.2f}" for s in back_after], "s")


def test_transitions_not_delayed_at_1khz(experiment, live):
    base = [experiment.start_run(20 + i) + experiment.stop_run() for i in range(3)]
    r = live(experiment, max_event_size=4096)
    connected(r)
    experiment.stream(small_event(0, size=256), rate_hz=1000, count=4000)
    delays = []
    for i in range(4):
        delays.append(experiment.start_run(30 + i))
        delays.append(experiment.stop_run())
    wait_for(lambda: experiment.stream_done(), timeout=60, what="stream")
    delays.sort()
    print(
        f"transition with monitor median {delays[len(delays) // 2] * 1000:.1f} ms, max "
        f"{delays[-1] * 1000:.1f} ms, without {max(base) * 1000:.1f} ms"
    )
    # The requirement (at most 100 ms over the same transition without the
    # monitor) is measured by `cygno-online bench live`, on a quiet machine:
    # timings are not asserted in tests (a loaded shared machine slows the
    # transitions with and without the monitor alike). Asserted here: the
    # monitor never holds a transition (a held one waits for MIDAS's
    # transition timeout, seconds).
    assert delays[len(delays) // 2] - max(base) < 2.0
    assert len(r.sink.events) > 1000


def test_incompatible_install_is_one_error_and_no_retry(experiment, live, caplog, tmp_path):
    env_fix = {"MIDASSYS": str(tmp_path / "nothing")}
    exp_env = experiment.client_env()
    source = MidasLiveSource(env={**exp_env, **env_fix}, recheck_incompatible_s=0.2)
    r = Running(source)
    try:
        wait_for(lambda: r.sink.state == "incompatible", what="incompatible")
        # two re-checks seen (each one reports its state): still no new ERROR
        # line, no connection
        wait_for(
            lambda: len([s for s in r.sink.states if s[0] == "incompatible"]) >= 3,
            what="two re-checks of the install",
        )
    finally:
        r.close()
    assert source.incompatible == [f"{tmp_path}/nothing/lib/libmidas-c-compat.so does not exist"]
    errors = [x for x in caplog.records if x.levelname == "ERROR"]
    assert len(errors) == 1 and "libmidas-c-compat.so" in errors[0].getMessage()
    assert source.connects == 0 and source.failures == 0


def test_missing_names_in_the_package_are_incompatible(experiment, tmp_path):
    fake = tmp_path / "fake" / "midas"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("GET_ALL = 1\nstatus_codes = {}\n")
    (fake / "client.py").write_text("class MidasClient:\n    pass\n")
    env = {**experiment.client_env(), "PYTHONPATH": str(tmp_path / "fake")}
    r = Running(MidasLiveSource(env=env))
    try:
        wait_for(lambda: r.sink.state == "incompatible", what="incompatible")
    finally:
        r.close()
    missing = r.source.incompatible
    assert "midas.GET_NONBLOCKING is missing" in missing
    assert "midas.status_codes['BM_TRUNCATED'] is missing" in missing
    assert "midas.client.MidasClient.communicate is missing" in missing


def test_no_experiment_yet_then_it_appears(tmp_path, live):
    from cygno_online.testing.midas_standin.experiment import Experiment

    exp = Experiment(tmp_path / "late", "lime")  # defined, not started
    try:
        r = live(exp, retry_initial_s=0.05, retry_max_s=0.2)
        wait_for(lambda: r.source.failures >= 2, what="connection retries")
        assert r.sink.state == "disconnected"
        n_states = len(set(r.sink.states))
        wait_for(lambda: r.source.failures >= 4, what="more retries")
        # the same state and detail again: the pipeline logs no new line
        assert len(set(r.sink.states)) == n_states
        exp.restart()
        connected(r)
    finally:
        exp.close()


def test_remote_access_behaves_like_local(remote_experiment, live):
    exp = remote_experiment
    r = live(exp, max_event_size=12_000_000)
    connected(r)
    exp.start_run(3)
    exp.produce([oversized_event(1, 2304 * 2304 * 2), string_bank_event(2)])
    wait_for(lambda: r.sink.serials == [1, 2], what="a LIME-sized and a STRING event")
    exp.kill()  # mserver gone
    wait_for(lambda: r.source.session_ends["lost"] == 1, what="session lost")
    exp.restart()
    connected(r, 2)
    exp.produce(small_event(3))
    wait_for(lambda: r.sink.serials == [1, 2, 3], what="events again")
    assert r.sink.log.count(("bor", 3)) == 1


def test_reader_memory_is_reported_apart(experiment, live):
    r = live(experiment, max_event_size=1 << 20)
    connected(r)
    experiment.produce([oversized_event(i, 500_000) for i in range(8)])
    wait_for(lambda: len(r.sink.events) == 8, what="events")
    d = r.source.describe()
    assert d["reader_memory"]["shmem"] > 0  # the mapped buffer, in the reader
    assert set(proc_memory()) == {"anon", "file", "shmem"}


def test_a_reader_stuck_in_a_call_is_replaced(experiment, live):
    # the progress bound covers the reader's own start too (0.25 s on a quiet
    # machine, over 1 s under load: a 1 s bound killed healthy new readers)
    r = live(experiment, reader_timeout_s=3.0, retry_initial_s=0.05, retry_max_s=0.2)
    connected(r)
    experiment.proc.send_signal(signal.SIGSTOP)  # every MIDAS call now blocks
    try:
        wait_for(lambda: r.source.session_ends["hung"] >= 1, what="hung reader killed")
    finally:
        experiment.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: r.source.connects >= 2, what="a new session")
    experiment.produce(small_event(1))
    wait_for(lambda: r.sink.serials[-1:] == [1], what="events flow again")


class BlockingSink(Sink):
    """Holds the supervisor in its first event until released."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def event(self, event, received_ns):
        # held until the test releases it (always, in its finally); the bound
        # only ends a hung test, never the hold of a slow one
        self.release.wait(120)
        super().event(event, received_ns)


def test_events_beyond_free_slots_are_counted_drops(experiment):
    sink = BlockingSink()
    r = Running(MidasLiveSource(env=experiment.client_env(), max_event_size=4096, slots=1), sink)
    try:
        connected(r)
        experiment.produce([small_event(i) for i in range(1, 6)])
        # the supervisor is held in event 1; the reader read all five anyway
        wait_for(lambda: experiment.readers()[0][4] == 5, what="all five received")
        sink.release.set()
        wait_for(lambda: r.source.skipped["no_slot"] >= 1, what="drops counted")
        wait_for(lambda: sink.serials and sink.serials[0] == 1, what="the held event analysed")
        experiment.produce(small_event(9))
        wait_for(lambda: sink.serials[-1:] == [9], what="events flow after the drops")
        wait_for(lambda: r.source.reader_counts.get("received", 0) >= 6, what="reader counts")
    finally:
        sink.release.set()
        r.close()
