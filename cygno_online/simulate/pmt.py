"""PMT waveforms: the DGH0 digitizer header and the DIG0 samples.

Every injected object (and every spark) produces one PMT trigger during the
exposure. Every board records every trigger (nevents is the same on both
boards, as in the real LIME files). Channel map (both boards): ch0 a copy of
the trigger (a NIM-like square pulse), ch1-4 the four PMTs, ch5-7 GEM signals
on the fast board (baseline only on the slow board), higher channels baseline
only. Pulses are negative from the baseline; samples are clipped to
0..adcmax-1.

Amplitudes: the light seen by the camera (object integral, ADU) gives a PMT
charge of ``CHARGE_PER_ADU * integral`` ADC*ns shared among the four PMTs by
their distance to the object (PMTs sit at the four corners of the imaged
area); tracks spread it over a longer pulse. A 3000-ADU 55Fe spot gives
pulses of a few tens of ADC on the fast board, an alpha hundreds, a spark
saturates.

Time tags: a 31-bit counter of ticks since the start of the run (ttt) with
the boards' clocks (8 ns on the V1720, 8.5 ns on the V1742), wrapping as on
the boards; layout B adds ``ttt1`` = the number
of wraps, so ``ttt1 * 2**31 + ttt`` is the full tick count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cygno_online.simulate import kernels
from cygno_online.simulate.layouts import Board
from cygno_online.simulate.truth import InjectedObject

#: trigger-time-tag tick per digitizer model (the analyzer's defaults)
TICK_NS = {1742: 8.5, 1720: 8.0}
DEFAULT_TICK_NS = 8.0
CHARGE_PER_ADU = 1.0
#: position of the trigger in the acquisition window (post-trigger 60 %)
TRIGGER_FRACTION = 0.4
DAC_OFFSET = 32768
DGH_VERSION_B = 1000
#: slow board sees half the amplitude (2 Vpp range against 1 Vpp)
SLOW_GAIN = 0.5
NOISE_BANK = 1 << 20


@dataclass(slots=True)
class PmtTrigger:
    """One PMT trigger inside an exposure."""

    #: time since the start of the exposure
    t_ns: float
    #: total charge over the four PMTs (ADC*ns on the fast board)
    charge: float
    #: pulse decay constant (ns): longer for long tracks
    decay_ns: float
    #: relative light of PMT 1..4 (mean 1)
    weights: tuple[float, ...]
    kind: str = ""


def pmt_weights(center: tuple[float, float], shape: tuple[int, int]) -> tuple[float, ...]:
    """Light share of the four corner PMTs for an object at ``center``."""
    rows, cols = shape
    y, x = center[0] / rows, center[1] / cols
    corners = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
    w = [1.0 / ((y - cy) ** 2 + (x - cx) ** 2 + 0.5) for cy, cx in corners]
    s = sum(w)
    return tuple(4.0 * v / s for v in w)


def trigger_for(obj: InjectedObject, shape: tuple[int, int], t_ns: float) -> PmtTrigger:
    """The PMT trigger an injected object makes."""
    if obj.kind == "fe55":
        decay = 10.0
    elif obj.kind == "alpha":
        decay = 30.0 + 0.3 * obj.length
    elif obj.kind == "muon":
        decay = 50.0 + 0.1 * obj.length
    else:
        decay = 200.0
    charge = CHARGE_PER_ADU * obj.integral
    return PmtTrigger(t_ns, charge, decay, pmt_weights(obj.center, shape), obj.kind)


def _unit_area(rise: float, decay: float) -> float:
    """Area (in samples) of the pulse shape normalised to a peak of 1."""
    t_peak = rise * math.log(1.0 + decay / rise)
    peak = (1.0 - math.exp(-t_peak / rise)) * math.exp(-t_peak / decay)
    return (decay * decay / (rise + decay)) / peak


@lru_cache(maxsize=4)
def _noise_bank(seed: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x9417])))
    return rng.standard_normal(NOISE_BANK, dtype=np.float32)


class DigitizerModel:
    """The boards of a layout with their fixed per-channel baselines."""

    def __init__(self, boards: tuple[Board, ...], detector_seed: int) -> None:
        self.boards = boards
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([detector_seed, 0xD16])))
        self.baselines = [
            (b.baseline + rng.normal(0.0, 4.0, b.nchannels)).astype(np.float32) for b in boards
        ]
        self.noise = _noise_bank(detector_seed)

    def render(
        self,
        rng: np.random.Generator,
        triggers: list[PmtTrigger],
        exposure_start_ns: int,
        dgh_layout: str,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(DGH0 uint32, DIG0 uint16)`` for one trigger event.
        ``exposure_start_ns`` counts from the start of the run (time tags)."""
        triggers = sorted(triggers, key=lambda t: t.t_ns)[:128]
        nev = len(triggers)
        times_ns = [exposure_start_ns + t.t_ns for t in triggers]
        words: list[int] = []
        if dgh_layout == "B":
            words.append(DGH_VERSION_B)
        words.append(len(self.boards))
        waves: list[np.ndarray] = []
        for bi, board in enumerate(self.boards):
            tick = TICK_NS.get(board.model, DEFAULT_TICK_NS)
            ticks = [int(t / tick) for t in times_ns]
            words += [
                board.model,
                board.nsamples,
                board.nchannels,
                nev,
                board.adcmax,
                board.sampling,
            ]
            words += [DAC_OFFSET] * board.nchannels
            words += [int(t) & 0x7FFFFFFF for t in ticks]
            if dgh_layout == "B":
                words += [(int(t) >> 31) & 0xFFFFFFFF for t in ticks]
            if board.model == 1742:
                words += [int(v) for v in rng.integers(0, 1024, nev)]
            for trig in triggers:
                waves.append(self._waveforms(rng, bi, board, trig))
        dgh = np.array(words, dtype=np.uint32)
        if waves:
            dig = np.concatenate([w.reshape(-1) for w in waves])
        else:
            dig = np.zeros(0, np.uint16)
        return dgh, dig

    def _waveforms(
        self, rng: np.random.Generator, bi: int, board: Board, trig: PmtTrigger
    ) -> np.ndarray:
        nch, ns = board.nchannels, board.nsamples
        n = nch * ns
        off = int(rng.integers(0, self.noise.size - n))
        wave = self.noise[off : off + n].reshape(nch, ns) * np.float32(board.noise)
        wave += self.baselines[bi][:, None]
        dt = board.sample_ns
        t_trig = TRIGGER_FRACTION * ns
        # ch0: square trigger copy, ~30 ns (fast) / ~48 ns (slow)
        width = max(round(30.0 / dt), 2)
        j0 = int(t_trig)
        wave[0, j0 : j0 + width] -= 800.0 if board.model == 1742 else 400.0
        gain = 1.0 if board.model == 1742 else SLOW_GAIN
        rise = max(2.0 / dt, 0.5)
        decay = max(trig.decay_ns / dt, 1.0)
        # charge is in ADC*ns: convert to samples for this board
        peak_total = trig.charge / dt / _unit_area(rise, decay) * gain
        chans = [1, 2, 3, 4]
        amps = [peak_total / 4.0 * w for w in trig.weights]
        rises = [rise] * 4
        decays = [decay] * 4
        starts = [t_trig - rise for _ in range(4)]
        if board.model == 1742:
            # GEM induced signals: small and slower
            for ch in (5, 6, 7):
                chans.append(ch)
                amps.append(0.15 * peak_total / 4.0)
                rises.append(2.0 * rise)
                decays.append(2.0 * decay)
                starts.append(t_trig - 2.0 * rise)
        sub = np.ascontiguousarray(wave[chans])
        kernels.add_pulses(
            sub,
            np.array(starts, np.float64) + rng.normal(0.0, 0.5, len(chans)),
            np.array(amps, np.float64),
            np.array(rises, np.float64),
            np.array(decays, np.float64),
        )
        wave[chans] = sub
        np.rint(wave, out=wave)
        np.clip(wave, 0, board.adcmax - 1, out=wave)
        return wave.astype(np.uint16)
