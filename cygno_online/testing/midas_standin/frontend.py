"""Events as a LIME frontend sends them, built byte by byte from the format in
/work/shared/docs/midas.md (independent of the project's own encoder, so that
tests of the parser do not check it against itself)."""

from __future__ import annotations

import struct

TID_UINT16, TID_UINT32, TID_FLOAT, TID_STRING, TID_ARRAY, TID_STRUCT = 4, 6, 9, 12, 13, 14


def bank_event(
    serial: int,
    banks: list[tuple[str, int, bytes]],
    *,
    event_id: int = 1,
    trigger_mask: int = 1,
    time_stamp: int = 1_700_000_000,
    bank32: bool = True,
) -> bytes:
    """One event: 16-byte header, bank header (flags 0x11 BANK32 or 0x01
    16-bit), banks padded to 8 bytes."""
    body = bytearray()
    for name, tid, data in banks:
        fmt = "<4sII" if bank32 else "<4sHH"
        body += struct.pack(fmt, name.encode("ascii"), tid, len(data))
        body += data + b"\0" * (-len(data) % 8)
    payload = struct.pack("<II", len(body), 0x11 if bank32 else 0x01) + bytes(body)
    return struct.pack("<HHIII", event_id, trigger_mask, serial, time_stamp, len(payload)) + payload


def small_event(serial: int, size: int = 64, event_id: int = 1) -> bytes:
    """A trigger-like event with one UINT16 bank of ``size`` bytes (BANK32)."""
    data = struct.pack(f"<{size // 2}H", *([serial & 0xFFFF] * (size // 2)))
    return bank_event(serial, [("CAM0", TID_UINT16, data)], event_id=event_id)


def slow_control_event(serial: int, values: list[float], event_id: int = 6) -> bytes:
    """A slow-control event: FLOAT bank in the 16-bit format."""
    data = struct.pack(f"<{len(values)}f", *values)
    return bank_event(serial, [("MSRD", TID_FLOAT, data)], event_id=event_id, bank32=False)


def string_bank_event(serial: int, text: str = "hello LIME", event_id: int = 1) -> bytes:
    """An event carrying a STRING bank beside a UINT16 bank (the bindings'
    unpacker raises TypeError on it)."""
    return bank_event(
        serial,
        [
            ("CAM0", TID_UINT16, b"\1\0" * 8),
            ("TEXT", TID_STRING, text.encode() + b"\0"),
        ],
        event_id=event_id,
    )


def struct_bank_event(serial: int, event_id: int = 1) -> bytes:
    """An event carrying a STRUCT bank (type 14: a C struct as bytes, here
    ``{uint32 channel; float value; char name[8]}``) beside a UINT16 bank."""
    record = struct.pack("<If8s", 7, 1.5, b"GEM1")
    return bank_event(
        serial,
        [("CAM0", TID_UINT16, b"\1\0" * 8), ("INFO", TID_STRUCT, record)],
        event_id=event_id,
    )


def array_bank_event(serial: int, event_id: int = 1) -> bytes:
    """An event carrying an ARRAY bank (type 13: opaque bytes, 13 of them so
    that the padding to 8 bytes shows) beside a UINT16 bank."""
    return bank_event(
        serial,
        [("CAM0", TID_UINT16, b"\1\0" * 8), ("ARRY", TID_ARRAY, bytes(range(13)))],
        event_id=event_id,
    )


def oversized_event(serial: int, size: int, event_id: int = 1) -> bytes:
    """An event whose bank alone is ``size`` bytes (bigger than a receive buffer)."""
    return bank_event(serial, [("CAM0", TID_UINT16, bytes(size))], event_id=event_id)
