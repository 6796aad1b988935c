"""Small fakes of the analysis chain and of a source for pipeline tests."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from cygno_online.analysis.chain import ChainResult
from cygno_online.analysis.outputs import Metric
from cygno_online.decode.items import RunInfo
from cygno_online.errors import ConfigError
from cygno_online.sources.base import Source


def fake_event(serial: int, event_id: int = 1):
    header = SimpleNamespace(
        event_id=event_id, trigger_mask=0, serial_number=serial, time_stamp=1_700_000_000 + serial
    )
    return SimpleNamespace(header=header, event_id=event_id, serial=serial)


class FakeChain:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.run = None
        self.analyzers = [SimpleNamespace(instance_name="fake")]
        self.seen: list[int] = []
        self.gate = gate
        self.gain = 1.0
        self.closed = False

    def warm_up(self) -> float:
        return 0.0

    def begin_run(self, run: RunInfo):
        self.run = run
        self.seen = []
        return [Metric("runs", run.start_time_ns, run.run, 0, {"started": True})]

    def process_event(self, event, *, run, source="", received_ns=0):
        if self.gate is not None:
            self.gate.wait(30)
        self.seen.append(event.header.serial_number)
        m = Metric(
            "camera",
            event.header.time_stamp * 1_000_000_000,
            run,
            event.header.serial_number,
            {"mean": self.gain * event.header.serial_number},
            {"camera": "cam0"},
        )
        return ChainResult([m], [], {"fake": 0.001, "decode": 0.0001}, [], 1)

    def end_run(self):
        return {"fake": {"events": len(self.seen), "gain": self.gain}}

    def reconfigure(self, params):
        entries = params.raw("analyzers", []) or []
        gain = 1.0
        for e in entries:
            gain = (e.get("params") or {}).get("gain", 1.0)
        if not isinstance(gain, (int, float)) or gain < 0:
            raise ConfigError("analyzers[0].params.gain", "must be >= 0", value=gain)
        self.gain = gain

    def close(self):
        self.closed = True


class FakeSource(Source):
    sampling = "nonblocking"

    def __init__(self, n: int = 10, run: int = 5, *, gate=None, endless=False, lossless=False):
        self.n = n
        self.run_number = run
        self.gate = gate
        self.endless = endless
        self.lossless = lossless
        self.name = "fake"
        self.messages: list[tuple[str, bool]] = []

    def run(self, sink, stop):
        if self.gate is not None:
            while not self.gate.wait(0.1):
                if stop.is_set():
                    return
        sink.begin_run(RunInfo(run=self.run_number, start_time_ns=time.time_ns(), source="fake"))
        for i in range(self.n):
            if stop.is_set():
                return
            sink.heartbeat()
            sink.event(fake_event(i), time.time_ns())
        sink.end_run(time.time_ns(), complete=True)
        while self.endless and not stop.wait(0.1):
            sink.heartbeat()

    def send_message(self, text, is_error=False):
        self.messages.append((text, is_error))


def fake_summary(run, sections, *, counters=None, stop_time_ns=None, config=None):
    return {
        "run": run.run,
        "sections": sections,
        "counters": counters,
        "stop_time_ns": stop_time_ns,
    }


def fake_write(doc, directory):
    import json
    from pathlib import Path

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    out = path / f"run{doc['run']:05d}-summary.json"
    out.write_text(json.dumps(doc, default=str))
    return out
