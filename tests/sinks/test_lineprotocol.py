"""Line protocol encoding: escaping, tag order, the field type rule."""

from __future__ import annotations

import math
from pathlib import Path

from cygno_online.analysis.outputs import Metric
from cygno_online.sinks.lineprotocol import (
    LineEncoder,
    TypeRegistry,
    escape_key,
    escape_measurement,
    escape_string_field,
)


def m(fields, tags=None, family="camera", run=5, serial=3, t=1_700_000_000_000_000_123, units=None):
    return Metric(family, t, run, serial, fields, tags or {}, units or {})


def test_basic_line_layout():
    enc = LineEncoder("LIME")
    line = enc.encode(m({"mean": 1.5}, {"camera": "cam0", "board": "b1"}))
    assert line == (
        b"camera,board=b1,camera=cam0,experiment=LIME,run=5 mean=1.5,serial=3i 1700000000000000123"
    )


def test_tags_sorted_and_sink_tags_win():
    enc = LineEncoder("LIME")
    line = enc.encode(m({"x": 1.0}, {"z": "1", "a": "2", "run": "999", "experiment": "X"}))
    tags = line.split(b" ")[0].split(b",")[1:]
    assert tags == [b"a=2", b"experiment=LIME", b"run=5", b"z=1"]


def test_escaping():
    assert escape_measurement("my meas,x=1") == "my\\ meas\\,x=1"
    assert escape_key("a b,c=d") == "a\\ b\\,c\\=d"
    # a backslash is kept, and doubled only where it would swallow a separator
    assert escape_key("x\\y") == "x\\y"
    assert escape_key("end\\") == "end\\\\"
    assert escape_string_field('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'
    assert escape_string_field("two\nlines") == '"two\\nlines"'
    enc = LineEncoder("LIME")
    line = enc.encode(m({"the field": 'v,=" x'}, {"tag key": "a=b,c"}))
    assert line.startswith(b"camera,experiment=LIME,run=5,tag\\ key=a\\=b\\,c the\\ field=")
    assert b'"v,=\\" x"' in line
    assert b"\n" not in enc.encode(m({"msg": "a\nb"}, {"t": "c\nd"}))


def test_empty_tag_values_left_out():
    enc = LineEncoder("LIME")
    assert enc.encode(m({"x": 1.0}, {"camera": ""})).startswith(b"camera,experiment=LIME,run=5 ")


def test_numbers_are_floats_serial_and_declared_fields_integers():
    enc = LineEncoder("LIME", integer_fields=["counts", "pmt.hits"])
    line = enc.encode(m({"a": 3, "b": 2.5, "counts": 4, "hits": 9}))
    assert b"a=3.0" in line and b"b=2.5" in line and b"counts=4i" in line
    assert b"hits=9.0" in line  # "pmt.hits" is only an integer in pmt
    assert b"serial=3i" in line
    assert b"hits=9i" in enc.encode(m({"hits": 9}, family="pmt"))
    # an integral float in an integer field is fine, a fraction is not
    assert b"counts=5i" in enc.encode(m({"counts": 5.0, "a": 1}))
    line = enc.encode(m({"counts": 5.5, "a": 1}))
    assert b"counts" not in line and enc.counters.fields_skipped == 1


def test_field_type_never_changes():
    enc = LineEncoder("LIME")
    enc.encode(m({"v": 1.0, "flag": True, "s": "x"}))
    # int after float: still float; bool into a float field becomes 0/1
    assert b"v=2.0" in enc.encode(m({"v": 2, "flag": False, "s": "y"}))
    assert b"v=1.0" in enc.encode(m({"v": True, "flag": True, "s": "y"}))
    # a string can never go into a float field: left out and counted
    line = enc.encode(m({"v": "oops", "flag": True}))
    assert b"v=" not in line and b"flag=true" in line
    assert enc.counters.fields_skipped == 1
    assert "camera.v" in enc.counters.conflicts
    # a number in a bool field: left out
    assert b"flag" not in enc.encode(m({"flag": 3.0, "v": 1.0}))


def test_nan_inf_left_out_and_empty_metric_dropped():
    enc = LineEncoder("LIME")
    line = enc.encode(m({"a": math.nan, "b": math.inf, "c": 1.0}))
    assert b"a=" not in line and b"b=" not in line and b"c=1.0" in line
    assert enc.encode(m({"a": math.nan})) is None
    assert enc.encode(m({})) is None
    assert enc.counters.invalid_points == 2


def test_float_formatting_round_trips():
    enc = LineEncoder("LIME")
    for value in (0.1, 1e-300, 123456789.123456789, -2.5e17):
        line = enc.encode(m({"x": value}))
        text = line.split(b" ")[1].split(b",")[0].split(b"=")[1]
        assert float(text) == value


def test_numpy_scalars():
    import numpy as np

    enc = LineEncoder("LIME")
    line = enc.encode(m({"a": np.float32(1.5), "b": np.int64(4)}))
    assert b"a=1.5" in line and b"b=4.0" in line


def test_registry_persists_kinds_and_units(tmp_path: Path):
    path = tmp_path / "schema.json"
    reg = TypeRegistry(path)
    enc = LineEncoder("LIME", registry=reg)
    enc.encode(m({"flag": True, "mean": 1.0}, units={"mean": "ADC"}))
    reg.save()
    reg2 = TypeRegistry(path)
    assert reg2.kind("camera", "flag") == "boolean"
    assert reg2.as_dict()["measurements"]["camera"]["mean"] == {"type": "float", "unit": "ADC"}
    # after a restart a string for the bool field is still refused
    enc2 = LineEncoder("LIME", registry=reg2)
    assert b"flag" not in enc2.encode(m({"flag": "yes", "mean": 2.0}))


def test_damaged_registry_file_is_ignored(tmp_path: Path):
    path = tmp_path / "schema.json"
    path.write_text("{not json")
    reg = TypeRegistry(path)
    assert reg.kind("camera", "x") is None


def test_none_values_are_skipped_quietly():
    enc = LineEncoder("LIME")
    line = enc.encode(m({"rate": None, "n": 1.0}))
    assert b"rate" not in line and enc.counters.conflicts == {}
    assert enc.counters.fields_skipped == 1


def test_cached_plans_give_the_same_lines():
    import numpy as np

    metrics = [
        m({"a": 1, "b": 2.5, "c": True, "d": "x y", "counts": 3, "e": np.float32(0.5)}),
        m({"a": 2.0, "b": True, "c": False, "d": "z", "counts": 4.0, "e": math.nan}),
        m({"a": "bad", "b": 1, "c": 1.0, "d": 5, "counts": 2.5, "e": 1}),
    ]
    fresh = [LineEncoder("LIME", integer_fields=["counts"]).encode(x) for x in metrics]
    enc = LineEncoder("LIME", integer_fields=["counts"])
    first = [enc.encode(x) for x in metrics]
    again = [enc.encode(x) for x in metrics]
    assert first == again
    assert first[0] == fresh[0]
    assert b"a=2.0" in first[1] and b"b=1.0" in first[1] and b"counts=4i" in first[1]
    assert b"e=" not in first[1]  # NaN still left out on the cached path
