"""TEMPORARY stand-in for cygno_online.midas (removed once it lands)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

DT = {
    1: "u1",
    2: "i1",
    3: "u1",
    4: "<u2",
    5: "<i2",
    6: "<u4",
    7: "<i4",
    8: "<u4",
    9: "<f4",
    10: "<f8",
    11: "<u4",
    17: "<i8",
    18: "<u8",
}


@dataclass
class EventHeader:
    event_id: int
    trigger_mask: int
    serial_number: int
    time_stamp: int
    data_size: int


@dataclass
class Bank:
    name: str
    type_id: int
    size: int
    data: Any


@dataclass
class Event:
    header: EventHeader
    banks: dict
    flags: int
    payload: Any
    source: str
    offset: int


def encode_event(event_id, serial, banks=(), *, trigger_mask=0, time_stamp=0, bank_format=0x31):
    body = b""
    for name, tid, arr in banks:
        raw = np.ascontiguousarray(arr).tobytes() if not isinstance(arr, bytes) else arr
        if bank_format == 0x31:
            body += struct.pack("<4sIII", name.encode(), tid, len(raw), 0)
        elif bank_format == 0x11:
            body += struct.pack("<4sII", name.encode(), tid, len(raw))
        else:
            body += struct.pack("<4sHH", name.encode(), tid, len(raw))
        body += raw + b"\0" * (-len(raw) % 8)
    payload = struct.pack("<II", len(body), bank_format) + body
    if event_id & 0x8000:
        payload = body if body else b""
    return struct.pack("<HHIII", event_id, trigger_mask, serial, time_stamp, len(payload)) + payload


def parse_event(buf, *, source="", offset=0):
    mv = memoryview(buf)
    eid, tm, ser, ts, size = struct.unpack_from("<HHIII", mv, 0)
    hdr = EventHeader(eid, tm, ser, ts, size)
    banks = {}
    if eid & 0x8000:
        return Event(hdr, banks, 0, mv[16 : 16 + size], source, offset)
    all_size, flags = struct.unpack_from("<II", mv, 16)
    pos = 24
    end = 24 + all_size
    while pos < end:
        if flags & 0x20:
            name, tid, bsize, _ = struct.unpack_from("<4sIII", mv, pos)
            pos += 16
        elif flags & 0x10:
            name, tid, bsize = struct.unpack_from("<4sII", mv, pos)
            pos += 12
        else:
            name, tid, bsize = struct.unpack_from("<4sHH", mv, pos)
            pos += 8
        raw = mv[pos : pos + bsize]
        data = np.frombuffer(raw, dtype=DT[tid]) if tid in DT else bytes(raw)
        banks[name.decode()] = Bank(name.decode(), tid, bsize, data)
        pos += bsize + (-bsize % 8)
    return Event(hdr, banks, flags, mv[16 : 16 + size], source, offset)


class Odb:
    def __init__(self, tree):
        self.tree = tree

    @classmethod
    def from_json_file(cls, path):
        with open(path) as f:
            return cls(json.load(f))

    def get(self, path, default=None):
        node = self.tree
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, dict):
                return default
            low = {k.lower(): v for k, v in node.items()}
            if part.lower() not in low:
                return default
            node = low[part.lower()]
        return node

    def exists(self, path):
        return self.get(path, self) is not self
