"""The hand-off between the MIDAS reader process and the daemon.

* Events: a memfd (anonymous shared memory, gone with the last process that
  maps it) cut into ``n`` slots of ``slot_size`` bytes after a one-page header
  whose byte ``i`` says who owns slot ``i`` (0 = the reader may fill it, 1 = it
  holds an event for the daemon). The reader's receive call writes the event
  straight into a free slot (no copy beyond libmidas's own), sets the byte and
  sends ``["ev", slot, size, received_ns]``; the daemon copies the event out
  (one memcpy, so no analysis ever pins a slot) and clears the byte. No free
  slot: the reader receives into a scratch buffer and counts a drop
  (``no_slot``), so MIDAS is never slowed. The single-byte ownership flags
  rely on the socket messages for ordering (x86-64 and arm64 both order a
  ``send`` after the preceding stores; see the README).
* Everything else (connection state, transitions with their ODB, skips,
  counters, messages for MIDAS, stop) is msgpack frames over a socketpair.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
from typing import Any

import msgpack

HEADER = 4096
_LEN = struct.Struct("<I")

# reader exit codes (the daemon's supervisor reads them; see README "Live deployment")
EXIT_DONE = 0  # stopped on request, or a MIDAS shutdown request
EXIT_INCOMPATIBLE = 2  # the MIDAS install lacks something
EXIT_CONNECT = 3  # the experiment cannot be reached
EXIT_LOST = 4  # the session broke (mserver gone, experiment gone)
EXIT_BUG = 5  # an unexpected exception in the reader


class Slots:
    """The shared event slots (created by the daemon, mapped by both)."""

    def __init__(self, n: int, slot_size: int, fd: int | None = None) -> None:
        if n < 1 or n > HEADER:
            raise ValueError(f"slots must be 1..{HEADER}, not {n}")
        self.n = n
        self.slot_size = slot_size
        self.total = HEADER + n * slot_size
        if fd is None:
            fd = os.memfd_create("cygno-online-midas-slots", os.MFD_CLOEXEC)
            os.ftruncate(fd, self.total)
        self.fd = fd
        self.map = mmap.mmap(fd, self.total)
        self.view = memoryview(self.map)

    def offset(self, slot: int) -> int:
        return HEADER + slot * self.slot_size

    def free_slot(self, start: int = 0) -> int | None:
        m = self.map
        for k in range(self.n):
            i = (start + k) % self.n
            if m[i] == 0:
                return i
        return None

    def in_use(self) -> int:
        return sum(1 for i in range(self.n) if self.map[i])

    def take(self, slot: int, size: int) -> bytes:
        """The daemon's side: copy the event out and give the slot back."""
        off = self.offset(slot)
        data = self.map[off : off + size]
        self.map[slot] = 0
        return data

    def reset(self) -> None:
        """A new reader process starts with every slot free."""
        self.map[0 : self.n] = bytes(self.n)

    def close(self) -> None:
        self.view.release()
        self.map.close()
        os.close(self.fd)


class Channel:
    """Length-prefixed msgpack frames over a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def send(self, obj: Any) -> None:
        data = msgpack.packb(obj, use_bin_type=True)
        self.sock.sendall(_LEN.pack(len(data)) + data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_available(self) -> list[Any]:
        """Messages complete after one ``recv`` (call when readable); raises
        ``EOFError`` when the peer closed."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("peer closed")
        self._buf += chunk
        out = []
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf, 0)
            if len(self._buf) < 4 + n:
                break
            out.append(msgpack.unpackb(bytes(self._buf[4 : 4 + n]), raw=False))
            del self._buf[: 4 + n]
        return out

    def close(self) -> None:
        self.sock.close()
