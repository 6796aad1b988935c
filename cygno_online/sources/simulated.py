"""A live-like stream from the simulator: runs of N trigger events (with the
slow-control events in between), a gap, the next run; optionally a pedestal
run every K runs. ``pace: exposure`` releases each event at its simulated
time (one image per exposure + readout, slow control at its periods or every
``slow_control_every`` images); ``pace: max`` as fast as possible (benches).
Run start times are "now", so event times look live."""

from __future__ import annotations

import threading
import time
from typing import Any

from cygno_online.sources.base import Source, SourceSink


class SimulatorSource(Source):
    sampling = "simulator"

    def __init__(
        self,
        *,
        layout: str = "lime",
        seed: int = 1,
        run_events: int = 400,
        runs: int = 0,
        first_run: int = 1,
        gap_s: float = 5.0,
        pedestal_every: int = 0,
        pedestal_events: int = 100,
        exposure_s: float = 0.3,
        pace: str = "exposure",
        slow_control_every: int | None = None,
        experiment: str | None = None,
    ) -> None:
        self.layout = layout
        self.seed = seed
        self.run_events = run_events
        self.runs = runs
        self.first_run = first_run
        self.gap_s = gap_s
        self.pedestal_every = pedestal_every
        self.pedestal_events = pedestal_events
        self.exposure_s = exposure_s
        self.pace = pace
        self.slow_control_every = slow_control_every or None
        self.experiment = experiment
        self.endless = runs == 0
        self.name = "simulator"

    @classmethod
    def from_config(cls, c: Any, experiment: str | None = None) -> SimulatorSource:
        return cls(
            layout=c.layout,
            seed=c.seed,
            run_events=c.run_events,
            runs=c.runs,
            first_run=c.first_run,
            gap_s=c.gap_s,
            pedestal_every=c.pedestal_every,
            pedestal_events=c.pedestal_events,
            exposure_s=c.exposure_s,
            pace=c.pace,
            slow_control_every=c.slow_control_every,
            experiment=experiment,
        )

    def is_pedestal(self, index: int) -> bool:
        # index counts runs from 0; with pedestal_every K the first run and
        # then every K-th is a pedestal run (a fresh pedestal before data).
        return self.pedestal_every > 0 and index % (self.pedestal_every + 1) == 0

    def run(self, sink: SourceSink, stop: threading.Event) -> None:
        from cygno_online.decode.runinfo import run_info_from_odb
        from cygno_online.midas.event import parse_event
        from cygno_online.simulate import Simulator

        index = 0
        sink.status("running")
        while not stop.is_set() and (self.runs == 0 or index < self.runs):
            run_number = self.first_run + index
            pedestal = self.is_pedestal(index)
            n = self.pedestal_events if pedestal else self.run_events
            sim = Simulator(
                self.layout,
                seed=self.seed + index,
                run=run_number,
                pedestal=pedestal,
                exposure_s=self.exposure_s,
                start_time=time.time(),
                sc_every_n_triggers=self.slow_control_every,
            )
            bor = parse_event(sim.bor(), source=self.name, offset=0)
            sink.begin_run(
                run_info_from_odb(
                    bor.odb(),
                    run=run_number,
                    time_stamp=bor.header.time_stamp,
                    source=self.name,
                    pedestal=pedestal,
                    experiment=self.experiment,
                )
            )
            t0_wall = time.monotonic()
            for sim_event in sim.events(n):
                if stop.is_set():
                    break
                sink.heartbeat()
                if self.pace == "exposure":
                    due = t0_wall + (sim_event.time_ns - sim.start_time_ns) / 1e9
                    delay = due - time.monotonic()
                    while delay > 0 and not stop.is_set():
                        stop.wait(min(delay, 0.5))
                        sink.heartbeat()
                        delay = due - time.monotonic()
                    if stop.is_set():
                        break
                event = parse_event(sim_event.data, source=self.name, offset=0)
                sink.event(event, time.time_ns())
            if stop.is_set():
                break
            eor = parse_event(sim.eor(), source=self.name, offset=0)
            sink.end_run(eor.header.time_stamp * 1_000_000_000, complete=True)
            index += 1
            if self.pace == "exposure" and self.gap_s > 0 and (self.runs == 0 or index < self.runs):
                sink.status("between runs")
                waited = 0.0
                while waited < self.gap_s and not stop.is_set():
                    stop.wait(min(0.5, self.gap_s - waited))
                    waited += 0.5
                    sink.heartbeat()
                sink.status("running")
        if self.runs and index >= self.runs:
            sink.status("finished")
