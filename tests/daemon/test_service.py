"""systemd integration: the unit file verifies cleanly, the notify protocol."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from cygno_online.daemon.service import Notifier, SignalFlags

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "cygno-online.service"


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "cygno-online.service"
    path.write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )


def test_unit_verifies_without_any_warning(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is required (Debian: apt-get install systemd)")
    text = UNIT.read_text()
    exe = "/opt/cygno-online/.venv/bin/cygno-online"
    assert exe in text
    # verify wants the ExecStart binary to exist: point it at a real one.
    result = verify(text.replace(exe, shutil.which("true")), tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


def test_verify_catches_a_bad_unit(tmp_path):
    # The check above must be able to fail: systemd 252 only warns here.
    text = UNIT.read_text().replace("Type=notify", "Type=notify-reload")
    text = text.replace("/opt/cygno-online/.venv/bin/cygno-online", shutil.which("true"))
    result = verify(text, tmp_path)
    assert (result.stdout + result.stderr).strip() != ""


def test_unit_has_the_required_settings():
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["Type"] == "notify"
    assert lines["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert lines["WatchdogSec"] == "30"
    # monitoring comes back whatever ended the process; not on a config error
    assert lines["Restart"] == "always"
    assert lines["RestartPreventExitStatus"] == "2"
    assert lines["KillMode"] == "mixed"
    assert lines["User"] == "daq"
    assert "AF_UNIX" in lines["RestrictAddressFamilies"]
    assert lines["Environment"] == "NUMBA_CACHE_DIR=%C/cygno-online"
    for forbidden in ("MemoryDenyWriteExecute", "DynamicUser", "RemoveIPC", "PrivateDevices"):
        assert forbidden not in lines


def receiver(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    return s


def test_notifier_sends_datagrams(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    rx = receiver(path)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier(path)
    assert n.watchdog_s == 30.0
    n.ready("warm")
    assert rx.recv(4096) == b"READY=1\nSTATUS=warm"
    n.watchdog()
    assert rx.recv(4096) == b"WATCHDOG=1"
    n.reloading()
    assert rx.recv(4096) == b"RELOADING=1"
    n.stopping()
    assert rx.recv(4096) == b"STOPPING=1"
    n.close()
    rx.close()


def test_notifier_abstract_namespace(tmp_path):
    name = f"cygno-test-{os.getpid()}"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind("\0" + name)
    rx.settimeout(5)
    assert Notifier("@" + name).notify(STATUS="x")
    assert rx.recv(100) == b"STATUS=x"
    rx.close()


def test_notifier_is_a_noop_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.notify(READY=1) is False


def test_signal_flags():
    f = SignalFlags()
    f.request_reload()
    assert f.reload and f.wake.is_set() and not f.stop
    f.request_stop()
    assert f.stop
