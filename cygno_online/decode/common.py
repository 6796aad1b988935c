"""Helpers shared by the bank decoders."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# The MIDAS type ids and dtypes live with the event format; re-exported here
# because every decoder needs them.
from cygno_online.midas.event import (  # noqa: F401
    DTYPES,
    TID_BITFIELD,
    TID_BOOL,
    TID_CHAR,
    TID_DOUBLE,
    TID_FLOAT,
    TID_INT8,
    TID_INT16,
    TID_INT32,
    TID_INT64,
    TID_STRING,
    TID_UINT8,
    TID_UINT16,
    TID_UINT32,
    TID_UINT64,
    TYPE_NAMES,
)


class BankError(Exception):
    """Raised inside a bank decoder; the event decoder turns it into a
    :class:`~cygno_online.errors.DecodeError` with full context. ``kind`` is
    the counter key (``camera_shape``, ``digitizer_header``, ``length``...)."""

    def __init__(self, kind: str, message: str, bank: str | None = None) -> None:
        self.kind = kind
        self.message = message
        self.bank = bank
        super().__init__(message)


def type_name(type_id: int) -> str:
    return TYPE_NAMES.get(type_id, f"type {type_id}")


def bank_array(bank: Any, allowed: tuple[int, ...], as_dtype: str | None = None) -> np.ndarray:
    """The bank's data as a 1-D numpy array (a view, never a copy), after
    checking its MIDAS type id against ``allowed``. ``as_dtype`` reinterprets
    same-width data (INT16 camera data as uint16)."""
    type_id = int(bank.type_id)
    if type_id not in allowed:
        raise BankError(
            "type",
            f"bank type is {type_name(type_id)}, expected "
            + " or ".join(type_name(t) for t in allowed),
            bank.name,
        )
    data = bank.data
    if isinstance(data, np.ndarray):
        arr = data.reshape(-1) if data.ndim != 1 else data
    else:
        # bytes/memoryview: build the view ourselves
        arr = np.frombuffer(data, dtype=np.uint8)
    want = DTYPES[type_id]
    if arr.dtype != want:
        if arr.dtype.itemsize == 1 or arr.dtype.itemsize == want.itemsize:
            nbytes = arr.size * arr.dtype.itemsize
            if nbytes % want.itemsize:
                raise BankError(
                    "length",
                    f"{nbytes} bytes is not a whole number of {type_name(type_id)} values",
                    bank.name,
                )
            arr = arr.view(want)
        else:
            raise BankError("type", f"bank data has dtype {arr.dtype}, expected {want}", bank.name)
    if as_dtype is not None and arr.dtype != np.dtype(as_dtype):
        arr = arr.view(as_dtype)
    return arr


_DIGITS = re.compile(r"(\d+)$")


def trailing_number(name: str) -> int | None:
    """``CAM3`` -> 3, ``DGH0`` -> 0, ``TIME`` -> None."""
    m = _DIGITS.search(name)
    return int(m.group(1)) if m else None


def trailing_digits(name: str) -> str:
    m = _DIGITS.search(name)
    return m.group(1) if m else ""
