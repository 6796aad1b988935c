"""Stand-in of the top-level ``midas`` package of the real bindings.

As in MIDAS develop 2022-12 (/work/shared/docs/midas.md, "The real bindings in
detail"), THIS package holds the constants, the status codes and the error
types; ``midas.client`` holds only ``MidasClient``. ``MidasLib`` stands for the
``ctypes.CDLL`` of ``$MIDASSYS/lib/libmidas-c-compat.so``: it is "loaded" once
per process (the file must exist, as for ``ctypes.CDLL``) and its wrapped calls
raise :class:`MidasError` on any non-success status.
"""

from __future__ import annotations

import os

# Run transitions (values as in midas.h; given in the doc)
TR_START = 1
TR_STOP = 2
TR_PAUSE = 4
TR_RESUME = 8
TR_STARTABORT = 16

# Event sampling types
GET_ALL = 1
GET_NONBLOCKING = 2
GET_RECENT = 4

# ODB type ids (the doc's list)
TID_UINT8 = 1
TID_INT8 = 2
TID_CHAR = 3
TID_UINT16 = 4
TID_INT16 = 5
TID_UINT32 = 6
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

# /Runinfo/State
STATE_STOPPED = 1
STATE_PAUSED = 2
STATE_RUNNING = 3

#: Status codes by name. BM_ASYNC_RETURN, BM_TRUNCATED, CM_INVALID_TRANSITION and
#: CM_UNDEF_EXP are the doc's values; the doc gives no value for RPC_SHUTDOWN and
#: RPC_NET_ERROR: the numbers here are the stand-in's, and code must look them
#: up by name, never by number.
status_codes = {
    "SUCCESS": 1,
    "CM_SUCCESS": 1,
    "BM_SUCCESS": 1,
    "DB_SUCCESS": 1,
    "RPC_SUCCESS": 1,
    "CM_UNDEF_EXP": 105,
    "CM_INVALID_TRANSITION": 113,
    "BM_ASYNC_RETURN": 209,
    "BM_TRUNCATED": 210,
    "DB_NO_KEY": 312,
    "RPC_NET_ERROR": 503,
    "RPC_SHUTDOWN": 509,
}
_names = {v: k for k, v in reversed(list(status_codes.items()))}

#: the stand-in is not libmidas (tests may check it)
STANDIN = True


class MidasError(Exception):
    """A MIDAS call returned a non-success status (``.code``)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message
        super().__init__(f"{_names.get(code, code)}: {message}" if message else str(code))


class TransitionFailedError(MidasError):
    """A run transition requested by this client failed."""


class MidasLib:
    """Stand-in of the bindings' ctypes library object: ``c_*`` calls that
    raise :class:`MidasError` on a non-success status. The client installs
    the calls it implements (``c_bm_receive_event``)."""

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            # what ctypes.CDLL raises for a missing library
            raise OSError(f"{path}: cannot open shared object file: No such file or directory")
        self.path = path
