"""What analyzers produce.

* :class:`Metric` - one time-series point (InfluxDB line, TUI number/sparkline).
* :class:`Display` - arrays for viewers only (downsampled frame, histogram,
  average waveform); never stored as time series.

Both are plain data: publishers, sinks and alarms consume them without knowing
which analyzer made them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FieldValue = float | int | bool | str

#: measurement families (InfluxDB measurements, ZeroMQ topic prefixes)
FAMILIES = (
    "camera",
    "clusters",
    "pmt",
    "environment",
    "hv",
    "gas",
    "daq",
    "alarms",
    "runs",
    "monitor",
    "run_summary",
    "quality",
)


@dataclass(slots=True)
class Metric:
    """One point of a time series.

    ``family`` is the measurement; ``tags`` identify the series (camera, board,
    channel...; experiment and run are added by the publisher); ``fields`` are
    the values with their ``units`` (field name -> unit string, "" for
    dimensionless). Field types must never change between points of a series.
    """

    family: str
    time_ns: int
    run: int
    serial: int
    fields: dict[str, FieldValue]
    tags: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def series_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.family, tuple(sorted(self.tags.items()))


@dataclass(slots=True)
class Display:
    """Arrays for viewers.

    ``kind`` is one of ``image`` (2-D array, ``meta`` may hold ``boxes`` of
    clusters and the ``scale`` of downsampling), ``histogram`` (``counts`` and
    ``edges``), ``waveforms`` (``samples`` per channel), ``scatter`` (``x``,
    ``y``). ``name`` is a stable slash-separated id, e.g. ``camera/cam0/frame``.
    """

    kind: str
    name: str
    run: int
    serial: int
    time_ns: int
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


Output = Metric | Display
