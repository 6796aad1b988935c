"""The ``influx`` configuration section."""

from __future__ import annotations

from pathlib import Path

import pytest

from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params
from cygno_online.sinks.influx import InfluxSink


def build(section: dict, state_dir: Path | None = Path("/nonexistent/state")) -> InfluxSink:
    return InfluxSink.from_params(Params(section, "influx"), state_dir=state_dir, experiment="LIME")


def errors_of(section: dict, **kw) -> list[ConfigError]:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        build(section, **kw)
    exc = info.value
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


V2 = {"enabled": True, "url": "http://127.0.0.1:1", "org": "-", "bucket": "cygno/autogen"}


def test_minimal_v2_and_defaults(tmp_path: Path):
    sink = build(dict(V2), state_dir=tmp_path)
    cfg = sink.config
    assert cfg.api == "v2" and cfg.batch_size == 5000 and cfg.verify_tls is True
    assert cfg.spool.dir == tmp_path / "influx-spool" and cfg.spool.fsync == "batch"
    # validation creates nothing on disk (check-config builds a sink too)
    assert not (tmp_path / "influx-spool").exists()


@pytest.mark.parametrize("key", ["token", "password"])
def test_literal_secrets_rejected(key: str):
    errs = errors_of({**V2, key: "s3cret"})
    e = next(e for e in errs if e.path == f"influx.{key}")
    assert f"{key}_file" in str(e) and f"{key}_env" in str(e)
    assert "s3cret" not in str(e)  # the secret is not echoed into logs


def test_token_from_file_and_env(tmp_path: Path, monkeypatch):
    f = tmp_path / "token"
    f.write_text("user:pw\n")
    assert build({**V2, "token_file": str(f)}).config.token == "user:pw"
    monkeypatch.setenv("CYGNO_TEST_TOKEN", "abc")
    assert build({**V2, "token_env": "CYGNO_TEST_TOKEN"}).config.token == "abc"
    # the secret never shows in repr/logs
    assert "abc" not in repr(build({**V2, "token_env": "CYGNO_TEST_TOKEN"}).config)
    errs = errors_of({**V2, "token_env": "CYGNO_TEST_UNSET_VAR"})
    assert errs[0].path == "influx.token_env" and "not set" in str(errs[0])
    errs = errors_of({**V2, "token_file": str(tmp_path / "missing")})
    assert errs[0].path == "influx.token_file"
    errs = errors_of({**V2, "token_file": str(f), "token_env": "X"})
    assert errs[0].path == "influx.token_file"


def test_v1_section(tmp_path: Path):
    pw = tmp_path / "pw"
    pw.write_text("secret")
    section = {
        "api": "v1",
        "url": "https://db.example:8086",
        "database": "cygno",
        "retention_policy": "autogen",
        "username": "writer",
        "password_file": str(pw),
        "spool": {"dir": str(tmp_path / "sp"), "fsync": "always", "max_bytes": 1 << 24},
    }
    cfg = build(section).config
    assert (cfg.database, cfg.username, cfg.password) == ("cygno", "writer", "secret")
    assert cfg.spool.dir == tmp_path / "sp" and cfg.spool.max_bytes == 1 << 24
    errs = errors_of({"api": "v1", "url": "http://x", "username": "u"})
    paths = {e.path for e in errs}
    assert paths == {"influx.database", "influx.username"}


def test_errors_are_collected_with_paths(tmp_path: Path):
    errs = errors_of(
        {
            "api": "v3",
            "url": "ftp://x",
            "batch_size": 0,
            "verify_tls": "yes",
            "typo_key": 1,
            "spool": {"fsync": "sometimes", "max_bytes": 1 << 20, "segment_bytes": 1 << 19, "x": 1},
        },
        state_dir=None,
    )
    paths = {e.path for e in errs}
    assert {
        "influx.api",
        "influx.url",
        "influx.batch_size",
        "influx.verify_tls",
        "influx.typo_key",
        "influx.spool.fsync",
        "influx.spool.segment_bytes",
        "influx.spool.x",
        "influx.spool.dir",
    } <= paths


def test_v2_needs_org_bucket_and_rejects_v1_keys():
    errs = errors_of({"url": "http://x", "database": "d"})
    assert {e.path for e in errs} == {"influx.org", "influx.bucket", "influx.database"}


def test_ca_file_must_exist(tmp_path: Path):
    errs = errors_of({**V2, "ca_file": str(tmp_path / "nope.pem")})
    assert errs[0].path == "influx.ca_file"
