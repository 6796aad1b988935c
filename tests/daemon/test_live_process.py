"""The daemon as a process on the live MIDAS source (stand-in experiment):
SIGTERM/SIGINT stop it in every source state within 10 s with the open run's
summary flushed, exit code 0; its MIDAS reader never outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from test_daemon_process import (
    client_for,
    config,
    finish,
    numba_cache,  # noqa: F401  (the fixture)
    spawn,
)

from cygno_online.testing.midas_standin.frontend import small_event
from cygno_online.testing.waiting import wait_for


def live_config(tmp_path):
    data = config(tmp_path)
    data["source"] = {"type": "midas", "midas": {"retry": {"initial_s": 0.2, "max_s": 0.5}}}
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    return data, path


#: the unit's TimeoutStopSec (systemd/cygno-online.service): beyond it systemd
#: kills the daemon (the run's summary and checkpoint would be lost)
TIMEOUT_STOP_S = 20.0


def stop_within(proc, sig, limit_s=TIMEOUT_STOP_S):
    t0 = time.monotonic()
    proc.send_signal(sig)
    code, err = finish(proc)
    took = time.monotonic() - t0
    assert took < limit_s, f"stop took {took:.1f} s\n{err}"
    return code, err


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_mid_run_flushes_the_summary(tmp_path, experiment, numba_cache, sig):  # noqa: F811
    data, path = live_config(tmp_path)
    experiment.start_run(42, "mid run")
    proc = spawn(path, experiment.client_env(), numba_cache)
    try:
        with client_for(data) as c:
            wait_for(lambda: c.connected, timeout=60, what="daemon up")
            wait_for(
                lambda: any(r[3] for r in experiment.readers()), timeout=30, what="reader connected"
            )
            reader_pid = experiment.clients()[0][1]
            experiment.produce([small_event(1), small_event(2)])
            wait_for(lambda: c.state.run.get("run") == 42, timeout=30, what="run 42")
        code, err = stop_within(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert (tmp_path / "summaries" / "run00042-summary.json").exists(), err
    wait_for(lambda: not alive(reader_pid), timeout=60, what="reader gone with the daemon")


def sigterm_in_source_state(tmp_path, env, cache_dir, state):
    """Start the daemon, wait until its source reports ``state``, SIGTERM it:
    (exit code, stderr)."""
    data, path = live_config(tmp_path)
    proc = spawn(path, env, cache_dir)
    try:
        with client_for(data) as c:
            wait_for(lambda: c.connected, timeout=60, what="daemon up")
            wait_for(
                lambda: c.state.health.get("source_state") == state,
                timeout=30,
                what=f"source state {state}",
            )
        return stop_within(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_stop_while_the_experiment_is_away(tmp_path, experiment, numba_cache):  # noqa: F811
    experiment.kill()
    code, err = sigterm_in_source_state(
        tmp_path, experiment.client_env(), numba_cache, "disconnected"
    )
    assert code == 0, err


def test_stop_while_incompatible(tmp_path, experiment, numba_cache):  # noqa: F811
    env = dict(experiment.client_env(), MIDASSYS=str(tmp_path / "no-midas"))
    code, err = sigterm_in_source_state(tmp_path, env, numba_cache, "incompatible")
    assert code == 0, err
    assert err.count("MIDAS bindings unusable") == 1, err


def reader_children(pid):
    """The daemon's MIDAS reader processes (children running midas_reader)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as fh:
                    if b"midas_reader" in fh.read():
                        out.append(kid)
            except OSError:
                continue
    return out


def age_s(pid):
    """Seconds since the process started (/proc/PID/stat field 22, in clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            up = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("inf")
    return up - start / os.sysconf("SC_CLK_TCK")


def sockets_of(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return n


def test_stop_while_the_reader_hangs_in_connect(tmp_path, experiment, numba_cache):  # noqa: F811
    data, path = live_config(tmp_path)
    # a frozen experiment: the connection is accepted by the kernel, the
    # answer to the client's hello never comes - connect blocks
    experiment.proc.send_signal(signal.SIGSTOP)
    proc = spawn(path, experiment.client_env(), numba_cache)
    try:
        with client_for(data) as c:
            wait_for(lambda: c.connected, timeout=60, what="daemon up")
            wait_for(
                lambda: c.state.health.get("source_state") == "connecting",
                timeout=30,
                what="connecting",
            )
        # a reader inside connect: its request socket is connected beside the
        # channel to the daemon, the experiment's answer never comes. Young
        # enough that the supervisor's no-progress kill (10 s) is far away:
        # the stop, not that timeout, must end it.
        reader = wait_for(
            lambda: next(
                (r for r in reader_children(proc.pid) if sockets_of(r) >= 2 and age_s(r) < 4.0),
                None,
            ),
            timeout=60,
            what="a young reader in connect",
        )
        code, err = stop_within(proc, signal.SIGTERM)
    finally:
        experiment.proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    # the stop ended it, not the supervisor's no-progress timeout
    assert f"(pid {reader}) made no progress" not in err, err
    wait_for(lambda: not alive(reader), timeout=60, what="reader gone with the daemon")


def test_sigterm_in_mid_run_and_restart_resume_the_run(tmp_path, experiment, numba_cache):  # noqa: F811
    """The run's summary after a restart covers every event of the run (its
    state was checkpointed at SIGTERM and resumed), and part 1 stays as written."""
    import json

    data, path = live_config(tmp_path)
    summaries = tmp_path / "summaries"
    experiment.start_run(42, "long run")
    for n, serials in enumerate(([1, 2], [3])):
        proc = spawn(path, experiment.client_env(), numba_cache)
        try:
            with client_for(data) as c:
                wait_for(lambda: c.connected, timeout=60, what="daemon up")
                wait_for(lambda: any(r[3] for r in experiment.readers()), timeout=30, what="reader")
                experiment.produce([small_event(s) for s in serials])
                want = len(serials)
                wait_for(
                    lambda: c.state.health.get("events_processed") == want,  # noqa: B023
                    timeout=30,
                    what="events analysed",
                )
                if n == 1:
                    experiment.stop_run()
                    wait_for(
                        (summaries / "run00042-part2-summary.json").exists,
                        timeout=30,
                        what="part 2",
                    )
            code, err = stop_within(proc, signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert code == 0, err
        if n == 0:
            part1 = (summaries / "run00042-summary.json").read_text()
            assert (tmp_path / "state" / "run-checkpoint.bin").exists()
    assert (summaries / "run00042-summary.json").read_text() == part1  # never overwritten
    doc = json.loads((summaries / "run00042-part2-summary.json").read_text())
    assert doc["counters"]["complete"] is True
    assert doc["counters"]["events_seen"] == 3 and doc["covers_from_part"] == 1
    assert doc["resumed"]["events_before_restart"] == 2
    assert doc["resumed"]["analyzers_resumed"] == ["daqhealth"]
    assert doc["sections"]["daqhealth"]["events"]["1"]["seen"] == 3
    assert doc["counters_all_parts"]["events_seen"] == 3
    assert "resumed from the checkpoint" in err
    assert not (tmp_path / "state" / "run-checkpoint.bin").exists()


def test_the_stop_bound_is_the_units():
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "cygno-online.service").read_text()
    assert f"TimeoutStopSec={TIMEOUT_STOP_S:g}" in unit
