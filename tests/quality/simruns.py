"""Small simulated runs for the reference-check tests: nominal, and with one
fault each (shifted 55Fe gain, a noisy camera quadrant, a dead PMT channel).

The faults are injected into the simulator's output the way they appear in
the detector: the 55Fe spot light scaled (gain), extra Gaussian noise on one
quadrant of the sensor (a noisy readout quadrant of the sCMOS), one PMT
channel's waveforms flat at its baseline (a dead channel: no pulses).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.offline import OfflineRunner
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.midas.event import parse_event
from cygno_online.params import Params
from cygno_online.quality.monitor import RunQuality
from cygno_online.simulate.camera import Rates
from cygno_online.simulate.run import Simulator

NTRIG = 40
LAYOUT = "crop:256"


def chain_config(sampling: str = "file") -> dict[str, Any]:
    """Every shipped analyzer (daqhealth ``simulator`` sampling: as live, with lag)."""
    return {
        "analyzers": [
            {"plugin": "daqhealth", "params": {"sampling": sampling}},
            # the pedestal is estimated from each run's first frames in the
            # background; room to keep every frame meanwhile (max_deferred), so
            # no frame's clusters depend on how long the estimate takes on a
            # loaded machine
            {
                "plugin": "camera",
                "params": {"per_cluster_metrics": True, "pedestal": {"max_deferred": NTRIG}},
            },
            # the simulator's time tags tick at 8 ns on both boards
            {"plugin": "pmt", "params": {"models": {1742: {"ttt_tick_ns": 8.0}}}},
            {"plugin": "slowcontrol"},
        ]
    }


def simulator(run: int, fault: str | None = None, *, seed: int | None = None) -> Simulator:
    rates = Rates()
    if fault == "gain":
        rates = replace(rates, fe55_integral=rates.fe55_integral * 1.25)
    sim = Simulator(
        LAYOUT, seed=run if seed is None else seed, run=run, rates=rates, sc_every_n_triggers=5
    )
    if fault == "noisy_quadrant":
        inner = sim.trigger

        def noisy(serial: int, *, reuse_buffers: bool = False):
            trig = inner(serial, reuse_buffers=reuse_buffers)
            img = trig.images[0]
            h, w = img.shape
            rng = np.random.default_rng(1000 + serial)
            q = img[: h // 2, : w // 2].astype(np.float32)
            q += rng.normal(0.0, 8.0, q.shape).astype(np.float32)
            img[: h // 2, : w // 2] = np.clip(q, 0, 65535).astype(np.uint16)
            return trig

        sim.trigger = noisy  # type: ignore[method-assign]
    if fault == "dead_pmt":
        digi = sim._digi
        assert digi is not None
        inner_w = digi._waveforms

        def dead(rng, bi, board, trig):
            wave = inner_w(rng, bi, board, trig)
            if bi == 0:
                wave[1, :] = np.uint16(round(float(digi.baselines[0][1])))
            return wave

        digi._waveforms = dead  # type: ignore[method-assign]
    return sim


def analyse(
    sim: Simulator,
    quality: RunQuality,
    ntrig: int = NTRIG,
    on_outputs: Any = None,
    sampling: str = "file",
) -> dict[str, Any]:
    """The run's summary with its checks, through the offline runner (the
    daemon's chain and summary code)."""
    chain = AnalysisChain.from_params(
        Params(chain_config(sampling), ""), AnalyzerEnv(experiment="LIME")
    )
    try:
        runner = OfflineRunner(chain, quality=quality, on_outputs=on_outputs)
        runner.feed((parse_event(b, source="sim") for b in sim.run_events(ntrig)), "sim")
        for _kind, stop_ns, complete in runner.tracker.finish():
            runner._finish(stop_ns, complete)
    finally:
        chain.close()
    (doc,) = runner.summaries
    return doc
