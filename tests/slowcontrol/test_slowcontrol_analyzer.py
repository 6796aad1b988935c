"""Slow-control metrics: names, units, families, run section."""

from __future__ import annotations

import math
import re

import pytest
from cygno_online.analyzers.slowcontrol import SlowControlAnalyzer
from cygno_online.analyzers.slowcontrol.analyzer import sanitize

from cygno_online.analysis.plugin import AnalyzerEnv, discover
from cygno_online.decode.items import EventContext, Reading, RunInfo, SlowControl
from cygno_online.errors import ConfigError
from cygno_online.params import Params

RUN = RunInfo(run=7, start_time_ns=10**18)
IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


def sc(equipment, bank, readings, serial=1, t=0):
    ctx = EventContext(7, serial, 5, 0, RUN.start_time_ns + t)
    return SlowControl(ctx, equipment, bank, readings)


def rd(name, quantity, value, unit="", channel=0):
    return Reading(name, quantity, value, unit, value, channel)


def make(params=None):
    a = SlowControlAnalyzer()
    p = Params(params or {}, "analyzers[3].params")
    a.configure(p, AnalyzerEnv())
    p.finish()
    a.begin_run(RUN)
    return a


def test_discovered():
    assert discover()["slowcontrol"] is SlowControlAnalyzer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Gas temperature", "gas_temperature"),
        ("P0IIn0", "p0iin0"),
        ("LIME pressure [bar]", "lime_pressure_bar"),
        ("  --Humidity %--", "humidity"),
        ("3rd GEM", "v_3rd_gem"),
        ("", "value"),
        ("Druck/Δp", "druck_p"),
    ],
)
def test_sanitize(raw, expected):
    assert sanitize(raw) == expected
    assert IDENT.match(sanitize(raw))


def test_environment_fields_named_by_reading_with_units():
    a = make()
    item = sc(
        "environment",
        "INPT",
        [
            rd("Gas temperature", "input", 22.5, "degC", 0),
            rd("LIME pressure", "input", 0.98, "bar", 5),
            rd("LIME pressure", "input", 0.99, "bar", 6),  # duplicate label
            rd("P1UIn7", "input", 1.5, "V", 15),
            rd("Broken", "input", math.nan, "V", 16),
        ],
    )
    (m,) = a.process(item, {})
    assert m.family == "environment" and m.tags == {}
    assert m.fields == {
        "gas_temperature": 22.5,
        "lime_pressure": 0.98,
        "lime_pressure_6": 0.99,
        "p1uin7": 1.5,
    }
    assert m.units == {
        "gas_temperature": "degC",
        "lime_pressure": "bar",
        "lime_pressure_6": "bar",
        "p1uin7": "V",
    }
    assert all(IDENT.match(k) for k in m.fields)
    a.process(sc("environment", "INPT", [rd("Gas temperature", "input", 24.5, "degC")]), {})
    doc = a.end_run(RUN)
    g = doc["environment"]["gas_temperature"]
    assert (g["mean"], g["min"], g["max"], g["n"], g["unit"]) == (23.5, 22.5, 24.5, 2, "degC")
    assert doc["skipped_non_finite"] == 1


def test_hv_and_cathode_channels():
    a = make()
    outs = list(
        a.process(
            sc(
                "hv",
                "MSRD",
                [rd("GEM1 top", "measured", 400.0, "V", 0), rd("Drift", "measured", 4000.0, "", 1)],
            ),
            {},
        )
    )
    outs += a.process(sc("hv", "CRNT", [rd("GEM1 top", "current", 0.12, "uA", 0)]), {})
    outs += a.process(sc("hv", "DMND", [rd("GEM1 top", "demand", 410.0, "", 0)]), {})
    outs += a.process(sc("hv", "STAT", [rd("GEM1 top", "status", 1.0, "", 0)]), {})
    outs += a.process(sc("cathode", "MSRD", [rd("HV", "measured", 30000.0, "V", 0)]), {})
    by = {}
    for m in outs:
        assert m.family == "hv"
        for k, v in m.fields.items():
            by[(m.tags["channel"], k)] = (v, m.units[k])
    assert by[("gem1_top", "measured")] == (400.0, "V")
    assert by[("drift", "measured")] == (4000.0, "V")  # default unit
    assert by[("gem1_top", "current")] == (0.12, "uA")
    assert by[("gem1_top", "demand")] == (410.0, "V")
    assert by[("gem1_top", "status")] == (1, "")
    assert isinstance(by[("gem1_top", "status")][0], int)
    assert by[("cathode_hv", "measured")] == (30000.0, "V")
    doc = a.end_run(RUN)
    assert doc["hv"]["gem1_top"]["measured"]["mean"] == 400.0
    assert doc["hv"]["gem1_top"]["current"]["unit"] == "uA"
    assert "status" not in doc["hv"]["gem1_top"]


def test_gas_camera_trigger_and_user_equipment():
    a = make({"summary_gas": False})
    (gas,) = a.process(
        sc(
            "gas",
            "MSRD",
            [rd("Flow CF4", "measured", 12.0, "l/h", 3), rd("Flow CF4", "demand", 12.5, "l/h", 3)],
        ),
        {},
    )
    assert gas.family == "gas"
    assert gas.fields == {"flow_cf4": 12.0, "flow_cf4_demand": 12.5}
    assert gas.units == {"flow_cf4": "l/h", "flow_cf4_demand": "l/h"}
    (cam0, cam1) = a.process(
        sc(
            "camera",
            "TCAM",
            [rd("cam0", "temperature", -18.0, "degC", 0), rd("cam1", "temperature", -17.5, "", 1)],
        ),
        {},
    )
    assert (cam0.family, cam0.tags, cam0.fields) == (
        "camera",
        {"camera": "cam0"},
        {"sensor_temperature": -18.0},
    )
    assert cam1.units == {"sensor_temperature": "degC"}
    (trg,) = a.process(
        sc("trigger_module", "TMOD", [rd("rate", "rate", 1.7, "Hz", i) for i in range(5)]), {}
    )
    assert trg.family == "daq" and trg.tags == {"equipment": "trigger_module"}
    assert sorted(trg.fields) == [f"trigger_rate_{i}" for i in range(5)]
    assert set(trg.units.values()) == {"Hz"}
    (user,) = a.process(
        sc("Chiller Unit", "TEMP", [rd("Water T", "temperature", 12.0, "degC")]), {}
    )
    assert user.family == "environment" and user.tags == {"equipment": "chiller_unit"}
    doc = a.end_run(RUN)
    assert "gas" not in doc
    assert doc["camera"]["cam0"]["sensor_temperature"]["mean"] == -18.0
    assert doc["trigger_module"]["trigger_rate_0"]["mean"] == 1.7
    assert doc["environment:chiller_unit"]["water_t"]["unit"] == "degC"


def test_begin_run_resets_and_empty_items():
    a = make()
    a.process(sc("environment", "INPT", [rd("T", "input", 1.0, "degC")]), {})
    a.begin_run(RUN)
    assert a.end_run(RUN) == {"skipped_non_finite": 0}
    assert list(a.process(sc("environment", "INPT", [rd("T", "input", math.inf)]), {})) == []


def test_lime_channel_names_become_physics_fields():
    a = make()
    item = sc(
        "environment",
        "INPT",
        [
            rd("P0IIn0", "input", 21.0, "degC", 0),
            rd("P0IIn5", "input", 0.91, "bar", 5),
            rd("P0IIn1", "input", 7.5, "mA", 1),
        ],
    )
    (m,) = a.process(item, {})
    assert m.fields == {"gas_temperature": 21.0, "lime_pressure": 0.91, "p0iin1": 7.5}
    assert m.units["lime_pressure"] == "bar"
    (out,) = a.process(
        sc(
            "environment",
            "OUTP",
            [rd("out0", "output", 1.0, "V", 0), rd("P0IIn1", "output", 2.0, "V", 1)],
        ),
        {},
    )
    assert out.fields == {"out0": 1.0, "p0iin1": 2.0}
    raw = make({"environment_names": {}})
    (m,) = raw.process(item, {})
    assert sorted(m.fields) == ["p0iin0", "p0iin1", "p0iin5"]
    with pytest.raises(ConfigError, match=r"environment_names\.P0IIn0"):
        make({"environment_names": {"P0IIn0": "Gas T"}})


def test_output_colliding_with_input_gets_suffix():
    a = make()
    (m,) = a.process(
        sc(
            "environment",
            "X",
            [rd("level", "input", 1.0, "V", 0), rd("level", "output", 2.0, "V", 0)],
        ),
        {},
    )
    assert m.fields == {"level": 1.0, "level_out": 2.0}


def test_gas_alarm_flags_counted():
    a = make({"summary_gas": False})
    readings = [rd(f"gas_{i:03d}", "measured", 0.0, "", i) for i in range(296, 306)]
    readings[4] = rd("gas_300", "measured", 1.0, "", 300)
    readings[0] = rd("gas_296", "measured", 5.0, "", 296)  # not an alarm channel
    (m,) = a.process(sc("gas", "MSRD", readings), {})
    assert m.fields["alarms_active"] == 1 and m.units["alarms_active"] == ""
    (d,) = a.process(sc("gas", "DMND", [rd("gas_300", "demand", 1.0, "", 300)]), {})
    assert "alarms_active" not in d.fields
    doc = a.end_run(RUN)
    assert doc["gas_alarms"]["alarms_active"]["max"] == 1
