"""Slow-control events: HV (id 3), CATHODE (4), Environment (5),
CameraStatus (7) and TriggerModule (8), with the bank contents of lime.md.

Values are deterministic functions of the simulated time (slow sinusoidal
drifts with periods of hours) plus a little reading noise from the event's
generator, so a reading does not depend on how many events came before.
Environment INPT values are the raw 4-20 mA currents / volts that map through
the ODB ``/History/Display`` formulas (lime.md) to plausible physical values.

Sign convention copied from the real LIME ODB: the CATHODE module reports
``MSRD`` and ``CRNT`` negative while ``DMND`` is positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MIDAS type ids (midas.md)
TID_UINT32 = 6
TID_FLOAT = 9
TID_DOUBLE = 10

EVENTID_TRIGGER = 1
EVENTID_HV = 3
EVENTID_CATHODE = 4
EVENTID_ENVIRONMENT = 5
EVENTID_CAMERA = 7
EVENTID_TRIGGER_MODULE = 8
#: equipment -> nominal period (s)
PERIODS_S = {
    EVENTID_HV: 60.0,
    EVENTID_CATHODE: 60.0,
    EVENTID_ENVIRONMENT: 60.0,
    EVENTID_CAMERA: 10.0,
    EVENTID_TRIGGER_MODULE: 10.0,
}
SLOW_EVENT_IDS = tuple(PERIODS_S)

INPUT_NAMES = (
    [f"P0IIn{i}" for i in range(8)]
    + [f"P1UIn{i}" for i in range(8)]
    + [f"P3IIn{i}" for i in range(8)]
)
#: raw readings of the real LIME ODB (run 42901) for the channels without a
#: physical model: the unconnected 4-20 mA inputs read ~0, voltages vary
_BASE_INPUT = [
    9.7009, 0.0012, 4.5086, 12.9801, 0.0013, 13.0428, 0.0014, 0.0011,
    1.9678, 2.6809, 1.1633, 0.5621, 1.2624, 0.8800, 0.3438, 0.4195,
    8.7040, 8.7032, 10.3186, 10.6098, 0.0003, 10.9961, 6.2433, 6.3741,
]  # fmt: skip

HV_NAMES = [
    "Offset", "VGEM3", "Transf2", "VGEM2", "Transf1", "VGEM1", "Drift",
    "Ch00.007", "Ch00.008", "Ch00.009", "Ch00.010", "Ch00.011", "Ch00.012", "Ch00.013",
    "PMT1", "PMT2", "broken", "broken", "PMT4", "broken", "PMT3",
    "Ch10.007", "Ch10.008", "Ch10.009", "Ch10.010", "Ch10.011",
]  # fmt: skip
#: demand voltages (V) of the real LIME ODB
HV_DEMAND = [
    10, 400, 500, 400, 500, 400, 960, 0, 0, 0, 0, 0, 0, 0,
    772, 772, 0, 0, 770, 0, 800, 0, 0, 0, 0, 0,
]  # fmt: skip
#: typical currents (uA) of the channels that draw any (the PMTs' dividers)
HV_CURRENT = {14: 180.2, 15: 180.8, 18: 179.4, 20: 187.2}
CATHODE_DEMAND = 41250.0
CATHODE_CURRENT = 9.7


# Physical quantities <-> raw INPT (inverse of the lime.md formulas)
def gas_temperature_c(x: float) -> float:
    return (x - 4) / 16 * 200 - 50


def lime_pressure_bar(x: float) -> float:
    return (x - 4) / 16 * 1.6 * 1.005454


def atm_pressure_bar(x: float) -> float:
    return (x - 4) / 16 * 1.6 * 1.007618


def atm_temperature_c(x: float) -> float:
    return -22.7 * x + 82.3


def humidity_pct(x: float) -> float:
    return 0.0375 * x * 1000 - 37.7


def gas_density_gl(x: float) -> float:
    return (x - 4) * 10 / 16


#: index into INPT -> (name, formula, model: base, drift amplitude, drift
#: period in s, reading noise) of the physical value
_MODELS: dict[int, tuple[str, object, float, float, float, float]] = {
    0: ("gas_temperature_c", gas_temperature_c, 22.0, 0.4, 6 * 3600.0, 0.02),
    3: ("atm_pressure_bar", atm_pressure_bar, 0.905, 0.004, 9 * 3600.0, 0.0003),
    5: ("lime_pressure_bar", lime_pressure_bar, 0.909, 0.004, 9 * 3600.0, 0.0003),
    9: ("atm_temperature_c", atm_temperature_c, 21.0, 0.6, 5 * 3600.0, 0.03),
    13: ("humidity_pct", humidity_pct, 42.0, 3.0, 7 * 3600.0, 0.2),
    22: ("gas_density_gl", gas_density_gl, 1.40, 0.01, 6 * 3600.0, 0.002),
}


def _inverse(index: int, value: float) -> float:
    if index == 0:
        return (value + 50) / 200 * 16 + 4
    if index == 3:
        return value / (1.6 * 1.007618) * 16 + 4
    if index == 5:
        return value / (1.6 * 1.005454) * 16 + 4
    if index == 9:
        return (82.3 - value) / 22.7
    if index == 13:
        return (value + 37.7) / 37.5
    if index == 22:
        return value * 16 / 10 + 4
    raise KeyError(index)


@dataclass(slots=True)
class SlowControlModel:
    """Slow-control readings as functions of time since the run start."""

    ncameras: int
    pedestal: bool
    detector_seed: int = 0

    def _phase(self, k: int) -> float:
        # fixed per detector so consecutive runs continue the same drift
        return ((self.detector_seed * 7919 + k * 104729) % 6283) / 1000.0

    def physical(self, t_abs: float) -> dict[str, float]:
        """Noise-free physical values at Unix time ``t_abs`` (the truth of the
        Environment readings)."""
        out = {}
        for i, (name, _f, base, amp, period, _noise) in _MODELS.items():
            out[name] = base + amp * math.sin(2 * math.pi * t_abs / period + self._phase(i))
        return out

    def environment(self, rng: np.random.Generator, t_abs: float) -> list[tuple]:
        raw = np.array(_BASE_INPUT, dtype=np.float64)
        raw += rng.normal(0.0, 0.004, raw.size) * (raw > 0.01)
        phys = self.physical(t_abs)
        for i, (name, _f, _base, _amp, _period, noise) in _MODELS.items():
            raw[i] = _inverse(i, phys[name] + rng.normal(0.0, noise))
        # gas temperature in K-295 (P3IIn5) and density at 0 C (P3IIn7)
        # follow the modelled gas temperature and density
        t_k = phys["gas_temperature_c"] + 273.15
        raw[21] = (t_k - 233.15) * 16 / (378.15 - 233.15) + 4
        raw[23] = phys["gas_density_gl"] * t_k / 273.15 * 16 / 11.5 + 4
        return [
            ("INPT", TID_FLOAT, raw.astype(np.float32)),
            ("OUTP", TID_FLOAT, np.zeros(8, np.float32)),
        ]

    def hv(self, rng: np.random.Generator, t_abs: float) -> list[tuple]:
        n = len(HV_NAMES)
        if self.pedestal:
            dmnd = np.zeros(n)
            msrd = np.abs(rng.normal(0.0, 0.15, n))
            crnt = rng.normal(0.0, 0.005, n)
            stat = np.zeros(n, np.uint32)
        else:
            dmnd = np.array(HV_DEMAND, dtype=np.float64)
            msrd = dmnd + rng.normal(0.0, 0.2, n) * (dmnd > 0) + np.abs(rng.normal(0, 0.05, n))
            crnt = rng.normal(0.0, 0.005, n)
            for ch, cur in HV_CURRENT.items():
                crnt[ch] = cur + rng.normal(0.0, 0.3)
            stat = (dmnd > 0).astype(np.uint32)
        tptr = 31.0 + rng.normal(0.0, 0.1, n)
        return [
            ("DMND", TID_FLOAT, dmnd.astype(np.float32)),
            ("MSRD", TID_FLOAT, msrd.astype(np.float32)),
            ("CRNT", TID_FLOAT, crnt.astype(np.float32)),
            ("STAT", TID_UINT32, stat),
            ("TPTR", TID_FLOAT, tptr.astype(np.float32)),
        ]

    def cathode(self, rng: np.random.Generator, t_abs: float) -> list[tuple]:
        if self.pedestal:
            d, m, c = 0.0, -abs(rng.normal(0.0, 2.0)), rng.normal(0.0, 0.01)
        else:
            d = CATHODE_DEMAND
            m = -(d + rng.normal(30.0, 5.0))
            c = -(CATHODE_CURRENT + rng.normal(0.0, 0.05))
        return [
            ("DMND", TID_FLOAT, np.array([d], np.float32)),
            ("MSRD", TID_FLOAT, np.array([m], np.float32)),
            ("CRNT", TID_FLOAT, np.array([c], np.float32)),
        ]

    def camera_status(self, rng: np.random.Generator, t_abs: float) -> list[tuple]:
        temps = -18.5 + rng.normal(0.0, 0.04, self.ncameras)
        return [("TCAM", TID_DOUBLE, temps.astype(np.float64))]

    def trigger_module(self, rng: np.random.Generator, rate_hz: float) -> list[tuple]:
        # [0] accepted trigger rate (Hz); [4] unvetoed rate, shown by the ODB
        # display through "x/1000" (so stored in mHz)
        unvetoed = rate_hz * 1000.0 * (1.0 + abs(rng.normal(0.0, 0.05)))
        return [("TMOD", TID_FLOAT, np.array([rate_hz, 0, 0, 0, unvetoed], np.float32))]

    def banks(
        self, event_id: int, rng: np.random.Generator, t_abs: float, rate_hz: float
    ) -> list[tuple]:
        """The banks of slow-control event ``event_id`` at Unix time ``t_abs``."""
        if event_id == EVENTID_HV:
            return self.hv(rng, t_abs)
        if event_id == EVENTID_CATHODE:
            return self.cathode(rng, t_abs)
        if event_id == EVENTID_ENVIRONMENT:
            return self.environment(rng, t_abs)
        if event_id == EVENTID_CAMERA:
            return self.camera_status(rng, t_abs)
        if event_id == EVENTID_TRIGGER_MODULE:
            return self.trigger_module(rng, rate_hz)
        raise ValueError(f"not a slow-control event id: {event_id}")
