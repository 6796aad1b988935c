"""MIDAS events and banks: zero-copy parsing and byte-exact encoding.

Layout (little-endian, see docs/midas.md): a 16-byte event header, then for
ordinary events an 8-byte bank-area header (``all_bank_size``, ``flags``) and
the banks, each padded to 8 bytes. Special events (BOR/EOR/message, ids
0x8000-0x8002) carry a raw payload instead of banks.

Design choices
- ``Bank.data`` of a fixed-size type is a read-only ``np.frombuffer`` view
  into the event's buffer: parsing a 10.6 MB camera event costs a few
  microseconds and never copies a pixel. CHAR banks map to ``uint8`` (not
  ``S1``) so they behave as numbers like every other integer type; use
  ``bytes(bank.data)`` for text.
- STRING/ARRAY/STRUCT/unknown types give a ``memoryview`` of the bank data.
- Duplicate bank names in one event: the first bank wins (as MIDAS's own
  ``bk_locate``), the names of the ignored duplicates are listed in
  ``Event.duplicate_banks`` so callers can count them.
- Every malformed input raises :class:`MidasFormatError` (never IndexError,
  struct.error or ValueError) naming source, offset, serial, event id, bank.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cygno_online.errors import MidasFormatError, UnsupportedFormatError

# Bank-area flags (bk_init / bk_init32 / bk_init32a)
BANK16 = 0x01
BANK32 = 0x11
BANK32A = 0x31
BANK_FORMATS = (BANK16, BANK32, BANK32A)
BANK_FORMAT_NAMES = {BANK16: "BANK16", BANK32: "BANK32", BANK32A: "BANK32A"}

EVENTID_BOR = 0x8000
EVENTID_EOR = 0x8001
EVENTID_MESSAGE = 0x8002
SPECIAL_IDS = (EVENTID_BOR, EVENTID_EOR, EVENTID_MESSAGE)
MIDAS_MAGIC = 0x494D

TID_UINT8 = 1
TID_INT8 = 2
TID_CHAR = 3
TID_UINT16 = 4
TID_WORD = TID_UINT16
TID_INT16 = 5
TID_UINT32 = 6
TID_DWORD = TID_UINT32
TID_INT32 = 7
TID_BOOL = 8
TID_FLOAT = 9
TID_DOUBLE = 10
TID_BITFIELD = 11
TID_STRING = 12
TID_ARRAY = 13
TID_STRUCT = 14
TID_KEY = 15
TID_LINK = 16
TID_INT64 = 17
TID_UINT64 = 18

DTYPES: dict[int, np.dtype] = {
    TID_UINT8: np.dtype("u1"),
    TID_INT8: np.dtype("i1"),
    TID_CHAR: np.dtype("u1"),
    TID_UINT16: np.dtype("<u2"),
    TID_INT16: np.dtype("<i2"),
    TID_UINT32: np.dtype("<u4"),
    TID_INT32: np.dtype("<i4"),
    TID_BOOL: np.dtype("<u4"),
    TID_FLOAT: np.dtype("<f4"),
    TID_DOUBLE: np.dtype("<f8"),
    TID_BITFIELD: np.dtype("<u4"),
    TID_INT64: np.dtype("<i8"),
    TID_UINT64: np.dtype("<u8"),
}

TYPE_NAMES: dict[int, str] = {
    TID_UINT8: "UINT8",
    TID_INT8: "INT8",
    TID_CHAR: "CHAR",
    TID_UINT16: "UINT16",
    TID_INT16: "INT16",
    TID_UINT32: "UINT32",
    TID_INT32: "INT32",
    TID_BOOL: "BOOL",
    TID_FLOAT: "FLOAT",
    TID_DOUBLE: "DOUBLE",
    TID_BITFIELD: "BITFIELD",
    TID_STRING: "STRING",
    TID_ARRAY: "ARRAY",
    TID_STRUCT: "STRUCT",
    TID_KEY: "KEY",
    TID_LINK: "LINK",
    TID_INT64: "INT64",
    TID_UINT64: "UINT64",
}

EVENT_HEADER_SIZE = 16
BANK_HEADER_SIZE = 8
_HEADER = struct.Struct("<HHIII")
_BANK_AREA = struct.Struct("<II")
_BK16 = struct.Struct("<4sHH")
_BK32 = struct.Struct("<4sII")
_BK32A = struct.Struct("<4sIII")
_ITEMSIZE = {tid: dt.itemsize for tid, dt in DTYPES.items()}
# bytes 0x21..0x7e plus space; trailing NULs are tolerated (strncpy of a short name)
_PRINTABLE = frozenset(range(0x20, 0x7F))


def type_name(type_id: int) -> str:
    """``UINT16`` etc.; ``TID_<n>`` for ids MIDAS does not define."""
    return TYPE_NAMES.get(type_id, f"TID_{type_id}")


def event_id_name(event_id: int) -> str:
    """``BOR``/``EOR``/``MSG`` for the special events, else the decimal id."""
    return {EVENTID_BOR: "BOR", EVENTID_EOR: "EOR", EVENTID_MESSAGE: "MSG"}.get(
        event_id, str(event_id)
    )


def align8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True, slots=True)
class EventHeader:
    event_id: int
    trigger_mask: int
    serial_number: int
    time_stamp: int
    data_size: int


@dataclass(slots=True)
class Bank:
    name: str
    type_id: int
    #: unpadded data size in bytes
    size: int
    #: numpy view (fixed-size types) or memoryview (STRING/ARRAY/STRUCT/unknown)
    data: Any

    @property
    def type_name(self) -> str:
        return type_name(self.type_id)


@dataclass(slots=True)
class Event:
    header: EventHeader
    banks: dict[str, Bank]
    #: bank-area flags (BANK16/BANK32/BANK32A); None for special events
    flags: int | None
    #: the bytes after the event header (bank area or special payload)
    payload: memoryview
    source: str = "<bytes>"
    #: byte offset of the event in the (decompressed) stream
    offset: int | None = None
    #: names of banks that appeared again after a first bank of the same name
    duplicate_banks: tuple[str, ...] = ()
    _odb: Any = field(default=None, repr=False, compare=False)

    @property
    def event_id(self) -> int:
        return self.header.event_id

    @property
    def serial(self) -> int:
        return self.header.serial_number

    @property
    def trigger_mask(self) -> int:
        return self.header.trigger_mask

    @property
    def time_stamp(self) -> int:
        return self.header.time_stamp

    @property
    def nbytes(self) -> int:
        """Total size including the event header."""
        return EVENT_HEADER_SIZE + self.header.data_size

    @property
    def is_bor(self) -> bool:
        return self.header.event_id == EVENTID_BOR

    @property
    def is_eor(self) -> bool:
        return self.header.event_id == EVENTID_EOR

    @property
    def is_message(self) -> bool:
        return self.header.event_id == EVENTID_MESSAGE

    @property
    def is_special(self) -> bool:
        return self.header.event_id in SPECIAL_IDS

    def odb(self) -> Any:
        """The ODB dump of a BOR/EOR event as :class:`~cygno_online.midas.odb.Odb`
        (parsed once, then cached). Raises MidasFormatError for other events
        or an unreadable dump."""
        if self._odb is not None:
            return self._odb
        if not (self.is_bor or self.is_eor):
            raise self._error("not a BOR/EOR event: no ODB dump")
        from cygno_online.midas.odb import Odb

        try:
            odb = Odb.from_dump(bytes(self.payload))
        except MidasFormatError as exc:
            # re-raise the same class with this event's location
            raise type(exc)(
                exc.reason,
                source=self.source,
                offset=self.offset,
                serial=self.serial,
                event_id=self.event_id,
            ) from exc
        self._odb = odb
        return odb

    def message(self) -> str:
        """The text of a message event (0x8002), without the trailing NUL."""
        if not self.is_message:
            raise self._error("not a message event")
        raw = bytes(self.payload)
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        return raw.decode("utf-8", errors="replace")

    def _error(self, message: str) -> MidasFormatError:
        return MidasFormatError(
            message,
            source=self.source,
            offset=self.offset,
            serial=self.serial,
            event_id=self.event_id,
        )


def parse_header(buf: Any, pos: int = 0) -> EventHeader:
    """The 16-byte event header at ``pos`` (caller checks the length)."""
    return EventHeader(*_HEADER.unpack_from(buf, pos))


def is_big_endian_header(event_id: int, trigger_mask: int) -> bool:
    """A BOR/EOR/message header written on a big-endian machine reads, in
    little-endian, as id 0x0080/0x0180/0x0280 with mask 0x4D49."""
    return trigger_mask == 0x4D49 and event_id in (0x0080, 0x0180, 0x0280)


def parse_event(
    buf: bytes | bytearray | memoryview, *, source: str = "<bytes>", offset: int = 0
) -> Event:
    """Parse one whole event held in ``buf`` (``len(buf) == 16 + data_size``).

    Bank data are views into ``buf``: keep ``buf`` alive and unchanged while
    the event is used (a ``bytes`` object guarantees the latter).
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    # raw data are never modified in place, whatever the buffer type
    if not mv.readonly:
        mv = mv.toreadonly()
    n = len(mv)
    if n < EVENT_HEADER_SIZE:
        raise MidasFormatError(
            f"event shorter than its 16-byte header ({n} bytes)", source=source, offset=offset
        )
    event_id, mask, serial, stamp, data_size = _HEADER.unpack_from(mv, 0)
    if is_big_endian_header(event_id, mask):
        raise UnsupportedFormatError(
            "big-endian MIDAS file (byte-swapped special event header)",
            source=source,
            offset=offset,
        )
    if n != EVENT_HEADER_SIZE + data_size:
        raise MidasFormatError(
            f"buffer holds {n} bytes but the header announces {EVENT_HEADER_SIZE + data_size}",
            source=source,
            offset=offset,
            serial=serial,
            event_id=event_id,
        )
    header = EventHeader(event_id, mask, serial, stamp, data_size)
    payload = mv[EVENT_HEADER_SIZE:]
    if event_id in SPECIAL_IDS:
        return Event(header, {}, None, payload, source, offset)
    banks, flags, dups = _parse_banks(mv, data_size, source, offset, serial, event_id)
    return Event(header, banks, flags, payload, source, offset, dups)


def _parse_banks(
    mv: memoryview, data_size: int, source: str, offset: int, serial: int, event_id: int
) -> tuple[dict[str, Bank], int, tuple[str, ...]]:
    def fail(message: str, bank: str | None = None) -> MidasFormatError:
        return MidasFormatError(
            message, source=source, offset=offset, serial=serial, event_id=event_id, bank=bank
        )

    if data_size < BANK_HEADER_SIZE:
        raise fail(f"data_size {data_size} too small for the 8-byte bank-area header")
    all_bank_size, flags = _BANK_AREA.unpack_from(mv, EVENT_HEADER_SIZE)
    if flags not in BANK_FORMATS:
        raise fail(f"unknown bank-area flags {flags:#x}")
    if all_bank_size != data_size - BANK_HEADER_SIZE:
        raise fail(
            f"bank area size {all_bank_size} inconsistent with data_size {data_size} "
            f"(expected {data_size - BANK_HEADER_SIZE})"
        )
    if flags == BANK16:
        bk, hsize = _BK16, 8
    elif flags == BANK32:
        bk, hsize = _BK32, 12
    else:
        bk, hsize = _BK32A, 16
    pos = EVENT_HEADER_SIZE + BANK_HEADER_SIZE
    end = pos + all_bank_size
    banks: dict[str, Bank] = {}
    dups: list[str] = []
    # views of an immutable bytes object directly (data.base is the event's
    # bytes); anything else through the read-only memoryview
    base = mv.obj if isinstance(mv.obj, bytes) and len(mv.obj) == len(mv) else mv
    while pos < end:
        if pos + hsize > end:
            raise fail(f"bank header at event byte {pos} overruns the bank area ({end} bytes)")
        raw_name, type_id, size = bk.unpack_from(mv, pos)[:3]
        name = _bank_name(raw_name)
        if name is None:
            raise fail(f"bank name {raw_name!r} at event byte {pos} is not printable ASCII")
        start = pos + hsize
        padded_end = start + ((size + 7) & ~7)
        if padded_end > end:
            raise fail(
                f"bank data ({size} bytes at event byte {start}) overruns the bank area "
                f"({end} bytes)",
                name,
            )
        itemsize = _ITEMSIZE.get(type_id)
        if itemsize is not None:
            if size % itemsize:
                raise fail(
                    f"size {size} is not a multiple of the {type_name(type_id)} item size "
                    f"{itemsize}",
                    name,
                )
            data: Any = np.frombuffer(base, DTYPES[type_id], size // itemsize, start)
        else:
            data = mv[start : start + size]
        if name in banks:
            dups.append(name)
        else:
            banks[name] = Bank(name, type_id, size, data)
        pos = padded_end
    return banks, flags, tuple(dups)


def _bank_name(raw: bytes) -> str | None:
    stripped = raw.rstrip(b"\0")
    if not stripped or not all(c in _PRINTABLE for c in stripped):
        return None
    return stripped.decode("ascii")


# ------------------------------------------------------------------ encoding


def _as_bytes_like(data: np.ndarray | bytes | bytearray | memoryview, name: str) -> Any:
    if isinstance(data, np.ndarray):
        if data.dtype.byteorder == ">" or (
            data.dtype.byteorder == "=" and np.little_endian is False
        ):
            data = data.astype(data.dtype.newbyteorder("<"))
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        # a byte view of the array: b"".join copies it once into the event
        return memoryview(data).cast("B") if data.size else b""
    if isinstance(data, bytes | bytearray):
        return data
    if isinstance(data, memoryview):
        return data.cast("B") if data.format != "B" or data.ndim != 1 else data
    raise TypeError(f"bank {name}: data must be a numpy array or bytes, got {type(data).__name__}")


def _encode_name(name: str) -> bytes:
    raw = name.encode("ascii")
    if not 1 <= len(raw) <= 4 or not all(c in _PRINTABLE for c in raw):
        raise ValueError(f"bank name {name!r} must be 1-4 printable ASCII characters")
    return raw.ljust(4, b"\0")


_PAD = bytes(8)


def encode_event(
    event_id: int,
    serial: int,
    banks: Iterable[tuple[str, int, np.ndarray | bytes]],
    *,
    trigger_mask: int = 0,
    time_stamp: int = 0,
    bank_format: int = BANK32A,
) -> bytes:
    """The bytes of one event, as bk_init/bk_create/bk_close would build it:
    each bank's data zero-padded to 8 bytes, ``size`` unpadded, the bank-area
    size and ``data_size`` covering the padded banks."""
    if bank_format == BANK16:
        bk, hsize, limit = _BK16, 8, 0xFFFF
    elif bank_format == BANK32:
        bk, hsize, limit = _BK32, 12, 0xFFFFFFFF
    elif bank_format == BANK32A:
        bk, hsize, limit = _BK32A, 16, 0xFFFFFFFF
    else:
        raise ValueError(f"unknown bank format {bank_format:#x}")
    pieces: list[Any] = [b"", b""]  # event header and bank-area header go here
    total = 0
    for name, type_id, data in banks:
        raw = _as_bytes_like(data, name)
        size = len(raw) if not isinstance(raw, memoryview) else raw.nbytes
        if size > limit:
            raise ValueError(
                f"bank {name}: {size} bytes do not fit a {BANK_FORMAT_NAMES[bank_format]} bank"
            )
        itemsize = _ITEMSIZE.get(type_id)
        if itemsize is not None and size % itemsize:
            raise ValueError(f"bank {name}: {size} bytes is not a multiple of item size {itemsize}")
        if bank_format == BANK32A:
            pieces.append(bk.pack(_encode_name(name), type_id, size, 0))
        else:
            pieces.append(bk.pack(_encode_name(name), type_id, size))
        pieces.append(raw)
        pad = (-size) & 7
        if pad:
            pieces.append(_PAD[:pad])
        total += hsize + size + pad
    data_size = BANK_HEADER_SIZE + total
    pieces[0] = _HEADER.pack(event_id, trigger_mask, serial, time_stamp, data_size)
    pieces[1] = _BANK_AREA.pack(total, bank_format)
    return b"".join(pieces)


def encode_special(
    event_id: int,
    serial: int,
    payload: bytes,
    *,
    time_stamp: int = 0,
    trigger_mask: int = MIDAS_MAGIC,
) -> bytes:
    """A BOR/EOR/message event: header + raw payload (no bank area, no padding)."""
    return _HEADER.pack(event_id, trigger_mask, serial, time_stamp, len(payload)) + bytes(payload)


def encode_message(text: str, serial: int = 0, *, time_stamp: int = 0) -> bytes:
    """A message event (0x8002) with NUL-terminated text."""
    return encode_special(
        EVENTID_MESSAGE, serial, text.encode("utf-8") + b"\0", time_stamp=time_stamp
    )
