"""The interface between a source thread and the pipeline."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from cygno_online.decode.items import RunInfo


class SourceSink(Protocol):
    """What a source calls (always from its own thread). None of these block:
    the pipeline queues or drops, so a source never slows the DAQ."""

    def begin_run(self, run: RunInfo) -> None: ...

    def event(self, event: Any, received_ns: int) -> None: ...

    def end_run(self, stop_time_ns: int | None, complete: bool = True) -> None: ...

    def status(self, state: str, detail: str = "") -> None: ...

    def heartbeat(self) -> None: ...


class Source:
    """Base class. ``run`` blocks until the source is exhausted or ``stop`` is
    set; it must poll ``stop`` at least every ~0.5 s."""

    #: shown in logs and in EventContext.source
    name: str = "source"
    #: how events are sampled: "nonblocking" | "all" | "recent" (MIDAS),
    #: "file" (replay: every event), "simulator"
    sampling: str = "file"
    #: False when the source ends by itself (replay without follow)
    endless: bool = True

    def run(self, sink: SourceSink, stop: threading.Event) -> None:
        raise NotImplementedError

    def send_message(self, text: str, is_error: bool = False) -> None:
        """Forward an operator message (alarms) to the DAQ, where it has one."""

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "name": self.name, "sampling": self.sampling}


class Pacer:
    """Releases events at their recorded pace times ``speed`` (speed 0 = as
    fast as possible). Waits on ``stop`` so shutdown is immediate."""

    #: a jump in recorded time longer than this (gap between runs, clock
    #: step) is not reproduced
    MAX_WAIT_S = 10.0

    def __init__(self, speed: float, stop: threading.Event) -> None:
        self.speed = speed
        self.stop = stop
        self._t0: float | None = None
        self._w0 = 0.0

    def wait(self, event_time_s: float) -> None:
        if self.speed <= 0:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._w0 = event_time_s, now
            return
        target = self._w0 + (event_time_s - self._t0) / self.speed
        delay = target - now
        if delay > self.MAX_WAIT_S or delay < -self.MAX_WAIT_S:
            # rebase instead of stalling or bursting
            self._t0, self._w0 = event_time_s, now
            return
        if delay > 0:
            self.stop.wait(delay)
