"""The hand-off between the MIDAS reader process and the daemon.

* Events: a memfd (anonymous shared memory, gone with the last process that
  maps it) cut into ``n`` slots of ``slot_size`` bytes. The reader's receive call writes the event
  straight into a free slot (no copy beyond libmidas's own) and sends
  ``["ev", slot, size, received_ns]``; the daemon copies the event out (one
  memcpy, so no analysis ever pins a slot) and gives the slot back with
  ``["free", slot]``. Ownership passes only with these socket messages, so
  the kernel orders the slot's bytes with them on every architecture. No free
  slot: the reader receives into a scratch buffer and counts a drop
  (``no_slot``), so MIDAS is never slowed.
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
        if n < 1:
            raise ValueError(f"slots must be >= 1, not {n}")
        self.n = n
        self.slot_size = slot_size
        self.total = n * slot_size
        if fd is None:
            fd = os.memfd_create("cygno-online-midas-slots", os.MFD_CLOEXEC)
            os.ftruncate(fd, self.total)
        self.fd = fd
        self.map = mmap.mmap(fd, self.total)
        self.view = memoryview(self.map)

    def offset(self, slot: int) -> int:
        return slot * self.slot_size

    def take(self, slot: int, size: int) -> bytes:
        """The daemon's side: a copy of the event (then send ``["free", slot]``)."""
        off = self.offset(slot)
        return self.map[off : off + size]

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
