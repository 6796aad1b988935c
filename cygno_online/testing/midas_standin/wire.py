"""Framing between the stand-in's client library and its experiment process:
a 4-byte little-endian length, then one msgpack object. (The stand-in's own
mechanism: libmidas uses shared memory locally and its RPC protocol through
mserver; only the behaviour seen by a client is modelled on libmidas.)"""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgpack

_LEN = struct.Struct("<I")


def send(sock: socket.socket, obj: Any) -> None:
    data = msgpack.packb(obj, use_bin_type=True)
    sock.sendall(_LEN.pack(len(data)) + data)


def _exact(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def recv(sock: socket.socket) -> Any:
    (n,) = _LEN.unpack(_exact(sock, 4))
    return msgpack.unpackb(_exact(sock, n), raw=False, strict_map_key=False)


def call(sock: socket.socket, op: str, **args: Any) -> Any:
    """One request and its reply; the reply's ``error`` becomes an exception."""
    send(sock, {"op": op, **args})
    reply = recv(sock)
    err = reply.get("error")
    if err is not None:
        kind, text, code = err
        if kind == "KeyError":
            raise KeyError(text)
        raise RemoteError(kind, text, code)
    return reply.get("result")


class RemoteError(Exception):
    def __init__(self, kind: str, text: str, code: int | None) -> None:
        super().__init__(text)
        self.kind, self.text, self.code = kind, text, code
