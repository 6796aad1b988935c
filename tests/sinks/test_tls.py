"""TLS: certificates are verified by default, ``ca_file`` trusts a private CA."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sinks_helpers import camera_metrics

from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink
from cygno_online.testing.waiting import wait_for


@pytest.fixture(scope="module")
def https_server(tmp_path_factory) -> Iterator[tuple[str, Path, list[int]]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is missing")
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    received: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(1)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", cert, received
    finally:
        httpd.shutdown()
        httpd.server_close()


def sink_for(url: str, tmp_path: Path, api: str, **extra) -> InfluxSink:
    section = {"api": api, "url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, **extra}
    if api == "v1":
        section["database"] = "d"
    else:
        section.update(org="-", bucket="b")
    return InfluxSink.from_params(Params(section, "influx"), state_dir=tmp_path, experiment="E")


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_untrusted_certificate_is_refused(https_server, tmp_path: Path, api: str):
    url, _, received = https_server
    before = len(received)
    sink = sink_for(url, tmp_path, api)
    sink.start()
    try:
        sink.submit(camera_metrics(3))
        wait_for(lambda: sink.stats()["retries"] >= 2, timeout=60, what="refused handshakes")
        assert "CERTIFICATE_VERIFY_FAILED" in sink.stats()["last_error"]
        assert sink.stats()["points_pending"] == 3
    finally:
        sink.stop(5)
    assert len(received) == before


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_ca_file_or_verify_off_connects(https_server, tmp_path: Path, api: str):
    url, cert, received = https_server
    for k, extra in enumerate(({"ca_file": str(cert)}, {"verify_tls": False})):
        before = len(received)
        sink = sink_for(url, tmp_path / str(k), api, **extra)
        sink.start()
        try:
            sink.submit(camera_metrics(3))
            assert sink.flush(15)
        finally:
            sink.stop(5)
        assert len(received) == before + 1
