"""Configuration files holding anything: every command and SIGHUP end in one
clear error naming the file and the position (or key path), never a
traceback; the running configuration stays on a rejected reload."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import pytest
import yaml
from fakes import FakeChain, FakeSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_online import cli
from cygno_online.daemon.config import (
    MAX_CONFIG_BYTES,
    endpoint_problem,
    load_config,
    message_template_problem,
    parse_config,
)
from cygno_online.daemon.main import Daemon, run_in_thread
from cygno_online.errors import ConfigError, ConfigErrors

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {p.name: p.read_bytes() for p in sorted((ROOT / "config").glob("*.yaml"))}
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOKENS = [
    b"[",
    b"{",
    b"]",
    b"}",
    b":",
    b"- ",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"1e999",
    b"'",
    b'"',
    b"\n",
    b"\t",
    b"2024-13-45",
    b"? [a]\n",
    b".inf",
    b"~",
    b"%YAML 1.1\n",
    b"---\n",
    b"!!python/object:os.system ",
    b"<<: *a\n",
    b"\xff",
    b"\x00",
    b"\xc3",
]


def mutate(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    b = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(5)
        i = rng.randrange(len(b) + 1)
        if op == 0 and i < len(b):
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i:i] = rng.choice(TOKENS)
        elif op == 2:
            del b[i : i + rng.randrange(1, 40)]
        elif op == 3:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j : j + rng.randrange(1, 80)]
        else:
            b[i:i] = bytes([rng.randrange(256)])
    return bytes(b)


def check_config_cli(path: Path, capsys) -> tuple[int, str]:
    code = cli.main(["check-config", str(path)])
    out = capsys.readouterr()
    return code, out.err


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_are_one_clear_error(tmp_path, capsys, data):
    path = tmp_path / "random.yaml"
    path.write_bytes(data)
    code, err = check_config_cli(path, capsys)
    # random bytes may (rarely) be a valid empty-ish mapping; never a traceback
    assert "Traceback" not in err
    if code != 0:
        assert code == 2 and str(path) in err


@SETTINGS
@given(st.sampled_from(sorted(SHIPPED)), st.integers(0, 2**32 - 1))
def test_mutated_shipped_configs_are_valid_or_one_clear_error(tmp_path, name, seed):
    path = tmp_path / name
    path.write_bytes(mutate(SHIPPED[name], seed))
    try:
        load_config(path, build_chain=False)
    except (ConfigError, ConfigErrors) as exc:
        text = str(exc)
        assert text and "Traceback" not in text


def test_shipped_configs_with_a_bad_byte_at_many_places(tmp_path, capsys):
    data = SHIPPED["lime.yaml"]
    path = tmp_path / "lime.yaml"
    for offset in range(0, len(data), max(1, len(data) // 40)):
        path.write_bytes(data[:offset] + b"\xff" + data[offset + 1 :])
        code, err = check_config_cli(path, capsys)
        assert code == 2 and "Traceback" not in err
        line = data.count(b"\n", 0, offset) + 1
        assert f"byte 0xff at offset {offset} (line {line}," in err, err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"\n  \n# only a comment\n", "is empty"),
        (b"~\n", "is empty"),
        (b"- a\n- b\n", "must be a YAML mapping"),
        (b"source: {type: simulator\n", "is not valid YAML at line"),
        (b"a: \x00\n", "is not valid YAML"),
        (b"experiment: 2024-13-45\n", "is not valid YAML"),
        (b"[" * 5000, "is not valid YAML"),
        (b"1: x\n", "keys must be strings"),
        (
            b"a: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + b"".join(
                b"%s: &%s [%s]\n" % (c, c, b",".join([b"*" + p] * 10))
                for p, c in zip(b"abcdef", b"bcdefg", strict=True)
                for p, c in [(bytes([p]), bytes([c]))]
            ),
            "expands to more than",
        ),
        (b"publish: {bind: 'udp://127.0.0.1:99999'}\n", "scheme 'udp'"),
        (b"publish: {bind: 'tcp://127.0.0.1:99999'}\n", "outside 1..65535"),
        (b"publish: {bind: 'tcp://127.0.0.1:http'}\n", "is not a number"),
        (b"publish: {bind: 'ipc:///no/such/dir/sock'}\n", "does not exist"),
        (b"publish: {control_bind: 'tcp://127.0.0.1:5556'}\n", "same endpoint as publish.bind"),
        (
            b"alarms: {rules: [{id: a, family: gas, above: 1, message: '{value:.3q}'}]}\n",
            "cannot be formatted",
        ),
        (
            b"alarms: {rules: [{id: a, family: gas, above: 1, message: '{pressure}'}]}\n",
            "unknown name {pressure}",
        ),
        (
            b"alarms: {rules: [{id: a, family: gas, above: 1, message: '{low}..{high}'}]}\n",
            "no band",
        ),
        (
            b"alarms: {rules: [{id: a, family: gas, above: 1, message: 'x {'}]}\n",
            "not a valid template",
        ),
    ],
    ids=lambda v: v[:24].decode("latin-1") if isinstance(v, bytes) else None,
)
def test_each_broken_file_names_the_problem(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, err = check_config_cli(path, capsys)
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert str(path) in err or "bad.yaml" in err


def test_huge_and_special_files_are_refused_fast(tmp_path, capsys):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:  # sparse: 50 MB without writing them
        fh.truncate(50 * 1024 * 1024)
    t0 = time.process_time()
    code, err = check_config_cli(huge, capsys)
    assert code == 2 and f"a configuration file is at most {MAX_CONFIG_BYTES} bytes" in err
    assert "52428800 bytes" in err
    assert time.process_time() - t0 < 5  # refused from its size, never parsed
    code, err = check_config_cli(tmp_path, capsys)
    assert code == 2 and "is a directory" in err
    code, err = check_config_cli(tmp_path / "missing.yaml", capsys)
    assert code == 2 and "cannot read" in err


@pytest.mark.parametrize("command", ["check-config", "daemon", "summary"])
@pytest.mark.parametrize(
    "content", [b"\xff\xfe bad", b"source: [unclosed\n", None], ids=["utf8", "yaml", "missing"]
)
def test_every_command_reports_a_bad_config_without_traceback(tmp_path, capsys, command, content):
    path = tmp_path / "cfg.yaml"
    if content is not None:
        path.write_bytes(content)
    argv = {
        "check-config": ["check-config", str(path)],
        "daemon": ["daemon", "--config", str(path)],
        "summary": ["summary", "--config", str(path), str(tmp_path / "x.mid")],
    }[command]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "Traceback" not in err, err


def test_endpoint_checks():
    assert endpoint_problem("tcp://127.0.0.1:5556") is None
    assert endpoint_problem("tcp://127.0.0.1:*") is None
    assert endpoint_problem("tcp://[::1]:5556") is None
    assert endpoint_problem("ipc://@abstract") is None
    assert "outside" in endpoint_problem("tcp://127.0.0.1:0")
    assert "needs HOST:PORT" in endpoint_problem("tcp://5556")
    assert "scheme" in endpoint_problem("inproc://x")


def test_shipped_alarm_messages_all_format():
    for name in SHIPPED:
        cfg, _ = load_config(ROOT / "config" / name, build_chain=False)
        assert all(message_template_problem(r) is None for r in cfg.alarm_rules)


def test_a_port_in_use_stops_the_daemon_with_one_clear_error(tmp_path, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    path = tmp_path / "d.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "publish": {"bind": f"tcp://127.0.0.1:{port}"},
                "analyzers": [],
            }
        )
    )
    try:
        code = cli.main(["daemon", "--config", str(path)])
    finally:
        s.close()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"publish.bind: cannot bind tcp://127.0.0.1:{port}: Address already in use" in err


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(mutate, st.sampled_from(sorted(SHIPPED.values())), st.integers(0, 2**32 - 1)),
    )
)
def test_sighup_with_any_bytes_keeps_the_running_configuration(reloading_daemon, data):
    d, path, before = reloading_daemon
    path.write_bytes(data)
    applied = d.reload()
    if not applied:
        assert d.cfg.data == before
    else:  # a mutation that is still a valid file: restore for the next example
        d.cfg.data = dict(before)
    assert d.pipeline._analysis_thread.is_alive()


@pytest.fixture(scope="module")
def reloading_daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reload")
    path = tmp / "cfg.yaml"
    data = {"state_dir": str(tmp / "state"), "publish": {"enabled": False}}
    path.write_text(yaml.safe_dump(data))
    cfg, _ = parse_config(yaml.safe_load(path.read_text()), source=str(path), build_chain=False)
    d = Daemon(cfg, FakeChain(), source=FakeSource(n=0, endless=True))
    d.validate_reload_chain = False
    run_in_thread(d)
    try:
        yield d, path, dict(d.cfg.data)
    finally:
        d.request_stop()
        d.shutdown()
