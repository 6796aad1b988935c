from __future__ import annotations

import numpy as np
import pytest
import yaml
from decode_helpers import (
    TID_CHAR,
    TID_FLOAT,
    TID_UINT16,
    TID_UINT32,
    event,
    parse_event,
    run_info,
)

from cygno_online.decode.bankmap import (
    DECODERS,
    DecodeResult,
    EventDecoder,
    default_bank_map,
)
from cygno_online.decode.items import (
    CameraFrame,
    EventSeen,
    MessageItem,
    RawBank,
    SlowControl,
)
from cygno_online.errors import ConfigError, ConfigErrors, DecodeError
from cygno_online.midas.event import encode_message
from cygno_online.params import Params

T0 = 1_750_000_000


def config_error(cfg) -> str:
    with pytest.raises((ConfigError, ConfigErrors)) as info:
        EventDecoder.from_config(cfg)
    return str(info.value)


# -- configuration ---------------------------------------------------------


def test_default_map_is_plain_yaml_and_equals_lime():
    data = default_bank_map()
    again = yaml.safe_load(yaml.safe_dump(data))
    assert again == data
    a = EventDecoder.from_config(again)
    b = EventDecoder.lime()
    assert [(r.event_ids, r.bank, r.decoder) for r in a.rules] == [
        (r.event_ids, r.bank, r.decoder) for r in b.rules
    ]
    assert {r.decoder for r in b.rules} >= {"camera", "digitizer", "time", "slow_control"}


def test_unknown_decoder_names_key_path_and_allowed():
    msg = config_error(
        {"banks": [{"bank": "CAM*", "decoder": "camera"}] * 3 + [{"bank": "X", "decoder": "camra"}]}
    )
    assert "decode.banks[3].decoder: is not an allowed value (got 'camra'); allowed: " in msg
    for name in DECODERS:
        assert repr(name) in msg


def test_all_problems_reported_at_once():
    cfg = {
        "preset": "limey",
        "time_base": {"default": "minutes", 1: "auto", "x": "seconds"},
        "banks": [
            {"bank": "CAM*", "decoder": "camera", "shap": [1, 2]},
            {"decoder": "raw"},
            {"bank": "INPT", "decoder": "slow_control"},
            {"bank": "INPT", "decoder": "slow_control", "equipment": "e", "formulas": {"a": "x.y"}},
            {"bank": "A", "decoder": "raw", "event_id": 70000},
            {"bank": "A", "decoder": "slow_control", "equipment": "e", "name_format": "{j}"},
            {"bank": "A", "decoder": "time", "shape": [2, 2]},
            {"bank": "C", "decoder": "camera", "cameras": {"one": {"shape": [2, 2]}, 1: {}}},
        ],
        "extra": 1,
    }
    msg = config_error(cfg)
    for fragment in (
        "decode.preset: is not an allowed value (got 'limey')",
        "decode.time_base.default: is not an allowed value (got 'minutes')",
        "decode.time_base.x: key must be 'default' or an event id",
        "decode.banks[0].shap: is not a known key",
        "decode.banks[1].bank: is required",
        "decode.banks[2].equipment: is required",
        "decode.banks[3].formulas.a: attribute access is not allowed",
        "decode.banks[4].event_id: must be an event id 0..65535",
        "decode.banks[5].name_format: must be a format using only {i} and {bank}",
        "decode.banks[6].shape: is not a known key",
        "decode.banks[7].cameras.one: key must be a camera number",
        "decode.banks[7].cameras.1.shape: is required",
        "decode.extra: is not a known key",
    ):
        assert fragment in msg, fragment


def test_banks_required_without_preset():
    assert "decode.banks: is required (or use preset: lime)" in config_error({})


def test_from_params_collects_errors_for_the_caller():
    p = Params({"decode": {"banks": [{"bank": "A", "decoder": "nope"}]}})
    EventDecoder.from_params(p.section("decode"))
    assert len(p.errors) == 1 and p.errors[0].path == "decode.banks[0].decoder"


def test_user_rules_before_preset():
    dec = EventDecoder.from_config(
        {"preset": "lime", "banks": [{"event_id": 1, "bank": "CAM1", "decoder": "raw"}]}
    )
    img = np.zeros((64, 64), np.uint16)
    res = dec.decode(event(1, [("CAM0", TID_UINT16, img), ("CAM1", TID_UINT16, img)]), run=1)
    kinds = [type(i).__name__ for i in res.items]
    assert kinds == ["EventSeen", "CameraFrame", "RawBank"]


# -- decoding --------------------------------------------------------------


def test_event_seen_first_and_unmatched_banks_counted():
    dec = EventDecoder.lime()
    ev = event(
        1,
        [
            ("CAM0", TID_UINT16, np.zeros((16, 16), np.uint16)),
            ("ZZZZ", TID_FLOAT, np.ones(3, np.float32)),
        ],
        serial=42,
        trigger_mask=3,
    )
    res = dec.decode(ev, run=12, source="file.mid", received_ns=99)
    assert isinstance(res, DecodeResult)
    seen = res.items[0]
    assert seen is res.seen and isinstance(seen, EventSeen)
    assert seen.bank_names == ("CAM0", "ZZZZ")
    assert seen.received_ns == 99 and seen.errors == ()
    assert seen.size_bytes == ev.header.data_size + 16
    assert seen.ctx.run == 12 and seen.ctx.serial == 42 and seen.ctx.trigger_mask == 3
    assert seen.ctx.source == "file.mid"
    assert [type(i) for i in res.items] == [EventSeen, CameraFrame]


def test_raw_and_ignore_and_any_event_id():
    dec = EventDecoder.from_config(
        {
            "banks": [
                {"bank": "SKIP", "decoder": "ignore"},
                {"event_id": [2, 9], "bank": "R*", "decoder": "raw"},
            ]
        }
    )
    data = np.arange(5, dtype=np.uint32)
    res = dec.decode(event(9, [("RAW1", TID_UINT32, data), ("SKIP", TID_UINT32, data)]), run=1)
    assert [type(i) for i in res.items] == [EventSeen, RawBank]
    raw = res.items[1]
    assert raw.bank == "RAW1" and raw.type_id == TID_UINT32 and list(raw.data) == list(data)
    res = dec.decode(event(3, [("RAW1", TID_UINT32, data)]), run=1)
    assert [type(i) for i in res.items] == [EventSeen]  # event id 3 not mapped


def test_message_event():
    dec = EventDecoder.lime()
    text = "[Logger,INFO] Run #11 started"
    # a message event is a header followed by NUL-terminated text, no banks
    ev = parse_event(encode_message(text, time_stamp=T0), source="t", offset=0)
    res = dec.decode(ev, run=11)
    assert not res.errors
    (msg,) = [i for i in res.items if isinstance(i, MessageItem)]
    assert msg.text == "[Logger,INFO] Run #11 started" and msg.ctx.time_ns == T0 * 10**9


def test_bor_and_eor_do_not_fail():
    dec = EventDecoder.lime()
    for eid in (0x8000, 0x8001):
        ev = event(eid, [], serial=11)
        res = dec.decode(ev, run=11)
        assert not res.errors and [type(i) for i in res.items] == [EventSeen]


def test_bad_bank_isolated_and_internal_errors_caught(monkeypatch):
    dec = EventDecoder.lime()
    img = np.zeros((64, 64), np.uint16)
    ev = event(
        1,
        [("CAM0", TID_UINT16, img), ("CAM1", TID_UINT16, img[:, :63]), ("CAM2", TID_UINT16, img)],
    )
    res = dec.decode(ev, run=1)
    assert [e.bank for e in res.errors] == ["CAM1"]
    assert all(isinstance(e, DecodeError) for e in res.errors)
    assert [i.camera for i in res.items if isinstance(i, CameraFrame)] == [0, 2]
    assert "run 1" in str(res.errors[0]) and "serial 1" in str(res.errors[0])

    camera_rule = next(r for r in dec.rules if r.decoder == "camera")

    def boom(bank, ctx):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(camera_rule.impl, "decode", boom)
    res = dec.decode(ev, run=1)
    assert {e.kind for e in res.errors} == {"internal"}
    assert "RuntimeError: kaboom" in str(res.errors[0])
    assert len(res.seen.errors) == 3


def test_wrong_bank_type_in_slow_control():
    dec = EventDecoder.lime()
    res = dec.decode(event(5, [("INPT", TID_CHAR, b"hello world")]), run=1)
    (err,) = res.errors
    assert err.kind == "type" and err.bank == "INPT"
    assert not [i for i in res.items if isinstance(i, SlowControl)]


# -- time base ---------------------------------------------------------------


def test_seconds_time_base_default():
    dec = EventDecoder.lime()
    dec.begin_run(run_info(start_s=T0))
    res = dec.decode(event(1, [], time_stamp=T0 + 5), run=1)
    assert res.seen.ctx.time_ns == (T0 + 5) * 10**9


def test_cygno04_time_bank_absolute_times():
    dec = EventDecoder.lime()
    dec.begin_run(run_info(start_s=T0 - 100))
    img = np.zeros((16, 16), np.uint16)
    t0 = T0 + 7
    first = event(
        1,
        [("TIME", TID_UINT32, np.array([t0], np.uint32)), ("CAM0", TID_UINT16, img)],
        time_stamp=0,
    )
    res = dec.decode(first, run=1)
    assert not res.errors
    assert res.seen.ctx.time_ns == t0 * 10**9
    assert res.items[1].ctx.time_ns == t0 * 10**9  # items share the context
    res = dec.decode(event(1, [("CAM0", TID_UINT16, img)], time_stamp=2500), run=1)
    assert res.seen.ctx.time_ns == t0 * 10**9 + 2_500_000_000
    # slow-control events keep Unix seconds
    res = dec.decode(event(7, [], time_stamp=T0 + 60), run=1)
    assert res.seen.ctx.time_ns == (T0 + 60) * 10**9
    # a new run resets the time zero: seconds again until a TIME bank
    dec.begin_run(run_info(start_s=T0 + 1000))
    res = dec.decode(event(1, [("CAM0", TID_UINT16, img)], time_stamp=T0 + 1001), run=2)
    assert res.seen.ctx.time_ns == (T0 + 1001) * 10**9


def test_forced_modes():
    dec = EventDecoder.from_config(
        {
            "time_base": {"default": "seconds", 1: "cygno04_ms"},
            "banks": [{"bank": "TIME", "decoder": "time"}],
        }
    )
    dec.begin_run(run_info(start_s=T0))
    # ms mode without TIME bank yet: relative to the run start
    assert (
        dec.decode(event(1, [], time_stamp=1500), run=1).seen.ctx.time_ns
        == T0 * 10**9 + 1_500_000_000
    )
    # seconds mode ignores TIME banks
    res = dec.decode(
        event(2, [("TIME", TID_UINT32, np.array([5], np.uint32))], time_stamp=T0), run=1
    )
    assert res.seen.ctx.time_ns == T0 * 10**9
    assert dec.decode(event(1, [], time_stamp=1), run=1).seen.ctx.time_ns == 5 * 10**9 + 1_000_000


def test_empty_time_bank_is_an_error():
    dec = EventDecoder.lime()
    dec.begin_run(run_info(start_s=T0))
    res = dec.decode(event(1, [("TIME", TID_UINT32, np.zeros(0, np.uint32))], time_stamp=T0), run=1)
    (err,) = res.errors
    assert err.bank == "TIME" and "empty" in str(err)
    assert res.seen.ctx.time_ns == T0 * 10**9


def test_unreadable_bank_area_is_an_error_not_an_exception():
    class Broken:
        header = event(1, []).header

        @property
        def banks(self):
            raise ValueError("bank 3 runs past the end of the event")

    res = EventDecoder.lime().decode(Broken(), run=1)
    (err,) = res.errors
    assert "bank area unreadable" in str(err) and "runs past" in str(err)
    assert res.items == [res.seen] and res.seen.errors[0][1] == "format"


def test_shipped_configs_bank_maps_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "config"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        if "decode" in data:
            EventDecoder.from_config(data["decode"], source=str(path))
    lime = yaml.safe_load((root / "lime.yaml").read_text())
    assert lime["decode"] == default_bank_map()
