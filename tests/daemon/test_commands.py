"""check-config, keys and demo commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cygno_online.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def numba_cache(tmp_path_factory) -> str:
    path = tmp_path_factory.getbasetemp() / "numba-cache"  # shared by every module
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.mark.parametrize("name", ["lime.yaml", "cygno04.yaml", "demo.yaml"])
def test_shipped_configs_are_valid(name, capsys):
    assert main(["check-config", str(ROOT / "config" / name)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "analyzers:" in out


def test_check_config_reports_every_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "source": {"type": "midas", "midas": {"requests": [{"sampling": "fast"}]}},
                "pipeline": {"wokers": 2},
                "analyzers": [{"plugin": "no_such_plugin"}],
            }
        )
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "3 error(s)" in err
    assert "source.midas.requests[0].sampling: is not an allowed value (got 'fast')" in err
    assert "allowed: 'nonblocking', 'all', 'recent'" in err
    assert "pipeline.wokers: is not a known key" in err
    assert "analyzers[0].plugin" in err


def test_keys_command(tmp_path, capsys):
    import zmq.auth

    assert main(["keys", str(tmp_path), "--name", "server"]) == 0
    public, secret = zmq.auth.load_certificate(str(tmp_path / "server.key_secret"))
    assert secret and public.decode() in capsys.readouterr().out
    assert (tmp_path / "server.key_secret").stat().st_mode & 0o077 == 0


# its own numba cache: a cold one compiles every kernel (25 s idle, minutes on
# a loaded shared machine); the bounds only end a hung demo
@pytest.mark.timeout(900)
def test_demo_runs_without_any_setup(tmp_path, numba_cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache, HOME=str(tmp_path))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cygno_online",
            "demo",
            "--no-tui",
            "--duration",
            "8",
            "--layout",
            "crop:256",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("run ")]
    assert lines, result.stdout
    # events flowed and were analysed
    last = lines[-1]
    processed = int(last.split("events ")[1].split("/")[0])
    assert processed > 0, last
    assert "demo finished" in result.stderr


def test_demo_sends_log_lines_to_the_viewers_while_the_tui_runs():
    import logging

    from cygno_online.commands.demo import logs_to_viewers

    class FakeDaemon:
        def __init__(self):
            self.lines = []

        def _publish_log(self, level, text, **kw):
            self.lines.append((level, text))

    d = FakeDaemon()
    root = logging.getLogger()
    before = root.handlers[:]
    with logs_to_viewers(d):
        logging.getLogger("cygno_online.sources.replay").warning("file %s truncated", "x.mid")
        logging.getLogger("cygno_online.daemon.main").warning("already published by the daemon")
    assert d.lines == [("warning", "cygno_online.sources.replay: file x.mid truncated")]
    assert root.handlers == before
