"""Reading MIDAS files: :class:`MidasReader` yields :class:`Event` objects.

- Compression is detected from magic bytes (plain, gzip, LZ4 frame, bzip2);
  decompression is incremental with bounded chunks: memory stays constant
  whatever the file size, and a file still being written can be followed.
- Each event gets its own ``bytes`` object of exactly its size, built with a
  single copy from the decompressor's output (zero copies when one chunk
  holds exactly the event); bank data are views into it.
- A truncated last event (file still being written) ends the iteration with a
  :class:`TruncatedEventError` recorded in ``problems`` and a warning logged;
  with ``follow=True`` the reader waits for more data instead.
- Corrupt data raise :class:`MidasFormatError` (file, byte offset in the
  decompressed stream, serial) with ``resync=False``; with ``resync=True`` the
  problem is recorded, the reader scans forward for the next plausible event
  header, counts the skipped bytes and goes on.
- Big-endian files are rejected with :class:`UnsupportedFormatError`.
"""

from __future__ import annotations

import collections
import logging
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cygno_online.errors import (
    EmptyFileError,
    MidasFormatError,
    TruncatedEventError,
    UnsupportedFormatError,
)
from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.midas.compression import ByteStream
from cygno_online.midas.event import (
    BANK_FORMATS,
    EVENT_HEADER_SIZE,
    EVENTID_BOR,
    EVENTID_EOR,
    EVENTID_MESSAGE,
    MIDAS_MAGIC,
    SPECIAL_IDS,
    Event,
    is_big_endian_header,
    parse_event,
)

log = logging.getLogger(__name__)
#: a damaged file can hold thousands of problems: all are in ``problems``,
#: the log gets the first of each kind per file and then counts
_problem_log = RateLimitedLog(log, "midas-problems")

DEFAULT_MAX_EVENT_SIZE = 512 << 20
#: problems kept in ``MidasReader.problems``; later ones are only counted
MAX_PROBLEMS = 1000
_PEEK = 24  # event header + bank-area header
#: events with at least this many bytes still to read are assembled straight
#: into their buffer (see _take_direct)
_DIRECT_MIN = 256 << 10
#: events at least this big get a recycled buffer (see _BufferPool)
_POOL_MIN = 256 << 10
_HDR16 = struct.Struct("<HHIII")
_PRINTABLE = frozenset(range(0x20, 0x7F))
# byte patterns a resync scan looks for: bank-area flags (at header+20) and
# special-event id + magic (at header+0)
_FLAG_PATTERNS = tuple(struct.pack("<I", f) for f in BANK_FORMATS)
_SPECIAL_PATTERNS = (
    struct.pack("<HH", EVENTID_BOR, MIDAS_MAGIC),
    struct.pack("<HH", EVENTID_EOR, MIDAS_MAGIC),
    struct.pack("<H", EVENTID_MESSAGE),
)


def _refs(obj: object) -> int:
    return sys.getrefcount(obj)


# references to a pooled buffer nobody else holds (list slot + call argument),
# measured rather than assumed: interpreters count stack references differently
_PROBE = [bytearray(1)]
_FREE_REFS = _refs(_PROBE[0])
del _PROBE


class _BufferPool:
    """Recycles the buffers of big events once every event, bank view and
    memoryview of them is gone (reference count back to the pool's own).

    Writing a 10 MB event into memory that is already mapped and cached is
    about twice as fast as into a fresh allocation; an event still held by a
    consumer is never touched (its buffer is simply not free)."""

    def __init__(self, size: int = 4) -> None:
        self._bufs: list[bytearray] = []
        self._size = size

    def get(self, n: int) -> bytearray:
        for i in range(len(self._bufs)):
            if _refs(self._bufs[i]) <= _FREE_REFS:
                buf = self._bufs[i]
                if len(buf) > n:
                    del buf[n:]
                elif len(buf) < n:
                    buf.extend(bytes(n - len(buf)))
                return buf
        buf = bytearray(n)
        if len(self._bufs) < self._size:
            self._bufs.append(buf)
        return buf


class MidasReader:
    """Iterate over the events of a MIDAS file (see module doc).

    ``path`` may be a path, ``"-"`` for stdin, or a binary file object.
    Iterate once; counters and ``problems`` are filled while iterating.
    """

    def __init__(
        self,
        path: str | Path | BinaryIO,
        *,
        resync: bool = True,
        follow: bool = False,
        stop: threading.Event | None = None,
        poll_s: float = 0.2,
        on_problem: Callable[[MidasFormatError], None] | None = None,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self._stream = ByteStream(path)
        self.source = self._stream.name
        self._log_id = log_key()
        self.resync = resync
        self.follow = follow
        self.stop = stop
        self.poll_s = poll_s
        self.on_problem = on_problem
        self.max_event_size = max_event_size
        #: the first MAX_PROBLEMS problems (all are counted in problem_counts)
        self.problems: list[MidasFormatError] = []
        self.problem_counts: collections.Counter[str] = collections.Counter()
        self.problems_total = 0
        self.skipped_bytes = 0
        self.events_read = 0
        #: decompressed bytes consumed so far
        self.bytes_read = 0
        self.truncated = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._head = 0  # read position inside _chunks[0]
        self._avail = 0
        self._pos = 0  # stream offset of the read position
        self._broken = False
        self._started = False
        self._pool = _BufferPool()
        self._iterated = False

    # ------------------------------------------------------------ properties

    @property
    def raw_bytes_read(self) -> int:
        return self._stream.raw_bytes_read

    @property
    def compression(self) -> str | None:
        return self._stream.compression

    # ------------------------------------------------------------ buffering

    def _more(self) -> bool:
        """Append one more decompressed chunk; False at the (current) end."""
        while True:
            if self._broken:
                return False
            try:
                chunk = self._stream.read()
            except MidasFormatError as exc:
                # no way to resynchronise inside a damaged compressed stream
                self._broken = True
                self._fail(
                    type(exc)(exc.reason, source=self.source, offset=self._pos + self._avail)
                )
                return False
            if chunk is None:
                return False
            if chunk:
                self._chunks.append(chunk)
                self._avail += len(chunk)
                return True

    def _wait_more(self) -> bool:
        """Like _more, but in follow mode poll until data arrive or stop is set."""
        while True:
            if self._more():
                return True
            if self._broken or not self.follow or (self.stop is not None and self.stop.is_set()):
                return False
            if self.stop is not None:
                if self.stop.wait(self.poll_s):
                    return self._more()
            else:
                time.sleep(self.poll_s)

    def _fill(self, n: int) -> bool:
        while self._avail < n:
            if not self._wait_more():
                return False
        return True

    def _peek(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes at the read position (small n)."""
        first = self._chunks[0] if self._chunks else b""
        if len(first) - self._head >= n:
            return first[self._head : self._head + n]
        parts, need, head = [], n, self._head
        for c in self._chunks:
            piece = memoryview(c)[head : head + need]
            parts.append(piece)
            need -= len(piece)
            head = 0
            if need <= 0:
                break
        return b"".join(parts)

    def _take(self, n: int) -> bytes | bytearray:
        """Remove and return exactly ``n`` buffered bytes (one copy at most)."""
        first = self._chunks[0]
        if self._head == 0 and len(first) == n:
            self._chunks.popleft()
            out = first
        else:
            parts = []
            need = n
            while need:
                c = self._chunks[0]
                rest = len(c) - self._head
                if rest <= need:
                    parts.append(memoryview(c)[self._head :] if self._head else c)
                    self._chunks.popleft()
                    self._head = 0
                    need -= rest
                else:
                    parts.append(memoryview(c)[self._head : self._head + need])
                    self._head += need
                    need = 0
            if len(parts) == 1 and isinstance(parts[0], bytes):
                out = parts[0]
            elif n >= _POOL_MIN:
                out = self._pool.get(n)
                pos = 0
                for piece in parts:
                    out[pos : pos + len(piece)] = piece
                    pos += len(piece)
            else:
                out = b"".join(parts)
        self._avail -= n
        self._pos += n
        self.bytes_read += n
        return out

    def _take_direct(self, n: int) -> bytearray | None:
        """A big event assembled straight into its own (recycled) buffer:
        plain files are read into it, decompressed chunks are copied in as
        they arrive (still in cache) and dropped. None at the end of the data
        (the bytes read so far go back to the buffer)."""
        out = self._pool.get(n)
        mv = memoryview(out)
        pos = 0
        for i, c in enumerate(self._chunks):
            piece = memoryview(c)[self._head :] if i == 0 else c
            mv[pos : pos + len(piece)] = piece
            pos += len(piece)
        self._chunks.clear()
        self._head = 0
        self._avail = 0
        plain = self._stream.compression == "none"
        while pos < n:
            if plain:
                try:
                    got = self._stream.readinto(mv[pos:])
                except OSError as exc:
                    raise MidasFormatError(f"read error: {exc}", source=self.source) from exc
            elif self._more():
                c = self._chunks.popleft()
                got = min(len(c), n - pos)
                mv[pos : pos + got] = memoryview(c)[:got]
                self._avail -= len(c)
                if got < len(c):
                    self._chunks.appendleft(c)
                    self._head = got
                    self._avail += len(c) - got
            else:
                got = 0
            if got:
                pos += got
                continue
            if (
                self.follow
                and not self._broken
                and not (self.stop is not None and self.stop.is_set())
            ):
                if self.stop is not None:
                    self.stop.wait(self.poll_s)
                else:
                    time.sleep(self.poll_s)
                continue
            if pos:
                self._chunks.appendleft(bytes(mv[:pos]))
                self._avail += pos
            mv.release()
            return None
        mv.release()
        self._pos += n
        self.bytes_read += n
        return out

    def _skip(self, n: int) -> None:
        self._avail -= n
        self._pos += n
        self.bytes_read += n
        while n:
            c = self._chunks[0]
            rest = len(c) - self._head
            if rest <= n:
                self._chunks.popleft()
                self._head = 0
                n -= rest
            else:
                self._head += n
                n = 0

    def _contiguous(self) -> bytes:
        """Merge the buffered bytes into one chunk (used by resync scans only)."""
        if len(self._chunks) != 1 or self._head:
            merged = self._peek(self._avail)
            self._chunks.clear()
            self._chunks.append(merged)
            self._head = 0
        return self._chunks[0]

    # ------------------------------------------------------------ problems

    def _problem(self, exc: MidasFormatError) -> None:
        self.problems_total += 1
        self.problem_counts[exc.kind] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(exc)
        if self.on_problem is not None:
            self.on_problem(exc)

    def _error(self, cls: type[MidasFormatError], msg: str, **kw: Any) -> MidasFormatError:
        return cls(msg, source=self.source, offset=kw.pop("offset", self._pos), **kw)

    # ------------------------------------------------------------ validation

    def _header_problem(self, head: bytes) -> str | None:
        """Why the 24 bytes at an event start cannot begin a valid event (None if they can)."""
        event_id, _mask, _serial, _stamp, data_size = _HDR16.unpack_from(head, 0)
        if data_size > self.max_event_size:
            return f"impossible data_size {data_size} (max {self.max_event_size})"
        if event_id in SPECIAL_IDS:
            return None
        if event_id >= 0x8000:
            return f"unknown special event id {event_id:#06x}"
        if data_size < 8:
            return f"data_size {data_size} too small for a bank area"
        if len(head) < _PEEK:
            return None
        all_bank_size, flags = struct.unpack_from("<II", head, 16)
        if flags not in BANK_FORMATS:
            return f"unknown bank-area flags {flags:#x}"
        if all_bank_size != data_size - 8:
            return f"bank area size {all_bank_size} inconsistent with data_size {data_size}"
        return None

    def _plausible(self, buf: bytes, p: int) -> bool:
        """Strict check of a resync candidate at ``buf[p:]`` (needs 32 bytes or EOF)."""
        if p + EVENT_HEADER_SIZE > len(buf):
            return False
        event_id, mask, _serial, _stamp, data_size = _HDR16.unpack_from(buf, p)
        if data_size > self.max_event_size:
            return False
        if event_id in (EVENTID_BOR, EVENTID_EOR):
            return mask == MIDAS_MAGIC
        if event_id == EVENTID_MESSAGE:
            return 0 < data_size <= 1 << 20 and mask < 0x1000
        if event_id >= 0x8000 or p + _PEEK > len(buf):
            return False
        all_bank_size, flags = struct.unpack_from("<II", buf, p + 16)
        if flags not in BANK_FORMATS or all_bank_size != data_size - 8:
            return False
        if all_bank_size >= 8 and p + _PEEK + 4 <= len(buf):
            name = buf[p + _PEEK : p + _PEEK + 4].rstrip(b"\0")
            if not name or not all(c in _PRINTABLE for c in name):
                return False
        return True

    # ------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise RuntimeError(f"{self.source}: a MidasReader can be iterated only once")
        self._iterated = True
        try:
            yield from self._events()
        finally:
            self._stream.close()

    def close(self) -> None:
        self._stream.close()

    def _fail(self, exc: MidasFormatError) -> None:
        """Raise a corruption problem, or (resync mode) log and record it."""
        if not self.resync:
            raise exc
        _problem_log.warning("%s", exc, key=f"{self._log_id}:{exc.kind}")
        self._problem(exc)

    def _events(self) -> Iterator[Event]:
        while True:
            if not self._fill(EVENT_HEADER_SIZE):
                self._finish()
                return
            # the bank-area header too, when the event has one
            self._fill(_PEEK)
            head = self._peek(_PEEK)
            event_id, mask, serial, _stamp, data_size = _HDR16.unpack_from(head, 0)
            # only the first event decides: mid-stream it is plain corruption
            if not self._started and is_big_endian_header(event_id, mask):
                raise self._error(
                    UnsupportedFormatError,
                    "big-endian MIDAS file (byte-swapped special event header "
                    f"id {event_id:#06x} mask {mask:#06x})",
                )
            if not self._started and event_id not in SPECIAL_IDS:
                # a big-endian file starting with an ordinary event
                swapped_size = int.from_bytes(head[12:16], "big")
                if (
                    data_size > self.max_event_size
                    and swapped_size <= self.max_event_size
                    and len(head) >= _PEEK
                    and int.from_bytes(head[20:24], "big") in BANK_FORMATS
                ):
                    raise self._error(UnsupportedFormatError, "big-endian MIDAS file")
            self._started = True
            why = self._header_problem(head)
            if why is not None:
                self._fail(self._error(MidasFormatError, why, serial=serial, event_id=event_id))
                if not self._resync(1):
                    self._finish()
                    return
                continue
            total = EVENT_HEADER_SIZE + data_size
            offset = self._pos
            buf: bytes | bytearray | None = None
            if total - self._avail >= _DIRECT_MIN:
                buf = self._take_direct(total)
            elif self._fill(total):
                buf = self._take(total)
            if buf is None:
                self._finish()
                return
            try:
                event = parse_event(buf, source=self.source, offset=offset)
            except UnsupportedFormatError:
                raise
            except MidasFormatError as exc:
                # framing is intact (header checked): skip this event only
                self._fail(exc)
                self.skipped_bytes += total
                continue
            self.events_read += 1
            yield event
            # let go of the event so its buffer can be recycled once the consumer does
            del event, buf

    def _resync(self, start: int) -> bool:
        """Drop bytes until a plausible event header at or after ``start``
        (relative to the read position); False at the end of the data."""
        p = start
        while True:
            buf = self._contiguous()
            found, resume = self._scan(buf, p, final=False)
            if found is not None:
                self._skip(found)
                self.skipped_bytes += found
                return True
            # forget what cannot hold a header start any more, then read on
            self._skip(resume)
            self.skipped_bytes += resume
            p = max(p - resume, 0)
            if not self._wait_more():
                break
        buf = self._contiguous()
        found, _ = self._scan(buf, p, final=True)
        if found is not None:
            self._skip(found)
            self.skipped_bytes += found
            return True
        self.skipped_bytes += self._avail
        if self._avail:
            self._skip(self._avail)
        return False

    def _scan(self, buf: bytes, start: int, *, final: bool) -> tuple[int | None, int]:
        """``(position of the first plausible header at or after start, None)``,
        or ``(None, resume)``: no header before ``resume`` in the data so far."""
        n = len(buf)
        pos = start
        while pos < n:
            cands = []
            for pat in _FLAG_PATTERNS:
                i = buf.find(pat, pos + 20)
                if i >= 0:
                    cands.append(i - 20)
            for pat in _SPECIAL_PATTERNS:
                i = buf.find(pat, pos)
                if i >= 0:
                    cands.append(i)
            if not cands:
                break
            c = min(cands)
            if c + 32 > n and not final:
                return None, c  # not enough bytes to judge this candidate yet
            if self._plausible(buf, c):
                return c, c
            pos = c + 1
        return None, max(min(pos, n - 31), 0) if not final else n

    def _finish(self) -> None:
        """End of data: a partial event left over means truncation."""
        if self._broken:
            self.skipped_bytes += self._avail
            if self._avail:
                self._skip(self._avail)
            return
        if self.follow and self.stop is not None and self.stop.is_set():
            # stopped while following a live file: a partial event is expected
            return
        if (
            not self._started
            and not self._avail
            and not self.events_read
            and not self._stream.in_member  # a cut compressed frame is a truncation
        ):
            raw = self._stream.raw_bytes_read
            exc = self._error(
                EmptyFileError,
                "empty file: no MIDAS data at all"
                + (f" ({raw} compressed bytes decompress to nothing)" if raw else " (0 bytes)"),
            )
            _problem_log.warning("%s", exc, key=f"{self._log_id}:{exc.kind}")
            self._problem(exc)
            return
        if self._avail:
            event_id = serial = None
            head = self._peek(min(self._avail, EVENT_HEADER_SIZE))
            if len(head) >= EVENT_HEADER_SIZE:
                event_id, _m, serial, _t, data_size = _HDR16.unpack_from(head, 0)
                what = f"{self._avail} of {EVENT_HEADER_SIZE + data_size} bytes"
            else:
                what = f"{self._avail} bytes, less than a header"
            exc = self._error(
                TruncatedEventError,
                f"stream ends inside an event ({what}; file still being written?)",
                serial=serial,
                event_id=event_id,
            )
            self.truncated = True
            self._skip(self._avail)
            _problem_log.warning("%s", exc, key=f"{self._log_id}:{exc.kind}")
            self._problem(exc)
        elif self._stream.in_member:
            exc = self._error(
                TruncatedEventError,
                f"{self._stream.compression} stream ends inside a compressed frame "
                "(file still being written?)",
            )
            self.truncated = True
            _problem_log.warning("%s", exc, key=f"{self._log_id}:{exc.kind}")
            self._problem(exc)


def read_events(path: str | Path | BinaryIO, **kw: Any) -> Iterator[Event]:
    """Iterate over the events of a file (keywords as :class:`MidasReader`)."""
    return iter(MidasReader(path, **kw))
