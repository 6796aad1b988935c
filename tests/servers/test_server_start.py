"""The test-server harness (cygno_online/sinks/testservers.py) under the
conditions of a shared, loaded machine: readiness is the real request,
bounded; a port taken by another process between free_port() and the bind
is retried on a fresh one; a server that dies or never gets ready is one
error naming its port and log file, and is not left running. A tiny HTTP
server in a child Python process stands in for the database binaries (the
real servers are exercised by tests/sinks)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from cygno_online.sinks.testservers import ServerProcess, ServerStartError

#: binds 127.0.0.1:<port> and answers GET /ping with 204, as influxd does; on
#: a taken port it exits with the message every server prints
PING_SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(204 if self.path == "/ping" else 404); self.end_headers()
    def log_message(self, *a): pass
try:
    s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
except OSError as exc:
    print(f"listen failed: {exc}", flush=True); sys.exit(1)
s.serve_forever()
"""


class Pinger(ServerProcess):
    name = "pinger"

    def command(self) -> list[str]:
        return [sys.executable, "-c", PING_SERVER, str(self.port)]


class Mute(ServerProcess):
    """Runs, never answers."""

    name = "mute"

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(600)"]


class Dying(ServerProcess):
    name = "dying"

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"]


def test_a_port_taken_before_the_first_start_is_retried_on_a_fresh_one(tmp_path: Path):
    server = Pinger(sys.executable, tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        taken = server.port
        with server:
            assert server.port != taken and server.ready()
    log = server.log_path.read_text()
    assert "Address already in use" in log and f"port {taken} was taken" in log


def test_a_restart_keeps_its_port(tmp_path: Path):
    with Pinger(sys.executable, tmp_path) as server:
        port = server.port
        server.restart()
        assert server.port == port and server.ready()


def test_not_ready_in_time_names_the_log_and_leaves_nothing_running(tmp_path: Path):
    server = Mute(sys.executable, tmp_path, start_timeout=0.5)
    with pytest.raises(
        ServerStartError, match=r"mute not ready within 0.5 s \(port \d+\); log .*mute\.log"
    ):
        server.start()
    assert server.proc is None


def test_a_server_that_exits_at_start_is_one_error_with_its_log(tmp_path: Path):
    with pytest.raises(
        ServerStartError, match=r"(?s)dying exited with 3 at start.*dying\.log.*bad config"
    ):
        Dying(sys.executable, tmp_path).start()


def test_the_default_bound_is_generous():
    # a first MariaDB start on a loaded 2-core machine took over 60 s once
    assert ServerProcess.START_TIMEOUT_S >= 120
