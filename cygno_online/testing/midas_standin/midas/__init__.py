"""Stand-in of the MIDAS Python package (constants and the error type)."""

from __future__ import annotations

# Run transitions (values as in midas.h)
TR_START = 1
TR_STOP = 2
TR_PAUSE = 4
TR_RESUME = 8
TR_STARTABORT = 16

# Event sampling types (values as in midas.h)
GET_ALL = 1
GET_NONBLOCKING = 2
GET_RECENT = 4

# Run states (/Runinfo/State)
STATE_STOPPED = 1
STATE_PAUSED = 2
STATE_RUNNING = 3

#: the stand-in is not libmidas; code may check this to say so in logs
STANDIN = True


class MidasError(Exception):
    """A MIDAS call failed (status code and message as in the real bindings)."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        self.message = message
        super().__init__(f"MIDAS error {code}: {message}")


#: status names the bindings expose (values as in midas.h where known)
status_codes = {"SUCCESS": 1, "BM_ASYNC_RETURN": 209, "BM_TRUNCATED": 210}
