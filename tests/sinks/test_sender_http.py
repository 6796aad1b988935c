"""Sender and retry behaviour against a scripted HTTP server on loopback.

The real databases cannot be told to answer 429/401 on demand; this server
can, and it checks what goes over the wire (gzip, auth header, query string).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sinks_helpers import camera_metrics

from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink
from cygno_online.sinks.senders import RETRY, SendError, V1Sender, parse_retry_after
from cygno_online.testing.waiting import wait_for


class Scripted:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.default = (204, {}, b"")
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        #: optional answer computed from the request body
        self.responder = None

    def next(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self.responder is not None:
                return self.responder(body)
            return self.script.pop(0) if self.script else self.default


@pytest.fixture
def server() -> Iterator[tuple[str, Scripted]]:
    state = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            status, headers, reply = state.next(body)
            with state.lock:
                state.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "time": time.monotonic(),
                        "status": status,
                    }
                )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def make_sink(url: str, tmp_path: Path, api: str = "v1", **extra) -> InfluxSink:
    section = {"api": api, "url": url, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    if api == "v1":
        section["database"] = "cygno"
    else:
        section.update(org="-", bucket="cygno/autogen")
    section.update(extra)
    return InfluxSink.from_params(Params(section, "influx"), state_dir=tmp_path, experiment="LIME")


def test_v1_request_format(server, tmp_path: Path, monkeypatch):
    url, state = server
    monkeypatch.setenv("CYGNO_TEST_PW", "pw")
    sink = make_sink(
        url, tmp_path, username="writer", password_env="CYGNO_TEST_PW", retention_policy="rp1"
    )
    sink.start()
    try:
        sink.submit(camera_metrics(10))
        assert sink.flush(10)
    finally:
        sink.stop(5)
    req = state.requests[0]
    assert req["path"].startswith("/write?")
    assert "db=cygno" in req["path"] and "rp=rp1" in req["path"] and "precision=ns" in req["path"]
    assert "pw" not in req["path"]  # credentials only in the header
    assert req["headers"]["Content-Encoding"] == "gzip"
    assert req["headers"]["Authorization"].startswith("Basic ")
    assert len(req["body"].splitlines()) == 10


def test_v2_request_format(server, tmp_path: Path):
    url, state = server
    token = tmp_path / "token"
    token.write_text("user:pw")
    sink = make_sink(url, tmp_path, api="v2", token_file=str(token))
    sink.start()
    try:
        sink.submit(camera_metrics(7))
        assert sink.flush(10)
    finally:
        sink.stop(5)
    req = state.requests[0]
    assert req["path"].startswith("/api/v2/write?")
    assert "bucket=cygno%2Fautogen" in req["path"] and "precision=ns" in req["path"]
    assert req["headers"]["Authorization"] == "Token user:pw"
    assert req["headers"]["Content-Encoding"] == "gzip"
    assert len(req["body"].splitlines()) == 7


def test_batches_of_batch_size(server, tmp_path: Path):
    url, state = server
    sink = make_sink(url, tmp_path, batch_size=100)
    sink.submit(camera_metrics(450))  # spooled before the sender starts
    sink.start()
    try:
        assert sink.flush(10)
    finally:
        sink.stop(5)
    sizes = [len(r["body"].splitlines()) for r in state.requests]
    assert sizes == [100, 100, 100, 100, 50]
    assert sink.stats()["batches"] == 5


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(server, tmp_path: Path, status: int):
    url, state = server
    state.script = [(status, {"Retry-After": "1"}, b"slow down")]
    sink = make_sink(url, tmp_path)
    sink.start()
    try:
        sink.submit(camera_metrics(5))
        assert sink.flush(15)
        st = sink.stats()
    finally:
        sink.stop(5)
    first, second = state.requests[:2]
    assert first["status"] == status and second["status"] == 204
    # the backoff alone would be <= 0.05 s: the wait came from Retry-After
    assert second["time"] - first["time"] >= 0.9
    assert first["body"] == second["body"]
    assert st["retries"] == 1 and st["points_sent"] == 5 and st["state"] == "ok"


def test_server_errors_back_off_and_resend(server, tmp_path: Path):
    url, state = server
    state.script = [(500, {}, b"boom")] * 3
    sink = make_sink(url, tmp_path)
    sink.start()
    try:
        sink.submit(camera_metrics(5))
        assert sink.flush(15)
    finally:
        sink.stop(5)
    assert [r["status"] for r in state.requests] == [500, 500, 500, 204]
    assert sink.stats()["retries"] == 3


def test_auth_error_keeps_spooling_then_recovers(server, tmp_path: Path, caplog):
    url, state = server
    state.default = (401, {}, b'{"error":"authorization failed"}')
    sink = make_sink(url, tmp_path, auth_retry_s=0.2)
    with caplog.at_level("ERROR"):
        sink.start()
        try:
            sink.submit(camera_metrics(20))
            wait_for(lambda: sink.stats()["state"] == "auth_error", what="auth_error state")
            sink.submit(camera_metrics(5, start=20))
            st = sink.stats()
            assert st["points_pending"] == 25 and "401" in st["last_error"]
            assert "refused the writes" in caplog.text
            assert any(
                m.fields["state"] == "auth_error" for m in sink.health_metrics(time.time_ns())
            )
            state.default = (204, {}, b"")  # credentials fixed on the server
            assert sink.flush(15)
            assert sink.stats()["state"] == "ok"
        finally:
            sink.stop(5)
    bodies = b"\n".join(r["body"] for r in state.requests if r["status"] == 204)
    assert len(bodies.splitlines()) == 25


def test_bad_request_bisects_and_quarantines(server, tmp_path: Path):
    url, state = server
    bad_serial = 13

    def respond(body: bytes):
        # like InfluxDB: any request holding the bad point is refused with 400
        if f"serial={bad_serial}i".encode() in body:
            return 400, {}, b'{"error":"partial write: field type conflict"}'
        return 204, {}, b""

    state.responder = respond
    sink = make_sink(url, tmp_path)
    sink.start()
    try:
        sink.submit(camera_metrics(40))
        assert sink.flush(15)
    finally:
        sink.stop(5)
    ok = b"\n".join(r["body"] for r in state.requests if r["status"] == 204).splitlines()
    assert len(ok) == 39 and not any(b"serial=13i" in line for line in ok)
    qdir = tmp_path / "influx-spool" / "quarantine"
    lp = list(qdir.glob("*.lp"))
    reasons = list(qdir.glob("*.jsonl"))
    assert len(lp) == 1 and len(reasons) == 1
    assert b"serial=13i" in lp[0].read_bytes()
    assert "field type conflict" in reasons[0].read_text()
    assert sink.stats()["quarantined"] == 1


def test_unreachable_server_is_a_retry(tmp_path: Path):
    from cygno_online.sinks.testservers import free_port

    sender = V1Sender(f"http://127.0.0.1:{free_port()}", "db", timeout_s=2)
    with pytest.raises(SendError) as info:
        sender.send(b"m v=1 1")
    assert info.value.kind == RETRY


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    when = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    assert when == pytest.approx(10.0)


def test_on_drop_called_for_a_full_spool(tmp_path: Path):
    drops = []
    section = {
        "api": "v1",
        "url": "http://127.0.0.1:9",
        "database": "x",
        "spool": {"max_bytes": 1 << 16, "segment_bytes": 1 << 13},
    }
    sink = InfluxSink.from_params(
        Params(section, "influx"),
        state_dir=tmp_path,
        experiment="LIME",
        on_drop=lambda n, r: drops.append((n, r)),
    )
    accepted = sum(sink.submit(camera_metrics(200, start=k * 200)) for k in range(10))
    assert accepted == 2000
    st = sink.stats()
    assert st["dropped"] > 0 and sum(n for n, _ in drops) == st["dropped"]
    assert st["spool_bytes"] <= 1 << 16
    assert st["points_pending"] + st["dropped"] == 2000
    sink.stop(1)
