"""Detector layouts the simulator can produce.

A :class:`Layout` says what one trigger event contains: the camera banks and
their shapes, the digitizer boards written into DGH0/DIG0, and which DGH0
header layout (lime.md "A" or "B") to write. Names accepted by
:func:`get_layout`:

``lime``
    one ORCA-Fusion camera 2304x2304 (CAM0), V1742 + V1720 boards, DGH0 layout A.
``cygno04``
    ``cameras`` ORCA-Quest cameras (default 2, 1..6) of rows=2304 x cols=4096
    (CAM0..CAMn), a TIME bank on the first trigger event, header time stamps in
    milliseconds since time zero, DGH0 layout B.
``crop:SIZE``
    the LIME detector read out with a square SIZE x SIZE crop (``cameras``
    of them, default 1), DGH0 layout A. Tests use ``crop:256``/``crop:512``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cygno_online.errors import ConfigError

#: ORCA-Fusion (LIME) sensor
LIME_SHAPE = (2304, 2304)
#: ORCA-Quest (CYGNO-04) sensor: rows x cols
QUEST_SHAPE = (2304, 4096)
MAX_CAMERAS = 6
LAYOUT_NAMES = ("lime", "cygno04", "crop:SIZE")


@dataclass(frozen=True, slots=True)
class Board:
    """One CAEN digitizer board as written into DGH0."""

    #: 1742 (V1742, DRS4 fast sampler) or 1720 (V1720, slow)
    model: int
    nchannels: int
    nsamples: int
    #: as the DAQ writes it: V1742 sampling period in ps, V1720 MS/s
    sampling: int
    #: nominal channel baseline (ADC counts); pulses go negative from it
    baseline: float
    #: channel noise (ADC counts RMS)
    noise: float
    adcmax: int = 4096

    @property
    def sample_ns(self) -> float:
        """Sampling period in nanoseconds (the units differ per model)."""
        if self.model == 1742:
            return self.sampling / 1000.0
        return 1000.0 / self.sampling


#: V1742: 32 channels x 1024 samples, 1333 ps period (750 MS/s)
V1742 = Board(model=1742, nchannels=32, nsamples=1024, sampling=1333, baseline=3850.0, noise=3.0)
#: V1720: 8 channels x 4000 samples at 250 MS/s
V1720 = Board(model=1720, nchannels=8, nsamples=4000, sampling=250, baseline=2100.0, noise=2.5)


@dataclass(frozen=True, slots=True)
class Layout:
    """What one simulated trigger event looks like."""

    name: str
    #: (rows, cols) per camera; bank CAM<i> for camera i
    camera_shapes: tuple[tuple[int, int], ...]
    boards: tuple[Board, ...] = (V1742, V1720)
    #: DGH0 header layout: "A" (LIME) or "B" (CYGNO-04, version word 1000 + ttt1)
    dgh_layout: str = "A"
    #: CYGNO-04: TIME bank on the first trigger event and millisecond header stamps
    time_bank: bool = False
    #: experiment name written into the ODB
    experiment: str = "LIME"

    @property
    def ncameras(self) -> int:
        return len(self.camera_shapes)

    def camera_bank(self, camera: int) -> str:
        return f"CAM{camera}"

    @property
    def max_pixels(self) -> int:
        return max(r * c for r, c in self.camera_shapes)


def get_layout(name: str | Layout, *, cameras: int | None = None) -> Layout:
    """The layout called ``name`` (see the module docstring); a :class:`Layout`
    is returned as is. ``cameras`` overrides the camera count of ``cygno04``
    and ``crop:SIZE`` (``lime`` has exactly one). Raises :class:`ConfigError`
    for an unknown name or an out-of-range size/count."""
    if isinstance(name, Layout):
        return name
    key = str(name).strip().lower()
    if cameras is not None and not 1 <= int(cameras) <= MAX_CAMERAS:
        raise ConfigError("simulate.cameras", f"must be 1..{MAX_CAMERAS}", value=cameras)
    if key == "lime":
        if cameras not in (None, 1):
            raise ConfigError("simulate.cameras", "the lime layout has one camera", value=cameras)
        return Layout("lime", (LIME_SHAPE,))
    if key == "cygno04":
        n = 2 if cameras is None else int(cameras)
        return Layout(
            "cygno04",
            (QUEST_SHAPE,) * n,
            dgh_layout="B",
            time_bank=True,
            experiment="CYGNO04",
        )
    if key.startswith("crop:"):
        try:
            size = int(key[5:])
        except ValueError:
            raise ConfigError(
                "simulate.layout", "crop size must be an integer", value=name
            ) from None
        if not 16 <= size <= 4096:
            raise ConfigError("simulate.layout", "crop size must be 16..4096", value=name)
        n = 1 if cameras is None else int(cameras)
        return Layout(f"crop:{size}", ((size, size),) * n)
    raise ConfigError("simulate.layout", "unknown layout", value=name, allowed=LAYOUT_NAMES)
