"""The demo's PMT settings on the simulator's waveforms: no channel is
called silent on nominal data, a dead GEM channel is, after its
``silent_after`` triggers (config/demo.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.offline import OfflineRunner
from cygno_online.analysis.outputs import Metric
from cygno_online.analysis.plugin import AnalyzerEnv
from cygno_online.midas.event import parse_event
from cygno_online.params import Params
from cygno_online.simulate.run import Simulator

ROOT = Path(__file__).resolve().parents[2]


def demo_pmt_params():
    doc = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    (entry,) = [a for a in doc["analyzers"] if a["plugin"] == "pmt"]
    return entry.get("params") or {}


def run_states(n_triggers, dead_channel=None):
    sim = Simulator("crop:256", seed=7, run=3)
    digi = sim._digi
    if dead_channel is not None:
        inner = digi._waveforms

        def dead(rng, bi, board, trig):
            wave = inner(rng, bi, board, trig)
            if bi == 0:
                wave[dead_channel, :] = np.uint16(round(float(digi.baselines[0][dead_channel])))
            return wave

        digi._waveforms = dead
    states: dict[tuple[str, str], list[tuple[bool, int]]] = {}

    def on_outputs(outs):
        for o in outs:
            if isinstance(o, Metric) and o.family == "pmt" and "channel" in o.tags:
                key = (o.tags["board"], o.tags["channel"])
                states.setdefault(key, []).append(
                    (o.fields["no_signal"], o.fields["triggers_since_peak"])
                )

    cfg = {"analyzers": [{"plugin": "pmt", "params": demo_pmt_params()}]}
    chain = AnalysisChain.from_params(Params(cfg, ""), AnalyzerEnv(experiment="DEMO"))
    try:
        runner = OfflineRunner(chain, on_outputs=on_outputs)
        runner.feed((parse_event(b, source="sim") for b in sim.run_events(n_triggers)), "sim")
    finally:
        chain.close()
    return states


def test_demo_settings_quiet_on_nominal_waveforms_and_a_dead_gem_is_silent():
    states = run_states(400)
    assert len(states) == 11  # fast board ch1-7, slow board ch1-4
    for key, seq in states.items():
        assert not any(s for s, _ in seq), key
    # the GEM channels do go long without a peak (why the demo waits 300)
    assert max(n for _, n in states[("0", "5")]) > 20
    dead = run_states(400, dead_channel=5)[("0", "5")]
    first = next(i for i, (s, _) in enumerate(dead) if s)
    assert dead[first][1] >= 300 and dead[first - 1][1] < 300
    assert all(s for s, _ in dead[first:])
