"""On-disk spool between :meth:`InfluxSink.submit` and the sender thread.

Layout of the spool directory::

    00000001.seg 00000002.seg ...   segment files, appended in order
    checkpoint                      {"segment": n, "offset": o} (atomic rename)
    lock                            flock: one process per spool
    schema.json                     field type registry (see lineprotocol)
    quarantine/YYYYMMDD.lp/.json    lines the server rejected, with reasons

A segment is a sequence of records::

    [length u32 LE][crc32 u32 LE][payload: append_time_ns u64 | npoints u32 | lines]

``lines`` are newline-separated line-protocol lines (one ``append`` call,
split so no record holds more than one batch). The CRC covers the payload. A
record counts as accepted once ``write()`` returned: a killed process loses
nothing (the kernel has the bytes); ``fsync`` (``always`` per record, ``batch``
at most once a second and at rotation/close, ``never``) guards against power
loss.

The reader starts at the checkpoint; the sender commits a batch (writes the
checkpoint) only after the server acknowledged it, so delivery is
at-least-once. A new process always starts a new segment, so a torn record can
be the tail of an old segment. Damage anywhere (a torn tail, a bad sector, a
flipped bit) is counted and logged, and the reader *resynchronises*: it
searches the following bytes for the next record whose length, CRC-32 and
payload head are valid, so every intact record after the damage is still
sent; only the damaged record is lost.

Bounds: ``max_bytes`` (all unsent segments) and ``max_age_s`` (time since the
last append to a segment) drop whole segments, oldest first; dropped points
are counted and reported through ``on_drop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cygno_online.logs import RateLimitedLog

log = logging.getLogger(__name__)
_damage_log = RateLimitedLog(log, "spool-damage")
_drop_log = RateLimitedLog(log, "spool-drops")

_HEADER = struct.Struct("<II")
_PAYLOAD_HEAD = struct.Struct("<QI")
#: a record longer than this is corruption, not data (bounded reads)
MAX_RECORD = 64 * 1024 * 1024
FSYNC_POLICIES = ("always", "batch", "never")


class SpoolLockedError(RuntimeError):
    """Another live process owns this spool directory."""


@dataclass(slots=True)
class Segment:
    number: int
    path: Path
    #: end of the valid data (bytes)
    size: int
    #: wall clock of the last append (ns); file mtime for old segments
    last_append_ns: int
    points: int = 0
    #: damaged stretches found so far: offset of the damage -> next valid record
    holes: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    lines: list[bytes]
    npoints: int
    #: position after the batch: (segment number, offset)
    end: tuple[int, int]
    #: append time of the first record (ns)
    first_append_ns: int
    generation: int
    nbytes: int
    #: points per segment number (for the per-segment pending counts)
    per_segment: dict[int, int]


class Spool:
    """Append-only segmented spool with a committed read position.

    Thread-safe: ``append`` (producer threads) and ``read_batch``/``commit``
    (sender thread) share one lock; network I/O never happens under it.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 1 << 30,
        max_age_s: float = 7 * 86400.0,
        segment_bytes: int = 16 << 20,
        fsync: str = "batch",
        max_record_lines: int = 5000,
        on_drop: Callable[[int, str], None] | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}")
        self.dir = Path(directory)
        self.max_bytes = int(max_bytes)
        self.max_age_ns = int(max_age_s * 1e9)
        self.segment_bytes = int(segment_bytes)
        self.fsync = fsync
        self.max_record_lines = max(1, int(max_record_lines))
        self.on_drop = on_drop
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self._segments: list[Segment] = []
        self._wfile = None
        self._rfile = None
        self._rnum = -1
        self._next_number = 1
        self._lockfd: int | None = None
        self._last_fsync = 0.0
        self._unsynced = False
        #: read position: the sender's committed position and its look-ahead
        self._commit: tuple[int, int] = (0, 0)
        self._read: tuple[int, int] = (0, 0)
        self.generation = 0
        self.pending_points = 0
        self.stats = {
            "dropped": 0,
            "dropped_by_reason": {},
            "corrupt_records": 0,
            "corrupt_bytes": 0,
            "appended_points": 0,
            "io_errors": 0,
        }
        self.opened = False

    # -- open / close -----------------------------------------------------------------
    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(f"{self.dir} is in use by another process") from None
        self._lockfd = fd
        with self._lock:
            # a reopened Spool object starts from what is on disk, not from memory
            self._segments = []
            self._rfile, self._rnum = None, -1
            self.generation += 1
            ck = self._load_checkpoint()
            numbers = sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())
            # numbers only grow: a stale checkpoint can never match a new segment
            self._next_number = max([*numbers, ck[0] if ck is not None else 0]) + 1
            for n in numbers:
                path = self._path(n)
                if ck is not None and n < ck[0]:
                    # fully sent before the last checkpoint: leftovers of a crash
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                start = ck[1] if ck is not None and n == ck[0] else 0
                seg = self._scan(n, path, start)
                if seg.points == 0:
                    # nothing left to send (sent, empty, or only damage, which
                    # _scan reported): restarts must not pile up files
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                self._segments.append(seg)
            if ck is not None and (not self._segments or self._segments[0].number != ck[0]):
                ck = None
            if ck is None:
                first = self._segments[0].number if self._segments else self._next_number
                ck = (first, 0)
            self._commit = self._read = ck
            self.pending_points = sum(s.points for s in self._segments)
            self._new_segment()
            self._write_checkpoint()
            self.opened = True
            if self.pending_points:
                log.info(
                    "influx spool %s: %d points pending from before the restart",
                    self.dir,
                    self.pending_points,
                )

    def close(self) -> None:
        with self._lock:
            if self._wfile is not None:
                with contextlib.suppress(OSError):
                    self._wfile.flush()
                    if self.fsync != "never":
                        os.fsync(self._wfile.fileno())
                self._wfile.close()
                self._wfile = None
            if self._rfile is not None:
                self._rfile.close()
                self._rfile = None
                self._rnum = -1
            self.opened = False
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    def _path(self, n: int) -> Path:
        return self.dir / f"{n:08d}.seg"

    def _load_checkpoint(self) -> tuple[int, int] | None:
        try:
            doc = json.loads((self.dir / "checkpoint").read_text())
            return int(doc["segment"]), int(doc["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _scan(self, n: int, path: Path, start: int) -> Segment:
        """Validate the records of an old segment from ``start``; on damage,
        resynchronise on the next valid record."""
        points = 0
        last_ns = int(path.stat().st_mtime_ns)
        total = path.stat().st_size
        size = start
        holes: dict[int, int] = {}
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                head = f.read(_HEADER.size)
                if not head:
                    break
                rec = self._check_record(f, head)
                if rec is None:
                    nxt = _find_record(f, size + 1, total)
                    self._corrupt(path, size, (nxt if nxt is not None else total) - size, nxt)
                    if nxt is None:
                        break
                    holes[size] = nxt
                    size = nxt
                    f.seek(nxt)
                    continue
                npoints, append_ns = rec
                last_ns = append_ns
                points += npoints
                size = f.tell()
        return Segment(n, path, size, last_ns, points, holes)

    def _check_record(self, f, head: bytes) -> tuple[int, int] | None:
        if len(head) < _HEADER.size:
            return None
        length, crc = _HEADER.unpack(head)
        if length < _PAYLOAD_HEAD.size or length > MAX_RECORD:
            return None
        payload = f.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return None
        append_ns, npoints = _PAYLOAD_HEAD.unpack_from(payload)
        return npoints, append_ns

    def _corrupt(self, path: Path, offset: int, nbytes: int, resumed: int | None = None) -> None:
        self.stats["corrupt_records"] += 1
        self.stats["corrupt_bytes"] += max(0, nbytes)
        if resumed is not None:
            after = f"reading resumes with the intact record at offset {resumed}"
        else:
            after = "no intact record after it in this segment; reading continues with the next"
        _damage_log.error(
            "influx spool: %s damaged at offset %d (%d bytes unreadable); %s",
            path,
            offset,
            nbytes,
            after,
            key=str(path.parent),
        )

    # -- writing ------------------------------------------------------------------------
    def _new_segment(self) -> None:
        if self._wfile is not None:
            old, self._wfile = self._wfile, None
            try:
                old.flush()
                if self.fsync != "never":
                    os.fsync(old.fileno())
            finally:
                old.close()
            self._unsynced = False
        n = self._next_number
        self._next_number += 1
        path = self._path(n)
        self._wfile = open(path, "ab")  # noqa: SIM115 - kept open across calls
        self._segments.append(Segment(n, path, 0, time.time_ns(), 0))
        if self.fsync != "never":
            # the new directory entry must survive a power loss too
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def append(self, lines: list[bytes]) -> int:
        """Write ``lines`` as records; returns how many points were stored.

        Never raises for I/O trouble: the points are counted as dropped
        (reason ``spool_io_error``) instead.
        """
        if not lines:
            return 0
        drops: list[tuple[int, str]] = []
        stored = 0
        with self._lock:
            if not self.opened:
                raise RuntimeError("spool is not open")
            now = time.time_ns()
            try:
                for i in range(0, len(lines), self.max_record_lines):
                    chunk = lines[i : i + self.max_record_lines]
                    payload = _PAYLOAD_HEAD.pack(now, len(chunk)) + b"\n".join(chunk)
                    record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
                    drops.extend(self._make_room(len(record), now))
                    if self._wfile is None:  # an earlier I/O error closed it
                        self._new_segment()
                    seg = self._segments[-1]
                    if seg.size and seg.size + len(record) > self.segment_bytes:
                        self._new_segment()
                        seg = self._segments[-1]
                    self._wfile.write(record)
                    # flush = the kernel has it: a killed process loses nothing
                    self._wfile.flush()
                    seg.size += len(record)
                    seg.points += len(chunk)
                    seg.last_append_ns = now
                    self.pending_points += len(chunk)
                    stored += len(chunk)
                    self._unsynced = True
                if self.fsync == "always" or (
                    self.fsync == "batch" and time.monotonic() - self._last_fsync >= 1.0
                ):
                    os.fsync(self._wfile.fileno())
                    self._unsynced = False
                    self._last_fsync = time.monotonic()
            except OSError as exc:
                lost = len(lines) - stored
                self.stats["io_errors"] += 1
                _drop_log.error(
                    "influx spool: cannot write %s (%s): %d points dropped",
                    self.dir,
                    exc,
                    lost,
                    key=f"{self.dir}:io",
                )
                drops.append((lost, "spool_io_error"))
                self._count_drop(lost, "spool_io_error")
                self._recover_writer()
            self.stats["appended_points"] += stored
            self.changed.notify_all()
        self._report(drops)
        return stored

    def _recover_writer(self) -> None:
        # After a failed write the file position is unknown: start a fresh segment
        # whose size we know, so the reader never walks into half a record.
        with contextlib.suppress(OSError, ValueError):
            seg = self._segments[-1]
            if self._wfile is not None:
                old, self._wfile = self._wfile, None
                old.close()
            with open(seg.path, "r+b") as f:
                f.truncate(seg.size)
            self._new_segment()

    def sync(self) -> None:
        """fsync for the ``batch`` policy; the sender calls it about once a second."""
        with self._lock:
            if self._wfile is not None and self._unsynced and self.fsync == "batch":
                with contextlib.suppress(OSError):
                    os.fsync(self._wfile.fileno())
                self._unsynced = False
                self._last_fsync = time.monotonic()

    # -- bounds -------------------------------------------------------------------------
    def pending_bytes(self) -> int:
        with self._lock:
            total = 0
            for seg in self._segments:
                start = self._commit[1] if seg.number == self._commit[0] else 0
                total += max(0, seg.size - start)
            return total

    def _make_room(self, incoming: int, now: int) -> list[tuple[int, str]]:
        drops = []
        while len(self._segments) > 1 and self.pending_bytes() + incoming > self.max_bytes:
            drops.append((self._drop_oldest("max_bytes"), "max_bytes"))
        return drops

    def enforce_age(self, now_ns: int | None = None) -> int:
        """Drop segments whose newest point is older than ``max_age_s``."""
        now = time.time_ns() if now_ns is None else now_ns
        drops = []
        with self._lock:
            while self._segments and now - self._segments[0].last_append_ns > self.max_age_ns:
                if len(self._segments) == 1:
                    if self._segments[0].points == 0:
                        break
                    self._new_segment()
                drops.append((self._drop_oldest("max_age"), "max_age"))
        self._report(drops)
        return sum(n for n, _ in drops)

    def _drop_oldest(self, reason: str) -> int:
        seg = self._segments.pop(0)
        n = seg.points
        self._count_drop(n, reason)
        if self._rnum == seg.number and self._rfile is not None:
            self._rfile.close()
            self._rfile = None
            self._rnum = -1
        with contextlib.suppress(OSError):
            seg.path.unlink()
        nxt = self._segments[0].number
        self._commit = self._read = (nxt, 0)
        self.generation += 1
        self._write_checkpoint()
        return n

    def _count_drop(self, n: int, reason: str) -> None:
        self.pending_points -= n if reason != "spool_io_error" else 0
        self.stats["dropped"] += n
        by = self.stats["dropped_by_reason"]
        by[reason] = by.get(reason, 0) + n

    def _report(self, drops: list[tuple[int, str]]) -> None:
        merged: dict[str, int] = {}
        for n, reason in drops:
            if n:
                merged[reason] = merged.get(reason, 0) + n
        for reason, n in merged.items():
            if reason != "spool_io_error":
                # a full spool drops on every append: one line, then a summary
                _drop_log.warning(
                    "influx spool %s full (%s): dropped the %d oldest points",
                    self.dir,
                    reason,
                    n,
                    key=f"{self.dir}:{reason}",
                )
            if self.on_drop is not None:
                try:
                    self.on_drop(n, reason)
                except Exception:
                    log.exception("influx spool: on_drop callback failed")

    # -- reading ------------------------------------------------------------------------
    def _segment(self, n: int) -> Segment | None:
        for seg in self._segments:
            if seg.number == n:
                return seg
        return None

    def read_batch(self, max_lines: int, max_bytes: int = 8 << 20) -> Batch | None:
        """The next records after the read position (not yet committed)."""
        with self._lock:
            lines: list[bytes] = []
            npoints = 0
            nbytes = 0
            first_ns = 0
            per_segment: dict[int, int] = {}
            num, off = self._read
            while True:
                seg = self._segment(num)
                if seg is None:
                    break
                if off >= seg.size:
                    if seg is self._segments[-1]:
                        break
                    # next segment; the checkpoint moves on commit
                    idx = self._segments.index(seg)
                    num, off = self._segments[idx + 1].number, 0
                    continue
                if off in seg.holes:
                    off = seg.holes[off]  # damage found by the scan at open
                    continue
                if lines and (npoints >= max_lines or nbytes >= max_bytes):
                    break
                rec = self._read_record(seg, off)
                if rec is None:
                    # damage inside a segment seen only now (changed under us):
                    # resynchronise; only the damaged record is lost
                    self._damage_at_read(seg, off, per_segment.get(num, 0))
                    continue
                payload, end = rec
                append_ns, n = _PAYLOAD_HEAD.unpack_from(payload)
                if lines and npoints + n > max_lines:
                    break
                if not lines:
                    first_ns = append_ns
                body = payload[_PAYLOAD_HEAD.size :]
                lines.extend(body.split(b"\n"))
                npoints += n
                per_segment[num] = per_segment.get(num, 0) + n
                nbytes += len(body)
                off = end
            if not lines:
                return None
            self._read = (num, off)
            return Batch(lines, npoints, (num, off), first_ns, self.generation, nbytes, per_segment)

    def _damage_at_read(self, seg: Segment, off: int, in_batch: int) -> None:
        """A record at ``off`` of ``seg`` no longer reads: find the next intact
        one, and recount what is left so the pending count stays exact."""
        self._read_record(seg, off)  # opens the cached reader on this segment
        f = self._rfile
        nxt = _find_record(f, off + 1, seg.size)
        self._corrupt(seg.path, off, (nxt if nxt is not None else seg.size) - off, nxt)
        if nxt is not None:
            seg.holes[off] = nxt
            after = _count_points(f, nxt, seg.size, seg.holes)
        else:
            seg.size = off
            after = 0
        # points still pending in this segment: those of the records before
        # the damage (read, not yet committed) plus those after it
        before = _count_points(f, self._seg_start(seg), off, seg.holes)
        kept = before + after
        lost = max(0, seg.points - kept)
        seg.points = kept
        self.pending_points -= lost
        if nxt is None and seg is self._segments[-1]:
            self._new_segment()

    def _seg_start(self, seg: Segment) -> int:
        return self._commit[1] if seg.number == self._commit[0] else 0

    def _read_record(self, seg: Segment, off: int) -> tuple[bytes, int] | None:
        if self._rnum != seg.number:
            if self._rfile is not None:
                self._rfile.close()
            self._rfile = open(seg.path, "rb")  # noqa: SIM115 - cached reader
            self._rnum = seg.number
        f = self._rfile
        f.seek(off)
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return None
        length, crc = _HEADER.unpack(head)
        if length < _PAYLOAD_HEAD.size or off + _HEADER.size + length > seg.size:
            return None
        payload = f.read(length)
        if len(payload) < length or zlib.crc32(payload) != crc:
            return None
        return payload, off + _HEADER.size + length

    def has_unread(self) -> bool:
        """True when records after the read position exist (sender wake-up check)."""
        with self._lock:
            num, off = self._read
            for seg in self._segments:
                if seg.number >= num and seg.size > (off if seg.number == num else 0):
                    return True
            return False

    def rewind(self) -> None:
        """Forget the look-ahead (a batch that was not delivered is read again)."""
        with self._lock:
            self._read = self._commit

    def commit(self, batch: Batch) -> bool:
        """The server has ``batch``: move the checkpoint, delete finished segments.

        Returns False when the batch was overtaken by a drop (nothing to do).
        """
        with self._lock:
            if batch.generation != self.generation:
                return False
            self._commit = batch.end
            if self._read < self._commit:
                self._read = self._commit
            self.pending_points -= batch.npoints
            for seg in self._segments:
                if seg.number in batch.per_segment:
                    seg.points = max(0, seg.points - batch.per_segment[seg.number])
            # segments entirely before the checkpoint are finished
            while len(self._segments) > 1 and self._segments[0].number < self._commit[0]:
                old = self._segments.pop(0)
                if self._rnum == old.number and self._rfile is not None:
                    self._rfile.close()
                    self._rfile = None
                    self._rnum = -1
                with contextlib.suppress(OSError):
                    old.path.unlink()
            self._write_checkpoint()
            self.changed.notify_all()
            return True

    def _write_checkpoint(self) -> None:
        path = self.dir / "checkpoint"
        tmp = self.dir / "checkpoint.tmp"
        data = json.dumps({"segment": self._commit[0], "offset": self._commit[1]})
        try:
            with open(tmp, "w") as f:
                f.write(data)
                if self.fsync == "always":
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            # A stale checkpoint only means duplicates after a restart.
            self.stats["io_errors"] += 1
            log.error("influx spool: cannot write checkpoint %s: %s", path, exc)

    # -- introspection --------------------------------------------------------------------
    def oldest_append_ns(self) -> int | None:
        """Append time of the oldest pending record (None when nothing is pending)."""
        with self._lock:
            if self.pending_points <= 0:
                return None
            num, off = self._commit
            seg = self._segment(num)
            while seg is not None:
                if off < seg.size:
                    rec = self._read_record(seg, off)
                    if rec is not None:
                        return _PAYLOAD_HEAD.unpack_from(rec[0])[0]
                    return seg.last_append_ns
                idx = self._segments.index(seg)
                if idx + 1 >= len(self._segments):
                    return None
                seg, off = self._segments[idx + 1], 0
            return None

    def segment_count(self) -> int:
        with self._lock:
            return len(self._segments)


#: bytes examined per step of a resynchronisation scan
_SCAN_WINDOW = 1 << 20


def _valid_at(f, pos: int, end: int) -> bool:
    """An intact record starts at ``pos``: plausible length, CRC-32 of the
    payload, at least one point and as many lines as points."""
    f.seek(pos)
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return False
    length, crc = _HEADER.unpack(head)
    if length < _PAYLOAD_HEAD.size or length > MAX_RECORD or pos + _HEADER.size + length > end:
        return False
    payload = f.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return False
    _ns, npoints = _PAYLOAD_HEAD.unpack_from(payload)
    return npoints >= 1 and payload.count(b"\n", _PAYLOAD_HEAD.size) == npoints - 1


def _find_record(f, start: int, end: int) -> int | None:
    """Offset of the first intact record in ``[start, end)`` of file ``f``,
    or None. Candidate lengths are screened with numpy (line-protocol text
    read as a length is far beyond MAX_RECORD), then the CRC decides."""
    pos = start
    while pos + _HEADER.size + _PAYLOAD_HEAD.size <= end:
        f.seek(pos)
        window = f.read(min(_SCAN_WINDOW + 3, end - pos))
        if len(window) < 4:
            return None
        a = np.frombuffer(window, dtype=np.uint8).astype(np.uint32)
        lengths = a[:-3] | (a[1:-2] << 8) | (a[2:-1] << 16) | (a[3:] << 24)
        offsets = np.arange(pos, pos + len(lengths), dtype=np.int64)
        ok = (
            (lengths >= _PAYLOAD_HEAD.size)
            & (lengths <= MAX_RECORD)
            & (offsets + _HEADER.size + lengths.astype(np.int64) <= end)
        )
        for i in np.flatnonzero(ok):
            cand = pos + int(i)
            if _valid_at(f, cand, end):
                return cand
        pos += len(lengths)
    return None


def _count_points(f, start: int, end: int, holes: dict[int, int]) -> int:
    """Points of the intact records in ``[start, end)`` (skipping known holes)."""
    points = 0
    pos = start
    while pos < end:
        if pos in holes:
            pos = holes[pos]
            continue
        f.seek(pos)
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            break
        length, _crc = _HEADER.unpack(head)
        if not _valid_at(f, pos, end):
            break
        f.seek(pos + _HEADER.size)
        points += _PAYLOAD_HEAD.unpack(f.read(_PAYLOAD_HEAD.size))[1]
        pos += _HEADER.size + length
    return points
