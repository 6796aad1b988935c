"""ODB dumps: JSON (with metadata, hex, decimal commas), XML, ASCII, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from cygno_online.errors import MidasFormatError, UnsupportedFormatError
from cygno_online.midas.odb import Odb
from cygno_online.midas.reader import MidasReader

MIDAS_JSON = b"""{
  "Configurations" : {
    "Exposure/key" : { "type" : 10, "access_mode" : 7, "last_written" : 1 },
    "Exposure" : 2,5000000e+00,
    "Mask/key" : { "type" : 6, "access_mode" : 7, "last_written" : 1 },
    "Mask" : "0x00400000",
    "Words/key" : { "type" : 4, "num_values" : 2, "access_mode" : 7, "last_written" : 1 },
    "Words" : [ "0x0dc5", "0x0001" ],
    "Label/key" : { "type" : 12, "size" : 32, "access_mode" : 7, "last_written" : 1 },
    "Label" : "0x12 is text, 1,5 stays",
    "Ints" : [ 1, 2, 3 ]
  }
}"""


def test_json_metadata_hex_and_decimal_comma() -> None:
    odb = Odb.from_dump(MIDAS_JSON)
    assert odb.get("/Configurations/Exposure") == 2.5
    assert odb.get("/Configurations/Mask") == 0x00400000
    assert odb.get("/Configurations/Words") == [0x0DC5, 1]
    # strings are never touched: no hex conversion, no comma repair
    assert odb.get("/Configurations/Label") == "0x12 is text, 1,5 stays"
    assert odb.get("/Configurations/Ints") == [1, 2, 3]
    assert "Exposure/key" not in odb.data["Configurations"]
    assert odb.type_of("/configurations/exposure") == 10


def test_lookup_rules() -> None:
    odb = Odb({"Equipment": {"HV": {"Settings": {"Names": ["a", "b"]}}}, "X": 1})
    assert odb.get("Equipment/HV/Settings/Names") == ["a", "b"]
    assert odb.get("/equipment/hv/SETTINGS/names") == ["a", "b"]
    assert odb.get("/Equipment/HV/Settings/Names[1]") == "b"
    assert odb.get("/missing", None) is None
    assert odb.exists("/X") and not odb.exists("/Y")
    assert "/x" in odb
    with pytest.raises(KeyError, match="/Equipment/LV"):
        odb.get("/Equipment/LV")
    assert odb.get("/")["X"] == 1
    assert dict(odb.walk("/Equipment")) == {"/Equipment/HV/Settings/Names": ["a", "b"]}


def test_json_file(shared_data: Path) -> None:
    odb = Odb.from_json_file(shared_data / "odb" / "lime_lngs_run42901_odb.json")
    assert odb.get("/Configurations/Exposure") == 0.3
    assert odb.get("/Experiment/Run Parameters/Run description") == "Standard - LOW Gain"
    assert odb.get("/Runinfo/Start time binary") == 1702593197


@pytest.mark.parametrize("name", ["run00010.mid.lz4", "run00011.mid.gz"])
def test_bor_dump_of_real_files(shared_data: Path, name: str) -> None:
    events = list(MidasReader(shared_data / "midas" / name))
    for ev in (events[0], events[-1]):
        odb = ev.odb()
        assert odb.get("/Configurations/Exposure") == 0.3
        assert odb.get("/Runinfo/Run number") == ev.serial
        names = odb.get("/Equipment/Environment/Settings/Names Input")
        assert isinstance(names, list) and names and all(isinstance(n, str) for n in names)


XML = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- created by MIDAS -->
<odb root="/" filename="run1.xml">
  <dir name="Configurations">
    <key name="Exposure" type="DOUBLE">0.3</key>
    <key name="Pedestal" type="BOOL">n</key>
    <key name="Count" type="INT">7</key>
    <key name="Mask" type="DWORD">4194304</key>
  </dir>
  <dir name="Equipment">
    <dir name="HV"><dir name="Settings">
      <keyarray name="Names" type="STRING" size="32" num_values="2">
        <value index="0">HV 1</value>
        <value index="1">HV 2</value>
      </keyarray>
      <keyarray name="Limits" type="FLOAT" num_values="2">
        <value index="0">1.5</value><value index="1">2</value>
      </keyarray>
    </dir></dir>
  </dir>
  <dir name="Experiment"><dir name="Run Parameters">
    <key name="Run description" type="STRING" size="80">test &amp; run</key>
  </dir></dir>
</odb>
"""


def test_xml_dump() -> None:
    odb = Odb.from_dump(XML)
    assert odb.get("/Configurations/Exposure") == 0.3
    assert odb.get("/Configurations/Pedestal") is False
    assert odb.get("/Configurations/Count") == 7
    assert odb.get("/Configurations/Mask") == 4194304
    assert odb.get("/Equipment/HV/Settings/Names") == ["HV 1", "HV 2"]
    assert odb.get("/Equipment/HV/Settings/Limits") == [1.5, 2.0]
    assert odb.get("/Experiment/Run Parameters/Run description") == "test & run"


def test_ascii_dump_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match="ASCII"):
        Odb.from_dump(b"[/Experiment]\nName = STRING : [32] lime\n")


@pytest.mark.parametrize(
    "dump", [b"", b"\0\0", b"{broken", b"<odb><dir", b"<html></html>", b"[1, 2]x", b"hello", b"[]"]
)
def test_garbage_dumps_raise_format_error(dump: bytes) -> None:
    with pytest.raises(MidasFormatError):
        Odb.from_dump(dump)


def test_nul_terminated_json() -> None:
    assert Odb.from_dump(b'{"a": 1}\0\0').get("a") == 1
