"""The daemon as a subprocess on the simulator: sd_notify protocol, SIGHUP
with good and bad configurations, SIGTERM flush (exit 0, summary written)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cygno_online.publish.client import MonitorClient
from cygno_online.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def numba_cache(tmp_path_factory) -> str:
    # One cache for every subprocess of the session: kernels compile once.
    path = tmp_path_factory.getbasetemp() / "numba-cache"  # shared by every module
    path.mkdir(exist_ok=True)
    return str(path)


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def config(tmp_path: Path, analyzers: list | None = None, **extra) -> dict:
    pub, snap, ctl = free_ports(3)
    data = {
        "experiment": "TEST",
        "state_dir": str(tmp_path / "state"),
        "summary_dir": str(tmp_path / "summaries"),
        "source": {
            "type": "simulator",
            "simulator": {
                "layout": "crop:128",
                "run_events": 100000,
                "exposure_s": 0.05,
                "seed": 3,
            },
        },
        "pipeline": {"health_every_s": 0.5},
        "publish": {
            "bind": f"tcp://127.0.0.1:{pub}",
            "snapshot_bind": f"tcp://127.0.0.1:{snap}",
            "control_bind": f"tcp://127.0.0.1:{ctl}",
        },
        "analyzers": analyzers if analyzers is not None else [{"plugin": "daqhealth"}],
    }
    data.update(extra)
    return data


def spawn(path: Path, env_extra: dict, numba_cache: str) -> subprocess.Popen:
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache, **env_extra)
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen(
        [sys.executable, "-m", "cygno_online", "daemon", "--config", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def client_for(data: dict) -> MonitorClient:
    p = data["publish"]
    return MonitorClient(p["bind"], p["snapshot_bind"], p["control_bind"])


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=30)  # the unit's TimeoutStopSec is 20 s
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"daemon did not exit after SIGTERM:\n{err}") from None
    return proc.returncode, err


def test_notify_protocol_and_sigterm_flush(tmp_path, numba_cache):
    sock_path = str(tmp_path / "notify.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    rx.settimeout(180)  # a first start compiles the kernels (minutes under load)
    data = config(tmp_path)
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = spawn(path, {"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "1000000"}, numba_cache)
    received: list[str] = []

    def until(prefix: str) -> str:
        while True:
            try:
                msg = rx.recv(4096).decode()
            except TimeoutError:
                proc.kill()
                raise AssertionError(
                    f"no {prefix!r}; got {received}\n{proc.communicate()[1]}"
                ) from None
            received.append(msg)
            if any(line.startswith(prefix) for line in msg.splitlines()):
                return msg

    try:
        assert "READY=1" in until("READY=1")
        until("WATCHDOG=1")
        status = until("STATUS=run")
        assert "ev/s" in status
        with client_for(data) as c:
            wait_for(lambda: c.state.run.get("state") == "running", timeout=120, what="a run")
            wait_for(
                lambda: c.state.health.get("events_processed", 0) > 3, timeout=120, what="events"
            )
        proc.send_signal(signal.SIGHUP)
        until("RELOADING=1")
        until("READY=1")
        proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        code, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        rx.close()
    assert code == 0, err
    summaries = list((tmp_path / "summaries").glob("*"))
    assert summaries, f"no summary written\n{err}"
    assert "summary written" in err


def test_sighup_good_and_bad_configs(tmp_path, numba_cache):
    data = config(tmp_path, analyzers=[])
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = spawn(path, {}, numba_cache)
    try:
        with client_for(data) as c:
            wait_for(lambda: c.connected, timeout=180, what="daemon up")
            assert c.query("config")["config"]["analyzers"] == []
            good = dict(data, analyzers=[{"plugin": "daqhealth"}])
            good["alarms"] = {"rules": [{"id": "quiet", "family": "daq", "no_data_s": 600}]}
            path.write_text(yaml.safe_dump(good))
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: c.query("config")["config"]["analyzers"] == [{"plugin": "daqhealth"}],
                timeout=120,
                what="reload applied",
            )
            wait_for(lambda: "quiet" in c.state.alarms, timeout=120, what="new alarm rule")
            bad = dict(good, pipeline={"wokers": 3})
            bad["analyzers"] = [{"plugin": "no_such_plugin"}]
            path.write_text(yaml.safe_dump(bad))
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: any("reload rejected" in r.text for r in list(c.state.log)),
                timeout=120,
                what="rejection logged",
            )
            assert c.query("config")["config"]["analyzers"] == [{"plugin": "daqhealth"}]
            # any bytes: rejected with the file and position, the daemon runs on
            path.write_bytes(b"experiment: \xff\xfe\x00 LIME\n")
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: any("not UTF-8" in r.text for r in list(c.state.log)),
                timeout=120,
                what="non-UTF-8 rejection logged",
            )
            path.write_bytes(b"")
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: any("is empty" in r.text for r in list(c.state.log)),
                timeout=120,
                what="empty file rejected",
            )
            n = c.state.health.get("events_processed", 0)
            wait_for(
                lambda: c.state.health.get("events_processed", 0) > n,
                timeout=120,
                what="still running",
            )
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert "reload of" in err and "rejected" in err
    assert "pipeline.wokers" in err and "no_such_plugin" in err
    assert "byte 0xff at offset 12 (line 1, column 13)" in err
    assert "Traceback" not in err


def test_replay_from_the_command_line_exits_at_end(tmp_path, numba_cache):
    from cygno_online.simulate import write_run

    mid = tmp_path / "run00021.mid.lz4"
    write_run(mid, events=5, layout="crop:128", seed=4, run=21)
    data = config(tmp_path)
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cygno_online",
            "daemon",
            "--config",
            str(path),
            "--replay",
            str(mid),
            "--speed",
            "max",
            "--exit-at-end",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    summary = tmp_path / "summaries" / "run00021-summary.json"
    assert summary.exists(), result.stderr
    import json

    doc = json.loads(summary.read_text())
    assert doc["run"] == 21
