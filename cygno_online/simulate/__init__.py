"""Deterministic LIME-like event simulator with truth.

The daemon's embedded default data source and the truth source of the
analyzer efficiency tests::

    from cygno_online.simulate import Simulator, write_run

    sim = Simulator("crop:512", seed=3, run=7)
    bor = sim.bor()
    for ev in sim.events(100):      # SimEvent(data, event_id, serial, time_ns, truth)
        ...
    sim.frame_truth(0).objects      # InjectedObject(kind, camera, center, bbox, ...)
    sim.pedestal_map(0), sim.noise_map(0), sim.hot_pixels(0)

    truth = write_run("run00007.mid.lz4", events=100, layout="crop:512", seed=3, run=7)
"""

from cygno_online.simulate.camera import Rates, spark_threshold
from cygno_online.simulate.layouts import Board, Layout, get_layout
from cygno_online.simulate.run import SimEvent, SimTrigger, Simulator, write_run
from cygno_online.simulate.truth import (
    CameraTruth,
    FrameTruth,
    InjectedObject,
    RunTruth,
    load_truth,
)

__all__ = [
    "Board",
    "CameraTruth",
    "FrameTruth",
    "InjectedObject",
    "Layout",
    "Rates",
    "RunTruth",
    "SimEvent",
    "SimTrigger",
    "Simulator",
    "get_layout",
    "load_truth",
    "spark_threshold",
    "write_run",
]
