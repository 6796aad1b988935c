"""Put the MIDAS stand-in on sys.path as top-level ``midas`` and build events."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

from cygno_online.testing import midas_standin


def midas_event(
    serial: int,
    banks: dict[str, tuple[int, bytes]],
    event_id: int = 1,
    trigger_mask: int = 1,
    time_stamp: int = 1_700_000_000,
) -> bytes:
    body = b""
    for name, (tid, data) in banks.items():
        body += (
            struct.pack("<4sII", name.encode(), tid, len(data)) + data + b"\0" * (-len(data) % 8)
        )
    payload = struct.pack("<II", len(body), 0x11) + body
    return struct.pack("<HHIII", event_id, trigger_mask, serial, time_stamp, len(payload)) + payload


def small_event(serial: int, event_id: int = 1, size: int = 64) -> bytes:
    return midas_event(serial, {"CAM0": (4, np.full(size // 2, serial, "<u2").tobytes())}, event_id)


def get_midas():
    """The stand-in ``midas`` package (after :func:`standin` ran)."""
    return sys.modules["midas"]


@pytest.fixture
def standin(monkeypatch, tmp_path_factory):
    """The stand-in modules (midas, midas.client, midas.experiment)."""
    midassys = tmp_path_factory.mktemp("midassys")
    (midassys / "lib").mkdir()
    (midassys / "lib" / "libmidas-c-compat.so").write_bytes(b"")
    monkeypatch.setenv("MIDASSYS", str(midassys))
    for name in [m for m in sys.modules if m == "midas" or m.startswith("midas.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(midas_standin.path())
    import midas
    import midas.client
    import midas.event
    import midas.experiment

    yield midas
    cur = midas.client._current
    if cur is not None:
        cur.disconnect()
    for name in [m for m in sys.modules if m == "midas" or m.startswith("midas.")]:
        del sys.modules[name]


@pytest.fixture(autouse=True)
def standin_autouse(standin):
    """Import this into a test module to give every test the stand-in."""
    return standin
