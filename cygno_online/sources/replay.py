"""Replay MIDAS files as if they were live.

Files are read in the given order; begin/end-of-run events in the files drive
the run life cycle (a file without its BOR, e.g. a sub-run, opens a run named
after the file). ``speed``: ``"recorded"`` follows the event time stamps,
a number is a factor on them, ``"max"`` is as fast as the pipeline queue
allows. With ``follow`` the last file is tailed while the logger writes it.

Replay is lossless: the source waits for room in the pipeline queue instead of
dropping (there is no DAQ to protect, and a replay must reproduce offline
numbers exactly).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from cygno_online.sources.base import Pacer, Source, SourceSink

log = logging.getLogger(__name__)


class ReplaySource(Source):
    sampling = "file"

    def __init__(
        self,
        files: list[str | Path],
        *,
        speed: str | float = "max",
        follow: bool = False,
        poll_s: float = 0.2,
        experiment: str | None = None,
        pedestal: bool | None = None,
    ) -> None:
        self.files = [Path(f) for f in files]
        self.speed = speed
        self.follow = follow
        self.poll_s = poll_s
        self.experiment = experiment
        self.pedestal = pedestal
        self.endless = follow
        self.name = "replay"
        self.problems = 0
        self.skipped_bytes = 0
        #: set by the pipeline: lossless hand-over (see module doc)
        self.lossless = True

    def _factor(self) -> float:
        if self.speed == "max":
            return 0.0
        if self.speed == "recorded":
            return 1.0
        return float(self.speed)

    def run(self, sink: SourceSink, stop: threading.Event) -> None:
        from cygno_online.decode.runinfo import RunTracker
        from cygno_online.midas.reader import MidasReader

        pacer = Pacer(self._factor(), stop)
        tracker = RunTracker(pedestal=self.pedestal, experiment=self.experiment)
        for i, path in enumerate(self.files):
            if stop.is_set():
                break
            follow = self.follow and i == len(self.files) - 1
            sink.status("replaying", str(path))
            reader = MidasReader(path, resync=True, follow=follow, stop=stop, poll_s=self.poll_s)
            self._feed(reader, str(path), sink, stop, pacer, tracker)
            self.problems += len(getattr(reader, "problems", ()))
            self.skipped_bytes += int(getattr(reader, "skipped_bytes", 0))
        if not stop.is_set():
            # The files ended without an end-of-run event.
            for _kind, stop_ns, complete in tracker.finish():
                sink.end_run(stop_ns, complete=complete)
        sink.status("finished" if not stop.is_set() else "stopped")

    def _feed(
        self,
        reader: Any,
        source: str,
        sink: SourceSink,
        stop: threading.Event,
        pacer: Pacer,
        tracker: Any,
    ) -> None:
        for event in reader:
            if stop.is_set():
                break
            sink.heartbeat()
            for kind, *args in tracker.transitions(event, source):
                if kind == "begin":
                    sink.begin_run(args[0])
                elif kind == "end":
                    sink.end_run(args[0], complete=args[1])
                else:
                    pacer.wait(float(event.header.time_stamp))
                    sink.event(event, time.time_ns())
