"""Byte sources for MIDAS files: plain, gzip, LZ4 frame and bzip2, detected by
magic bytes (never by extension), decompressed incrementally.

:class:`ByteStream` reads fixed-size raw chunks and hands out decompressed
chunks of bounded size, so memory does not grow with the file, and a file
that is still being written can be followed (a read at the current end simply
returns ``None``; call again later).

Concatenated gzip members and concatenated LZ4 frames (what ``cat a.gz b.gz``
or a restarted logger produce) are read as one stream.
"""

from __future__ import annotations

import bz2
import contextlib
import os
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cygno_online.errors import IntegrityError, MidasFormatError

RAW_CHUNK = 1 << 20
#: upper bound of one decompressed chunk: bounds memory for very compressible
#: data, and a chunk small enough to stay in cache until it is copied into its event
MAX_OUT = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
BZ2_MAGIC = b"BZh"


def detect_compression(head: bytes) -> str:
    """``"gzip"``, ``"lz4"``, ``"bz2"`` or ``"none"`` from the first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(LZ4_MAGIC):
        return "lz4"
    if head.startswith(BZ2_MAGIC):
        return "bz2"
    return "none"


class _Plain:
    started = False
    in_member = False

    def decompress(self, data: bytes) -> bytes:
        return data

    def has_pending(self) -> bool:
        return False


class StreamDamage(Exception):
    """A decompressor failed; ``salvaged`` is the output recovered up to the
    damage (it is handed out before the error is raised)."""

    def __init__(self, cause: Exception, salvaged: bytes) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.salvaged = salvaged


def _salvage(backup: Any, data: bytes, size: int) -> bytes:
    """Re-run a failed ``decompress(data, size)`` from a copy of the
    decompressor taken before it, in ever smaller output steps, so that the
    output before the damage is kept (zlib drops the output of a call that
    ends in an error: with a bad CRC, up to a whole chunk at the end of the
    file, usually with the EOR). Only on the error path: ~50 calls."""
    out = []
    d = backup
    step = size
    while step >= 1:
        trial = d.copy()
        try:
            chunk = trial.decompress(data, step)
        except zlib.error:
            step //= 4
            continue
        if not chunk and trial.unconsumed_tail == data:
            break  # no progress possible: stop (the error comes from here)
        out.append(chunk)
        d, data = trial, trial.unconsumed_tail
        if trial.eof:
            return b"".join(out)
    # zlib checks the trailer in the call that writes the last bytes: the
    # longest input prefix that does not reach the failing check gives them
    lo, hi = 0, len(data)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            d.copy().decompress(data[:mid], size)
            lo = mid
        except zlib.error:
            hi = mid
    with contextlib.suppress(zlib.error):
        out.append(d.copy().decompress(data[:lo], size))
    return b"".join(out)


class _Gzip:
    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self._pending = b""
        #: inside a member that has not ended yet (a truncated stream if EOF)
        self.in_member = False

    def has_pending(self) -> bool:
        return bool(self._pending)

    def decompress(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data if data else self._pending
            self._pending = b""
        if not data:
            return b""
        if not self.in_member and not data.strip(b"\0"):
            # zero padding after the last member (tape/block devices): ignore
            return b""
        self.in_member = True
        backup = self._d.copy()  # cheap (zlib state + 32 KiB window), once per chunk
        try:
            out = self._d.decompress(data, MAX_OUT)
        except zlib.error as exc:
            raise StreamDamage(exc, _salvage(backup, data, MAX_OUT)) from exc
        if self._d.eof:
            self._pending = self._d.unused_data
            self._d = zlib.decompressobj(31)
            self.in_member = False
        else:
            self._pending = self._d.unconsumed_tail
        return out


class _Concatenated:
    """Incremental decompression of concatenated members (LZ4 frames, bz2
    streams): each member's decompressor ends at its end-of-stream, and the
    bytes after it start the next member."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._d = factory()
        self._pending = b""
        self.in_member = False

    def has_pending(self) -> bool:
        return bool(self._pending) or not self._d.needs_input

    def decompress(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data if data else self._pending
            self._pending = b""
        if not data and self._d.needs_input:
            return b""
        self.in_member = True
        out = self._d.decompress(data, MAX_OUT)
        if self._d.eof:
            self._pending = self._d.unused_data or b""
            self.in_member = False
            self._d = self._factory()
        return out


def _lz4_frames() -> Any:
    import lz4.frame

    return lz4.frame.LZ4FrameDecompressor()


_DECODERS: dict[str, Callable[[], Any]] = {
    "none": _Plain,
    "gzip": _Gzip,
    "lz4": lambda: _Concatenated(_lz4_frames),
    "bz2": lambda: _Concatenated(bz2.BZ2Decompressor),
}


class ByteStream:
    """Decompressed chunks of a file, a binary file object or stdin (``"-"``)."""

    def __init__(self, src: str | Path | BinaryIO, *, raw_chunk: int = RAW_CHUNK) -> None:
        self._owns = False
        if isinstance(src, str | Path):
            if str(src) == "-":
                self.name = "<stdin>"
                self._f: Any = sys.stdin.buffer
            else:
                self.name = str(src)
                self._f = open(src, "rb")  # noqa: SIM115 - closed by close()
                self._owns = True
        else:
            self._f = src
            self.name = str(getattr(src, "name", "<stream>"))
        self._read = getattr(self._f, "read1", None) or self._f.read
        self._raw_chunk = raw_chunk
        self.raw_bytes_read = 0
        self.compression: str | None = None
        self._decoder: Any = None
        self._head = b""
        #: a damage found while the data before it are still being handed out
        self._damage: MidasFormatError | None = None
        #: decompressed bytes handed out (where a damage starts)
        self.bytes_out = 0

    def _detect(self) -> bool:
        """Read until the magic can be decided; False if not enough data yet."""
        while len(self._head) < 4:
            raw = self._read(self._raw_chunk)
            if not raw:
                if not self._head:
                    return False
                break  # fewer than 4 bytes in the whole file: decide on them
            self.raw_bytes_read += len(raw)
            self._head += raw
        self.compression = detect_compression(self._head)
        self._decoder = _DECODERS[self.compression]()
        return True

    def read(self) -> bytes | None:
        """The next decompressed chunk (may be ``b""``), or ``None`` when the
        raw source has no more data for now and nothing is pending. A damaged
        compressed stream first hands out what could be decompressed before
        the damage, then raises :class:`MidasFormatError` (once)."""
        if self._damage is not None:
            exc, self._damage = self._damage, None
            raise exc
        try:
            out = self._read_chunk()
        except StreamDamage as exc:
            self._damage = self._damage_error(exc.cause, len(exc.salvaged))
            out = exc.salvaged
        if out:
            self.bytes_out += len(out)
        return out

    def _damage_error(self, cause: Exception, salvaged: int) -> MidasFormatError:
        text = str(cause)
        if "incorrect data check" in text:
            what = "integrity check failed (gzip CRC-32 mismatch)"
        elif "incorrect length check" in text:
            what = "integrity check failed (gzip length mismatch)"
        else:
            what = f"corrupt {self.compression} stream ({text})"
        size = None
        with contextlib.suppress(OSError, AttributeError, ValueError):
            size = os.fstat(self._f.fileno()).st_size
        lost = (
            f"; raw bytes {self.raw_bytes_read}..{size} not read"
            if size and size > self.raw_bytes_read
            else ""
        )
        return IntegrityError(
            f"{what} after {self.raw_bytes_read} raw bytes: the "
            f"{self.bytes_out + salvaged} bytes decompressed before it are analysed"
            f" (they may be damaged), nothing after offset {self.bytes_out + salvaged}{lost}",
            source=self.name,
            offset=self.bytes_out + salvaged,
        )

    def _read_chunk(self) -> bytes | None:
        try:
            if self._decoder is None:
                if not self._detect():
                    return None
                head, self._head = self._head, b""
                return self._decoder.decompress(head)
            if self._decoder.has_pending():
                return self._decoder.decompress(b"")
            raw = self._read(self._raw_chunk)
            if not raw:
                return None
            self.raw_bytes_read += len(raw)
            return self._decoder.decompress(raw)
        except (zlib.error, OSError, EOFError, RuntimeError, ValueError) as exc:
            raise MidasFormatError(
                f"corrupt {self.compression} stream after {self.raw_bytes_read} raw bytes: {exc}",
                source=self.name,
            ) from exc

    def readinto(self, buf: memoryview) -> int:
        """Plain streams only: read raw bytes straight into ``buf`` (no
        intermediate chunk, so a big event costs one copy from the page
        cache). Returns 0 at the current end of the data."""
        if self.compression != "none" or self._head:
            raise ValueError("readinto is only available on an uncompressed stream")
        readinto = getattr(self._f, "readinto", None)
        if readinto is None:
            data = self._read(len(buf))
            n = len(data)
            buf[:n] = data
        else:
            n = readinto(buf) or 0
        self.raw_bytes_read += n
        return n

    @property
    def in_member(self) -> bool:
        """True if the compressed stream stopped inside a gzip member/LZ4 frame."""
        return bool(self._decoder is not None and self._decoder.in_member)

    def close(self) -> None:
        if self._owns:
            self._f.close()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(path_or_dash: str | Path | BinaryIO) -> ByteStream:
    """A :class:`ByteStream` over a path, ``"-"`` (stdin) or a binary file object."""
    return ByteStream(path_or_dash)


def decompress_all(path: str | Path, chunk: int = RAW_CHUNK) -> int:
    """Decompress a whole file, discarding the output; the number of
    decompressed bytes (the speed reference of ``bench io``)."""
    total = 0
    with ByteStream(path, raw_chunk=chunk) as s:
        while True:
            out = s.read()
            if out is None:
                return total
            total += len(out)
