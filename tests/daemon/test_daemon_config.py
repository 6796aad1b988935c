"""Configuration validation: complete, collected, with key paths."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from cygno_online.commands.daemon import overrides_from_args
from cygno_online.daemon.config import (
    EVENT_SIZE_MARGIN,
    camera_bytes,
    load_config,
    parse_config,
)
from cygno_online.errors import ConfigError, ConfigErrors

ROOT = Path(__file__).resolve().parents[2]


def errors_of(data) -> dict[str, ConfigError]:
    with pytest.raises((ConfigError, ConfigErrors)) as ei:
        parse_config(data, source="t.yaml", build_chain=False)
    errs = ei.value.errors if isinstance(ei.value, ConfigErrors) else [ei.value]
    return {e.path: e for e in errs}


def test_defaults():
    cfg, chain = parse_config({}, build_chain=False)
    assert chain is None
    assert cfg.source.type == "simulator"
    assert cfg.publish.bind == "tcp://127.0.0.1:5556"
    assert cfg.pipeline.queue_events >= 1
    assert cfg.source.midas.requests[0].sampling == "nonblocking"
    assert cfg.source.midas.max_event_size == 2304 * 2304 * 2 + EVENT_SIZE_MARGIN


def test_all_errors_are_collected_with_paths_values_and_allowed():
    errs = errors_of(
        {
            "experimant": "LIME",
            "source": {
                "type": "midas",
                "midas": {
                    "requests": [{"event_id": 1, "sampling": "fast"}],
                    "max_event_size": 4096,
                    "retry": {"initial_s": 10, "max_s": 1},
                },
                "simulator": {"layout": "lime2"},
            },
            "pipeline": {"wokers": 3, "queue_events": 0},
            "publish": {"bind": "tcp://0.0.0.0:5556", "snapshot_bind": "localhost"},
            "alarms": {"rules": [{"id": "a", "family": "gas"}]},
            "log_level": "LOUD",
        }
    )
    assert "is not a known key" in errs["experimant"].reason
    s = errs["source.midas.requests[0].sampling"]
    assert s.value == "fast" and "nonblocking" in s.allowed
    assert "camera images" in errs["source.midas.max_event_size"].reason
    assert "source.midas.retry.max_s" in errs
    assert "source.simulator.layout" in errs
    assert "workers" in errs["pipeline.wokers"].allowed
    assert "pipeline.queue_events" in errs
    assert "CURVE" in errs["publish.bind"].reason
    assert "publish.snapshot_bind" in errs
    assert "alarms.rules[0]" in errs
    assert errs["log_level"].value == "LOUD"


def test_replay_needs_files_and_speed_is_checked():
    errs = errors_of({"source": {"type": "replay", "replay": {"speed": "fast"}}})
    assert "source.replay.files" in errs and "source.replay.speed" in errs
    cfg, _ = parse_config(
        {"source": {"type": "replay", "replay": {"files": ["a.mid"], "speed": 2}}},
        build_chain=False,
    )
    assert cfg.source.replay.speed == 2.0


def test_curve_requires_both_keys_and_existing_files(tmp_path):
    errs = errors_of({"publish": {"curve": {"server_secret_key_file": str(tmp_path / "nope")}}})
    assert "publish.curve" in errs and "publish.curve.server_secret_key_file" in errs


def test_max_event_size_is_derived_from_camera_shapes():
    decode = {"banks": [{"bank": f"CAM{i}", "shape": [2304, 4096]} for i in range(4)]}
    assert camera_bytes(decode) == 4 * 2304 * 4096 * 2
    assert camera_bytes({"cameras": {"rows": 512, "cols": 512}}) == 512 * 512 * 2
    assert camera_bytes(None) == 2304 * 2304 * 2


def test_command_line_overrides():
    ns = argparse.Namespace(
        replay=["a.mid.lz4", "b.mid.lz4"], speed="3", follow=True, simulate=False
    )
    over = overrides_from_args(ns)
    cfg, _ = parse_config({"source": {"type": "midas"}}, overrides=over, build_chain=False)
    assert cfg.source.type == "replay"
    assert cfg.source.replay.files == ["a.mid.lz4", "b.mid.lz4"]
    assert cfg.source.replay.speed == 3.0 and cfg.source.replay.follow
    with pytest.raises(ConfigError):
        overrides_from_args(argparse.Namespace(replay=None, speed="2", follow=False, simulate=True))


def test_yaml_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  type: [midas\n")
    with pytest.raises(ConfigError) as ei:
        load_config(bad, build_chain=False)
    assert "bad.yaml" in str(ei.value) and "line" in str(ei.value)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml", build_chain=False)


def test_demo_config_is_packaged_and_identical_to_config_demo():
    packaged = ROOT / "cygno_online" / "daemon" / "demo.yaml"
    assert yaml.safe_load(packaged.read_text()) == yaml.safe_load(
        (ROOT / "config" / "demo.yaml").read_text()
    )


def test_live_source_keys():
    cfg, _ = parse_config({"source": {"type": "midas"}}, source="t.yaml", build_chain=False)
    m = cfg.source.midas
    assert (m.slots, m.budget_ms, m.retry_initial_s, m.retry_max_s) == (8, 20, 0.5, 2.0)
    errs = errors_of(
        {"source": {"type": "midas", "midas": {"communicate_ms": 0, "slots": 0, "budget_ms": 500}}}
    )
    # communicate(0) does nothing in libmidas: the reader must yield > 0 ms
    assert {
        "source.midas.communicate_ms",
        "source.midas.slots",
        "source.midas.budget_ms",
    } <= set(errs)
