from __future__ import annotations

import pytest
from decode_helpers import odb, real_odb

from cygno_online.decode.runinfo import is_pedestal_description, run_info_from_odb

NS = 10**9


def test_real_lime_odb(shared_data):
    info = run_info_from_odb(real_odb(shared_data), run=42901, time_stamp=5, source="bor")
    assert info.run == 42901
    assert info.exposure_s == pytest.approx(0.3)
    assert info.experiment == "CYGNUS_RD"
    assert info.start_time_ns == 1702593197 * NS  # /Runinfo/Start time binary
    assert info.pedestal is False
    assert info.source == "bor" and info.odb is not None
    assert info.extra["trigger_mode"] == 0


def test_without_odb():
    info = run_info_from_odb(None, run=7, time_stamp=1_700_000_000, source="x")
    assert info.start_time_ns == 1_700_000_000 * NS
    assert info.exposure_s is None and info.description == "" and info.experiment == ""
    assert info.pedestal is False
    assert run_info_from_odb(None, run=7, time_stamp=1, source="x", pedestal=True).pedestal


def tree(description="", pedestal=None, **extra):
    t = {"Experiment": {"Name": "LIME", "Run Parameters": {"Run description": description}}}
    conf = {"Exposure": 0.5}
    if pedestal is not None:
        conf["Pedestal"] = pedestal
    t["Configurations"] = conf
    t.update(extra)
    return odb(t)


def test_pedestal_sources_and_override():
    assert run_info_from_odb(tree("S000:PED:HV off"), run=1, time_stamp=1, source="").pedestal
    assert run_info_from_odb(tree("", pedestal=True), run=1, time_stamp=1, source="").pedestal
    assert not run_info_from_odb(tree("S003:DATA:Fe"), run=1, time_stamp=1, source="").pedestal
    forced = run_info_from_odb(tree("S000:PED:x"), run=1, time_stamp=1, source="", pedestal=False)
    assert not forced.pedestal
    info = run_info_from_odb(tree("S003:DATA:Fe, 440V"), run=1, time_stamp=1, source="")
    assert info.description == "S003:DATA:Fe, 440V" and info.exposure_s == 0.5


def test_experiment_override_and_start_time_fallback():
    info = run_info_from_odb(tree(), run=1, time_stamp=123, source="", experiment="CYGNO04")
    assert info.experiment == "CYGNO04" and info.start_time_ns == 123 * NS
    assert run_info_from_odb(tree(), run=1, time_stamp=1, source="").experiment == "LIME"
    t = tree(Runinfo={"Start time binary": "0x65800000"})
    assert run_info_from_odb(t, run=1, time_stamp=1, source="").start_time_ns == 0x65800000 * NS


def test_damaged_values_do_not_crash():
    t = odb(
        {
            "Configurations": {"Exposure": "2,5", "Pedestal": "y"},
            "Runinfo": {"Start time binary": "?"},
        }
    )
    info = run_info_from_odb(t, run=1, time_stamp=9, source="")
    assert info.exposure_s == 2.5 and info.pedestal and info.start_time_ns == 9 * NS


def test_pedestal_description_tokens():
    assert is_pedestal_description("S000:PED:HV off")
    assert is_pedestal_description("pedestal run")
    assert not is_pedestal_description("speed test")
    assert not is_pedestal_description("")
