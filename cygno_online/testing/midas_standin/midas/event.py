"""Stand-in of ``midas.event``: Event, EventHeader, Bank, unpacked from the
bytes of one MIDAS event exactly as the bindings do it (STRING, ARRAY and
STRUCT banks make the unpacker raise ``TypeError``: their type size is None)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TID_DTYPES = {
    1: "u1",
    2: "i1",
    3: "S1",
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
#: bank types whose size the bindings' table gives as None
UNSUPPORTED = {12: "STRING", 13: "ARRAY", 14: "STRUCT"}


@dataclass
class EventHeader:
    event_id: int = 0
    trigger_mask: int = 0
    serial_number: int = 0
    timestamp: int = 0
    event_data_size_bytes: int = 0


@dataclass
class Bank:
    name: str
    type: int
    size_bytes: int
    data: Any


@dataclass
class Event:
    header: EventHeader = field(default_factory=EventHeader)
    banks: dict[str, Bank] = field(default_factory=dict)
    non_bank_data: Any = None
    all_bank_size: int = 0
    flags: int = 0

    def unpack(self, buf: bytes | bytearray | memoryview, use_numpy: bool = False) -> None:
        mv = memoryview(buf).cast("B")
        eid, mask, serial, ts, size = struct.unpack_from("<HHIII", mv, 0)
        self.header = EventHeader(eid, mask, serial, ts, size)
        self.banks = {}
        self.non_bank_data = None
        payload = mv[16 : 16 + size]
        if eid in (0x8000, 0x8001, 0x8002) or len(payload) < 8:
            self.non_bank_data = bytes(payload)
            return
        all_size, flags = struct.unpack_from("<II", payload, 0)
        if flags & 0x01 == 0 or all_size + 8 > len(payload):
            self.non_bank_data = bytes(payload)
            return
        self.all_bank_size, self.flags = all_size, flags
        pos = 8
        end = 8 + all_size
        while pos < end:
            if flags & 0x20:
                name, tid, bsize, _ = struct.unpack_from("<4sIII", payload, pos)
                pos += 16
            elif flags & 0x10:
                name, tid, bsize = struct.unpack_from("<4sII", payload, pos)
                pos += 12
            else:
                name, tid, bsize = struct.unpack_from("<4sHH", payload, pos)
                pos += 8
            bname = name.decode("ascii", "replace")
            raw = payload[pos : pos + bsize]
            if tid in UNSUPPORTED:
                # the real unpacker divides by the type size, None for these
                raise TypeError(
                    "unsupported operand type(s) for //: 'int' and 'NoneType' "
                    f"(bank {bname}, type {UNSUPPORTED[tid]})"
                )
            dtype = TID_DTYPES.get(tid)
            if dtype is None:
                raise ValueError(f"Unknown bank type {tid} ({bname})")
            arr = np.frombuffer(raw, dtype=dtype)
            data = arr if use_numpy else tuple(arr.tolist())
            self.banks[bname] = Bank(bname, tid, bsize, data)
            pos += (bsize + 7) & ~7
