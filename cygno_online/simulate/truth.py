"""What the simulator injected: the truth analyzer tests compare against.

Conventions (all in full-resolution camera pixels of the camera's own bank):

* ``center`` = (row, col), float;
* ``bbox`` = (row0, col0, row1, col1), half-open and clipped to the image, so
  ``image[row0:row1, col0:col1]`` holds the whole object (path +- 3 sigma);
* ``angle_deg`` in [-90, 90): direction of the track measured from the column
  axis towards increasing rows (0 for a spot);
* ``integral`` = ADU injected inside the image before digitisation and
  saturation (a spark's includes its glow over the whole frame).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("fe55", "alpha", "muon", "spark")
TRUTH_FORMAT = "cygno-online-sim-truth"
TRUTH_VERSION = 1


@dataclass(slots=True)
class InjectedObject:
    """One object drawn into one camera image."""

    kind: str
    camera: int
    center: tuple[float, float]
    bbox: tuple[int, int, int, int]
    length: float
    angle_deg: float
    integral: float
    #: transverse Gaussian sigma of the light (px)
    sigma: float
    #: PMT triggers this object produced (0 or 1)
    pmt_triggers: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["center"] = [round(self.center[0], 3), round(self.center[1], 3)]
        d["bbox"] = list(self.bbox)
        d["length"] = round(self.length, 3)
        d["angle_deg"] = round(self.angle_deg, 3)
        d["integral"] = round(self.integral, 3)
        d["sigma"] = round(self.sigma, 3)
        return d


@dataclass(slots=True)
class FrameTruth:
    """Truth of one trigger event (one image per camera)."""

    serial: int
    time_ns: int
    objects: list[InjectedObject] = field(default_factory=list)
    #: PMT triggers in DGH0 (per board: every board records every trigger)
    n_pmt_triggers: int = 0

    @property
    def spark(self) -> bool:
        return any(o.kind == "spark" for o in self.objects)

    def of_kind(self, kind: str, camera: int | None = None) -> list[InjectedObject]:
        return [
            o for o in self.objects if o.kind == kind and (camera is None or o.camera == camera)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "time_ns": self.time_ns,
            "n_pmt_triggers": self.n_pmt_triggers,
            "spark": self.spark,
            "objects": [o.to_dict() for o in self.objects],
        }


@dataclass(slots=True)
class CameraTruth:
    """The fixed properties of one simulated camera (maps are available from
    :class:`~cygno_online.simulate.run.Simulator`, not stored here)."""

    camera: int
    bank: str
    shape: tuple[int, int]
    #: (row, col) of each hot pixel
    hot_pixels: list[tuple[int, int]]
    pedestal_mean: float
    noise_mean: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "bank": self.bank,
            "shape": list(self.shape),
            "hot_pixels": [list(p) for p in self.hot_pixels],
            "pedestal_mean": round(self.pedestal_mean, 4),
            "noise_mean": round(self.noise_mean, 4),
        }


@dataclass(slots=True)
class RunTruth:
    """Everything injected in one simulated run."""

    layout: str
    seed: int
    run: int
    pedestal: bool
    start_time_ns: int
    cameras: list[CameraTruth]
    frames: list[FrameTruth] = field(default_factory=list)
    #: events of the run by event id (BOR/EOR excluded)
    event_counts: dict[int, int] = field(default_factory=dict)
    path: str | None = None

    def frame(self, serial: int) -> FrameTruth:
        for f in self.frames:
            if f.serial == serial:
                return f
        raise KeyError(f"no trigger event with serial {serial}")

    def objects(self, kind: str | None = None) -> list[InjectedObject]:
        return [o for f in self.frames for o in f.objects if kind is None or o.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "version": TRUTH_VERSION,
            "layout": self.layout,
            "seed": self.seed,
            "run": self.run,
            "pedestal": self.pedestal,
            "start_time_ns": self.start_time_ns,
            "event_counts": {str(k): v for k, v in sorted(self.event_counts.items())},
            "cameras": [c.to_dict() for c in self.cameras],
            "frames": [f.to_dict() for f in self.frames],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read a truth JSON file written by :meth:`RunTruth.write_json` (as a
    plain dict); raises ValueError when it is not one."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or data.get("format") != TRUTH_FORMAT:
        raise ValueError(f"{path}: not a cygno-online simulation truth file")
    return data
