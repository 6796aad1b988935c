"""MIDAS event, bank, ODB and file formats: the project's own implementation
(no MIDAS installation needed).

- :mod:`.event`: :func:`parse_event` (zero-copy bank views), :func:`encode_event`,
  :func:`encode_special`, constants and type tables.
- :mod:`.odb`: :class:`Odb` (JSON/XML dumps, live dicts; case-insensitive paths).
- :mod:`.reader`: :class:`MidasReader`, :func:`read_events` (compression by magic
  bytes, truncation, resync, follow).
- :mod:`.writer`: :class:`MidasWriter`.
"""

from cygno_online.midas.event import (
    BANK16,
    BANK32,
    BANK32A,
    EVENTID_BOR,
    EVENTID_EOR,
    EVENTID_MESSAGE,
    MIDAS_MAGIC,
    Bank,
    Event,
    EventHeader,
    encode_event,
    encode_special,
    parse_event,
)
from cygno_online.midas.odb import Odb
from cygno_online.midas.reader import MidasReader, read_events
from cygno_online.midas.writer import MidasWriter

__all__ = [
    "BANK16",
    "BANK32",
    "BANK32A",
    "EVENTID_BOR",
    "EVENTID_EOR",
    "EVENTID_MESSAGE",
    "MIDAS_MAGIC",
    "Bank",
    "Event",
    "EventHeader",
    "MidasReader",
    "MidasWriter",
    "Odb",
    "encode_event",
    "encode_special",
    "parse_event",
    "read_events",
]
