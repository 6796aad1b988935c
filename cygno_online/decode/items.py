"""The decoded items that flow from the decoders to the analyzers.

Arrays are zero-copy views into the event buffer wherever the layout allows it:
a camera frame is never copied between the MIDAS buffer and the first kernel.
Every item carries an :class:`EventContext` so any error or metric downstream
can name run, serial and bank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True, frozen=True)
class EventContext:
    """Where an item came from."""

    run: int
    serial: int
    event_id: int
    trigger_mask: int
    #: absolute event time, Unix nanoseconds (CYGNO-04 millisecond stamps already resolved)
    time_ns: int
    #: file name, ``"midas:SYSTEM"``, ``"simulator"``...
    source: str = ""
    #: time of this event's stored points: ``time_ns`` plus a sub-second slot
    #: from serial and event id (decode.timebase.point_time_ns); unique per
    #: event and the same on every replay. 0 = same as ``time_ns``.
    point_ns: int = 0


@dataclass(slots=True)
class RunInfo:
    """What is known about a run at begin-of-run (from the BOR ODB dump, the live
    ODB, the simulator or configuration)."""

    run: int
    start_time_ns: int
    experiment: str = ""
    description: str = ""
    #: camera exposure in seconds, ``None`` when unknown
    exposure_s: float | None = None
    #: True for a pedestal run (ODB /Configurations/Pedestal, "PED" in the
    #: description, or forced by configuration)
    pedestal: bool = False
    #: parsed ODB (``cygno_online.midas.odb.Odb``) or ``None``
    odb: Any = None
    source: str = ""
    #: free-form extras (layout name, camera shapes...)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CameraFrame:
    """One camera image: ``image`` is a 2-D ``uint16`` view (rows, cols)."""

    ctx: EventContext
    camera: int
    bank: str
    image: np.ndarray

    @property
    def key(self) -> str:
        return f"cam{self.camera}"


@dataclass(slots=True)
class DigitizerBoard:
    """One digitizer board of one trigger event (DGH0 + DIG0).

    ``waveforms`` has shape ``(ntriggers, nchannels, nsamples)``, dtype uint16,
    and is a view of DIG0. ``ntriggers`` may be 0.
    """

    ctx: EventContext
    board: int
    model: int
    nsamples: int
    nchannels: int
    ntriggers: int
    adcmax: int
    #: as written by the DAQ: V1742 period in ps, V1720 MS/s (units differ!)
    sampling: int
    #: sampling period in nanoseconds, derived from ``model``/``sampling``
    sample_ns: float
    offsets: np.ndarray
    #: trigger time tags, one per trigger (uint32)
    ttt: np.ndarray
    waveforms: np.ndarray
    #: header layout that matched: "A", "B" or "C"
    layout: str
    ttt1: np.ndarray | None = None
    sic: np.ndarray | None = None
    pattern: np.ndarray | None = None

    @property
    def key(self) -> str:
        return f"board{self.board}"


@dataclass(slots=True, frozen=True)
class Reading:
    """One slow-control value in physical units."""

    name: str
    #: what the bank holds: "input", "demand", "measured", "current", "status",
    #: "temperature", "rate", ...
    quantity: str
    value: float
    unit: str
    #: value as read from the bank before conversion
    raw: float
    channel: int


@dataclass(slots=True)
class SlowControl:
    """All readings of one slow-control bank of one event."""

    ctx: EventContext
    #: "environment", "hv", "cathode", "gas", "camera", "trigger_module", or a
    #: user-defined equipment name
    equipment: str
    bank: str
    readings: list[Reading]

    @property
    def key(self) -> str:
        return f"{self.equipment}/{self.bank}"


@dataclass(slots=True)
class RawBank:
    """A bank mapped to the ``raw`` decoder (kept for analyzers of other
    experiments that want the bytes/array as-is)."""

    ctx: EventContext
    bank: str
    type_id: int
    data: Any

    @property
    def key(self) -> str:
        return self.bank


@dataclass(slots=True)
class EventSeen:
    """Emitted once for every event that reached the decoder, whatever its
    banks: the input of the DAQ-health analyzer (rates, sizes, serial gaps)."""

    ctx: EventContext
    size_bytes: int
    bank_names: tuple[str, ...]
    #: decode errors of this event, as (bank, kind, message)
    errors: tuple[tuple[str, str, str], ...] = ()
    #: wall-clock time the event was received by the monitor (Unix ns)
    received_ns: int = 0

    @property
    def key(self) -> str:
        return "daq"


@dataclass(slots=True)
class MessageItem:
    """A MIDAS message (event id 0x8002)."""

    ctx: EventContext
    text: str

    @property
    def key(self) -> str:
        return "messages"


#: every type an analyzer may declare in ``consumes``
ITEM_TYPES = (CameraFrame, DigitizerBoard, SlowControl, RawBank, EventSeen, MessageItem)
