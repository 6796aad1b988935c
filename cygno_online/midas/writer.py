"""Writing MIDAS files readable by MIDAS's own tools (mdump, rootana, midasio).

- ``.mid``: events concatenated.
- ``.mid.lz4``: LZ4 *frame* format with the mlogger's settings (linked 4 MiB
  blocks, content checksum), one frame per file.
- ``.mid.gz``: one ordinary gzip member (fast level, like the logger).
- ``.mid.bz2``: one bzip2 stream.

BOR/EOR events carry a JSON ODB dump written the way mlogger writes it
(``"name/key"`` metadata entries with type, ``num_values``, access mode and
last-written time beside each value; unsigned types as hex strings).
"""

from __future__ import annotations

import bz2
import json
import struct
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cygno_online.midas.event import (
    BANK32A,
    EVENTID_BOR,
    EVENTID_EOR,
    EVENTID_MESSAGE,
    MIDAS_MAGIC,
    encode_event,
    encode_special,
)
from cygno_online.midas.odb import Odb

COMPRESSIONS = ("none", "gzip", "lz4", "bz2")
#: message type of ``write_message`` (MIDAS MT_INFO)
MT_INFO = 2


def compression_from_name(name: str) -> str:
    """``gzip``/``lz4``/``bz2``/``none`` from a file name's extension."""
    low = name.lower()
    if low.endswith(".gz"):
        return "gzip"
    if low.endswith(".lz4"):
        return "lz4"
    if low.endswith(".bz2"):
        return "bz2"
    return "none"


class _NoCompressor:
    def begin(self) -> bytes:
        return b""

    def compress(self, data: Any) -> Any:
        return data

    def flush(self) -> bytes:
        return b""


class _GzipCompressor:
    def __init__(self) -> None:
        # level 1 (XFL=4 in the header), mtime 0: what the logger's files show
        self._c = zlib.compressobj(1, zlib.DEFLATED, 31)

    def begin(self) -> bytes:
        return b""

    def compress(self, data: Any) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _Lz4Compressor:
    def __init__(self) -> None:
        import lz4.frame

        # mlogger: LZ4F_max4MB blocks, linked, content checksum (FLG 0x44, BD 0x70)
        self._c = lz4.frame.LZ4FrameCompressor(
            block_size=lz4.frame.BLOCKSIZE_MAX4MB,
            block_linked=True,
            content_checksum=True,
        )

    def begin(self) -> bytes:
        return self._c.begin()

    def compress(self, data: Any) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _Bz2Compressor:
    def __init__(self) -> None:
        self._c = bz2.BZ2Compressor(9)

    def begin(self) -> bytes:
        return b""

    def compress(self, data: Any) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


_COMPRESSORS = {
    "none": _NoCompressor,
    "gzip": _GzipCompressor,
    "lz4": _Lz4Compressor,
    "bz2": _Bz2Compressor,
}


# ------------------------------------------------------------- ODB as JSON


def _odb_type(value: Any) -> int:
    if isinstance(value, list):
        return _odb_type(value[0]) if value else 7
    if isinstance(value, bool | np.bool_):
        return 8
    if isinstance(value, int | np.integer):
        return 7 if -(2**31) <= int(value) < 2**31 else 17
    if isinstance(value, float | np.floating):
        return 10
    return 12


def _json_scalar(value: Any, tid: int) -> str:
    if tid in (1, 4, 6, 11, 18) and isinstance(value, int | np.integer) and value >= 0:
        width = {1: 2, 4: 4, 6: 8, 11: 8, 18: 16}[tid]
        return f'"0x{int(value):0{width}x}"'
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def odb_to_json(tree: dict[str, Any] | Odb, *, last_written: int | None = None) -> str:
    """A JSON ODB dump in mlogger style (see module doc)."""
    odb = tree if isinstance(tree, Odb) else Odb(tree)
    stamp = int(time.time()) if last_written is None else int(last_written)
    out: list[str] = []

    def emit_dir(node: dict[str, Any], path: str, depth: int) -> None:
        ind = "  " * (depth + 1)
        items: list[str] = []
        for key, value in node.items():
            name = json.dumps(str(key), ensure_ascii=False)
            sub = f"{path}/{key}"
            if isinstance(value, dict):
                out_len = len(out)
                emit_dir(value, sub, depth + 1)
                body = "".join(out[out_len:])
                del out[out_len:]
                items.append(f"{ind}{name} : {body}")
                continue
            if isinstance(value, tuple | np.ndarray):
                value = list(value.tolist() if isinstance(value, np.ndarray) else value)
            tid = odb.type_of(sub) or _odb_type(value)
            meta = f'"type" : {tid}, '
            if isinstance(value, list):
                meta += f'"num_values" : {len(value)}, '
            if tid == 12:
                longest = (
                    max((len(str(v)) for v in value), default=0)
                    if isinstance(value, list)
                    else len(str(value))
                )
                meta += f'"size" : {max(32, longest + 1)}, '
            meta += f'"access_mode" : 7, "last_written" : {stamp}'
            keyname = json.dumps(f"{key}/key", ensure_ascii=False)
            items.append(f"{ind}{keyname} : {{ {meta} }}")
            if isinstance(value, list):
                vals = ", ".join(_json_scalar(v, tid) for v in value)
                items.append(f"{ind}{name} : [ {vals} ]")
            else:
                items.append(f"{ind}{name} : {_json_scalar(value, tid)}")
        if items:
            out.append("{\n" + ",\n".join(items) + "\n" + "  " * depth + "}")
        else:
            out.append("{\n" + "  " * depth + "}")

    emit_dir(odb.data, "", 0)
    return "".join(out)


# ------------------------------------------------------------------ writer


class MidasWriter:
    """Write events to a MIDAS file (context manager; see module doc).

    ``compression``: ``"none"``, ``"gzip"``, ``"lz4"``, ``"bz2"`` or
    ``"auto"`` (from the file name's extension; ``none`` for nameless streams).
    """

    def __init__(self, path: str | Path | BinaryIO, *, compression: str = "auto") -> None:
        if isinstance(path, str | Path):
            self.name = str(path)
            self._f: Any = open(path, "wb")  # noqa: SIM115 - closed by close()
            self._owns = True
        else:
            self._f = path
            self.name = str(getattr(path, "name", "<stream>"))
            self._owns = False
        if compression == "auto":
            compression = compression_from_name(self.name)
        if compression not in COMPRESSIONS:
            if self._owns:
                self._f.close()
            raise ValueError(
                f"compression must be one of {COMPRESSIONS} or 'auto', got {compression!r}"
            )
        self.compression = compression
        self._c = _COMPRESSORS[compression]()
        self._closed = False
        self.events_written = 0
        #: uncompressed bytes written
        self.bytes_written = 0
        head = self._c.begin()
        if head:
            self._f.write(head)

    # -------------------------------------------------------------- events

    def write_event(self, event: bytes | bytearray | memoryview | Any) -> None:
        """Write one encoded event (bytes) or an :class:`Event`-like object
        (``.header`` + ``.payload``)."""
        if self._closed:
            raise ValueError(f"{self.name}: writer is closed")
        if isinstance(event, bytes | bytearray | memoryview):
            parts: list[Any] = [event]
        else:
            h = event.header
            payload = event.payload
            size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
            header = struct.pack(
                "<HHIII", h.event_id, h.trigger_mask, h.serial_number, h.time_stamp, size
            )
            parts = [header, payload]
        for part in parts:
            n = part.nbytes if isinstance(part, memoryview) else len(part)
            out = self._c.compress(part)
            if out:
                self._f.write(out)
            self.bytes_written += n
        self.events_written += 1

    def write(
        self,
        event_id: int,
        serial: int,
        banks: Iterable[tuple[str, int, np.ndarray | bytes]],
        *,
        trigger_mask: int = 0,
        time_stamp: int = 0,
        bank_format: int = BANK32A,
    ) -> None:
        self.write_event(
            encode_event(
                event_id,
                serial,
                banks,
                trigger_mask=trigger_mask,
                time_stamp=time_stamp,
                bank_format=bank_format,
            )
        )

    def _write_odb_event(
        self, event_id: int, run: int, odb: dict[str, Any] | Odb, time_stamp: int | None
    ) -> None:
        stamp = int(time.time()) if time_stamp is None else int(time_stamp)
        payload = odb_to_json(odb, last_written=stamp).encode("utf-8")
        self.write_event(
            encode_special(event_id, run, payload, time_stamp=stamp, trigger_mask=MIDAS_MAGIC)
        )

    def write_bor(self, run: int, odb: dict[str, Any] | Odb, time_stamp: int | None = None) -> None:
        """Begin-of-run event: serial = run number, payload = JSON ODB dump."""
        self._write_odb_event(EVENTID_BOR, run, odb, time_stamp)

    def write_eor(self, run: int, odb: dict[str, Any] | Odb, time_stamp: int | None = None) -> None:
        self._write_odb_event(EVENTID_EOR, run, odb, time_stamp)

    def write_message(
        self, text: str, serial: int = 0, time_stamp: int | None = None, *, msg_type: int = MT_INFO
    ) -> None:
        """A message event (0x8002): NUL-terminated text, trigger mask = message type."""
        stamp = int(time.time()) if time_stamp is None else int(time_stamp)
        self.write_event(
            encode_special(
                EVENTID_MESSAGE,
                serial,
                text.encode("utf-8") + b"\0",
                time_stamp=stamp,
                trigger_mask=msg_type,
            )
        )

    # ------------------------------------------------------------ lifetime

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            tail = self._c.flush()
            if tail:
                self._f.write(tail)
            self._f.flush()
        finally:
            if self._owns:
                self._f.close()

    def __enter__(self) -> MidasWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
