from __future__ import annotations

import math

import numpy as np
import pytest
from decode_helpers import TID_DOUBLE, TID_FLOAT, TID_UINT32, event, odb, real_odb, run_info

from cygno_online.decode.bankmap import EventDecoder
from cygno_online.decode.items import SlowControl
from cygno_online.decode.slowcontrol import unit_from_label


def sc_items(res):
    return [i for i in res.items if isinstance(i, SlowControl)]


def by_name(item):
    return {r.name: r for r in item.readings}


def inpt(values=None):
    v = np.full(24, 4.0, dtype=np.float32)
    if values:
        for i, x in values.items():
            v[i] = x
    return v


LIME_VALUES = {0: 12.0, 3: 20.0, 5: 12.0, 9: 1.0, 13: 2.0, 22: 12.0, 1: 7.5, 8: 0.25}


def check_lime_conversions(r):
    assert r["P0IIn0"].value == pytest.approx(50.0) and r["P0IIn0"].unit == "degC"
    assert r["P0IIn0"].raw == pytest.approx(12.0)
    assert r["P0IIn3"].value == pytest.approx(1.6 * 1.007618) and r["P0IIn3"].unit.startswith("bar")
    assert r["P0IIn5"].value == pytest.approx(0.8 * 1.005454)
    assert r["P1UIn1"].value == pytest.approx(-22.7 + 82.3) and r["P1UIn1"].unit == "degC"
    assert r["P1UIn5"].value == pytest.approx(37.3) and r["P1UIn5"].unit == "%"
    assert r["P3IIn6"].value == pytest.approx(5.0) and r["P3IIn6"].unit == "g/l"


def test_environment_builtin_conversions_without_odb():
    dec = EventDecoder.lime()
    dec.begin_run(run_info())
    res = dec.decode(event(5, [("INPT", TID_FLOAT, inpt(LIME_VALUES))]), run=1)
    assert not res.errors
    (item,) = sc_items(res)
    assert item.equipment == "environment" and item.bank == "INPT"
    assert item.key == "environment/INPT"
    r = by_name(item)
    assert list(r) == (
        [f"P0IIn{i}" for i in range(8)]
        + [f"P1UIn{i}" for i in range(8)]
        + [f"P3IIn{i}" for i in range(8)]
    )
    check_lime_conversions(r)
    # unconverted inputs keep the raw value with the input's unit
    assert r["P0IIn1"].value == pytest.approx(7.5) and r["P0IIn1"].unit == "mA"
    assert r["P1UIn0"].value == pytest.approx(0.25) and r["P1UIn0"].unit == "V"
    assert r["P3IIn0"].unit == "mA"
    assert all(x.quantity == "input" for x in item.readings)
    assert [x.channel for x in item.readings] == list(range(24))


def test_environment_with_real_odb(shared_data):
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=real_odb(shared_data)))
    res = dec.decode(event(5, [("INPT", TID_FLOAT, inpt(LIME_VALUES))]), run=1)
    assert not res.errors
    r = by_name(sc_items(res)[0])
    check_lime_conversions(r)
    # units from the ODB panel labels
    assert r["P0IIn3"].unit == "bar(a)"
    # ODB-only conversions (no built-in): filter pressures
    assert r["P3IIn0"].value == pytest.approx(-1.0) and r["P3IIn0"].unit == "bar"
    assert r["P3IIn5"].unit == "K-295"
    # P1UIn1 has two different formulas in the ODB: the built-in one is kept
    # and the conflict is reported once
    assert any("P1UIn1" in w and "different formulas" in w for w in dec.warnings)
    n = len(dec.warnings)
    dec.decode(event(5, [("INPT", TID_FLOAT, inpt())]), run=1)
    assert len(dec.warnings) == n


def test_odb_formula_beats_builtin_and_config_beats_both():
    tree = {
        "Equipment": {
            "Environment": {"Settings": {"Names Input": [f"n{i}" for i in range(23)] + ["P0IIn0"]}}
        },
        "History": {
            "Display": {
                "Env": {
                    "T": {
                        "Variables": ["Environment:P0IIn0", "Environment:n1"],
                        "Formula": ["x*10", "x+1"],
                        "Label": ["T [K]", ""],
                    }
                }
            }
        },
    }
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=odb(tree)))
    v = inpt({23: 2.0, 1: 5.0})
    r = by_name(sc_items(dec.decode(event(5, [("INPT", TID_FLOAT, v)]), run=1))[0])
    assert r["P0IIn0"].channel == 23  # names from the ODB
    assert r["P0IIn0"].value == pytest.approx(20.0) and r["P0IIn0"].unit == "K"
    assert r["n1"].value == pytest.approx(6.0) and r["n1"].unit == ""
    dec = EventDecoder.from_config(
        {
            "preset": "lime",
            "banks": [
                {
                    "event_id": 5,
                    "bank": "INPT",
                    "decoder": "slow_control",
                    "equipment": "environment",
                    "odb_equipment": "Environment",
                    "odb_variable": "Input",
                    "builtin": "lime_environment",
                    "formulas": {"P0IIn0": "x*100"},
                    "units": {"P0IIn0": "cK"},
                }
            ],
        }
    )
    dec.begin_run(run_info(odb_obj=odb(tree)))
    r = by_name(sc_items(dec.decode(event(5, [("INPT", TID_FLOAT, v)]), run=1))[0])
    assert r["P0IIn0"].value == pytest.approx(200.0) and r["P0IIn0"].unit == "cK"
    assert r["n1"].value == pytest.approx(6.0)  # the ODB formula still applies elsewhere


def test_unsafe_odb_formula_is_skipped_with_warning():
    tree = {
        "History": {
            "Display": {
                "Env": {"T": {"Variables": "Environment:P0IIn0", "Formula": "__import__('os')"}}
            }
        }
    }
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=odb(tree)))
    r = by_name(sc_items(dec.decode(event(5, [("INPT", TID_FLOAT, inpt({0: 12.0}))]), run=1))[0])
    assert r["P0IIn0"].value == pytest.approx(50.0)  # built-in used instead
    assert any("__import__" in w for w in dec.warnings)


def test_inpt_wrong_length_is_a_bank_error():
    dec = EventDecoder.lime()
    dec.begin_run(run_info())
    img_event = event(
        5,
        [
            ("INPT", TID_FLOAT, np.zeros(23, np.float32)),
            ("OUTP", TID_FLOAT, np.zeros(2, np.float32)),
        ],
    )
    res = dec.decode(img_event, run=1)
    (err,) = res.errors
    assert err.bank == "INPT" and err.kind == "length" and "expected 24 values, got 23" in str(err)
    assert [i.bank for i in sc_items(res)] == ["OUTP"]


def test_hv_with_real_odb(shared_data):
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=real_odb(shared_data)))
    demand = np.linspace(0, 2500, 26).astype(np.float32)
    banks = [
        ("DMND", TID_FLOAT, demand),
        ("MSRD", TID_FLOAT, demand - 1),
        ("CRNT", TID_FLOAT, np.full(26, 0.5, np.float32)),
        ("STAT", TID_UINT32, np.arange(26, dtype=np.uint32)),
        ("TPTR", TID_FLOAT, np.full(26, 25.0, np.float32)),
    ]
    res = dec.decode(event(3, banks, bank_format=0x01), run=1)
    assert not res.errors
    items = {i.bank: i for i in sc_items(res)}
    assert set(items) == {"DMND", "MSRD", "CRNT", "STAT", "TPTR"}
    assert all(i.equipment == "hv" for i in items.values())
    d = items["DMND"].readings
    assert [x.name for x in d[:7]] == [
        "Offset",
        "VGEM3",
        "Transf2",
        "VGEM2",
        "Transf1",
        "VGEM1",
        "Drift",
    ]
    assert d[14].name == "PMT1" and d[1].quantity == "demand" and d[1].unit == "V"
    assert d[25].value == pytest.approx(2500.0)
    assert items["MSRD"].readings[0].quantity == "measured"
    c = items["CRNT"].readings[5]
    assert (c.name, c.quantity, c.unit, c.value) == ("VGEM1", "current", "uA", 0.5)
    assert items["STAT"].readings[3].value == 3.0 and items["STAT"].readings[3].quantity == "status"
    assert items["TPTR"].readings[0].unit == "degC"


def test_cathode_single_name_string(shared_data):
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=real_odb(shared_data)))
    res = dec.decode(event(4, [("MSRD", TID_FLOAT, np.array([-41291.0], np.float32))]), run=1)
    (item,) = sc_items(res)
    assert item.equipment == "cathode"
    (r,) = item.readings
    assert r.name == "ISEG_HPS" and r.value == -41291.0 and r.unit == "V"


def test_gas_names_from_odb_or_indexed(shared_data):
    values = np.arange(330, dtype=np.float32)
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=real_odb(shared_data)))
    (item,) = sc_items(dec.decode(event(6, [("MSRD", TID_FLOAT, values)]), run=1))
    assert item.equipment == "gas" and item.readings[14].name == "Logic_Press_Camera"
    dec.begin_run(run_info())
    (item,) = sc_items(dec.decode(event(6, [("MSRD", TID_FLOAT, values)]), run=1))
    assert item.readings[7].name == "gas_007" and item.readings[329].name == "gas_329"


def test_name_count_mismatch_warns_and_indexes(shared_data):
    dec = EventDecoder.lime()
    dec.begin_run(run_info(odb_obj=real_odb(shared_data)))
    res = dec.decode(event(3, [("DMND", TID_FLOAT, np.zeros(28, np.float32))]), run=1)
    assert not res.errors
    names = [r.name for r in sc_items(res)[0].readings]
    assert names[25] == "Ch10.011" and names[26:] == ["ch26", "ch27"]
    assert any("28 values but 26 channel names" in w for w in dec.warnings)


def test_camera_temperature_and_trigger_module():
    dec = EventDecoder.lime()
    dec.begin_run(run_info())
    res = dec.decode(event(7, [("TCAM", TID_DOUBLE, np.array([-18.0, -19.5]))]), run=1)
    (item,) = sc_items(res)
    assert item.equipment == "camera"
    assert [(r.name, r.quantity, r.unit, r.value) for r in item.readings] == [
        ("cam0", "temperature", "degC", -18.0),
        ("cam1", "temperature", "degC", -19.5),
    ]
    rates = np.array([0.9, 0, 0, 0, 4.5], np.float32)
    (item,) = sc_items(dec.decode(event(8, [("TMOD", TID_FLOAT, rates)]), run=1))
    assert item.equipment == "trigger_module" and item.key == "trigger_module/TMOD"
    assert [r.name for r in item.readings] == [f"rate{i}" for i in range(5)]
    assert all(r.quantity == "rate" and r.unit == "Hz" for r in item.readings)
    assert item.readings[4].value == pytest.approx(4.5)


def test_bad_values_give_nan_not_errors():
    dec = EventDecoder.from_config(
        {
            "banks": [
                {
                    "bank": "ADC0",
                    "decoder": "slow_control",
                    "equipment": "x",
                    "formulas": {"ADC0[0]": "log(x)"},
                }
            ]
        }
    )
    dec.begin_run(run_info())
    res = dec.decode(event(2, [("ADC0", TID_FLOAT, np.array([-1.0, np.nan], np.float32))]), run=1)
    assert not res.errors
    r = sc_items(res)[0].readings
    assert math.isnan(r[0].value) and r[0].raw == -1.0
    assert r[1].name == "ADC0[1]" and math.isnan(r[1].value)


def test_unit_from_label():
    assert unit_from_label("Gas Temperature [ºC]") == "degC"
    assert unit_from_label("Atm. Temperature [deg]") == "degC"
    assert unit_from_label("LIME Pressure (ext.) [bar(a)]") == "bar(a)"
    assert unit_from_label("Recovery pressure [bar(a)]]") == "bar(a)"
    assert unit_from_label("no unit") == ""
