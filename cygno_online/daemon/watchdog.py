"""The progress watchdog: every component of the daemon reports that it is
making progress; one that dies or stalls is logged, turned into a metric the
alarm engine watches, and stops the systemd watchdog from being fed (so
systemd restarts the service).

A *component* is anything with a loop: a thread (source, analysis, publisher,
the InfluxDB sender) or a process supervised by a thread (the MIDAS reader
process). It registers once and then calls :meth:`Component.beat` at least
every ``stall_s`` seconds while it is healthy, including when it is idle
(every loop of the daemon wakes at least twice a second). Its state is:

``ok``       beat within ``stall_s``
``stalled``  no beat for longer than ``stall_s`` (stuck in a call, a deadlock)
``dead``     its thread ended, or its ``alive()`` probe said False, without the
             component having said :meth:`Component.done` first
``done``     it ended on purpose (a replay source reached the end of its files,
             the daemon is stopping): never a failure

Registering (issue 10's reader-process supervisor, for example)::

    comp = daemon.watchdog.register("reader", stall_s=10, alive=proc.is_alive)
    ...  # in the supervisor loop, whenever the reader reported progress:
    comp.beat()
    ...  # on a clean stop:
    comp.done()

:meth:`Watchdog.check` is called by the daemon's main thread; it logs each
transition once (``error`` when a component fails, ``info`` when it recovers)
and :meth:`Watchdog.fields` gives the numbers published in the ``monitor``
metric: ``watchdog_failed`` (how many components are stalled or dead, the
field the alarm rule watches) and ``watchdog_age_s_<name>`` (seconds since
each component's last beat).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("cygno_online.watchdog")

OK, STALLED, DEAD, DONE = "ok", "stalled", "dead", "done"


@dataclass
class Component:
    name: str
    stall_s: float
    thread: threading.Thread | None = None
    alive: Callable[[], bool] | None = None
    last_beat: float = 0.0
    beats: int = 0
    finished: bool = False
    state: str = OK
    #: what the component said about its progress last (free text, optional)
    detail: str = ""
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def beat(self, detail: str | None = None) -> None:
        """Progress (or a healthy idle loop). Cheap: two attribute writes."""
        self.last_beat = self._clock()
        self.beats += 1
        if detail is not None:
            self.detail = detail

    def done(self) -> None:
        """The component ended on purpose; it is no longer watched."""
        self.finished = True

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.last_beat)

    def evaluate(self, now: float) -> str:
        if self.finished:
            return DONE
        if self.thread is not None and not self.thread.is_alive():
            return DEAD
        if self.alive is not None:
            try:
                if not self.alive():
                    return DEAD
            except Exception:
                return DEAD
        if now - self.last_beat > self.stall_s:
            return STALLED
        return OK


class Watchdog:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Component, str], None] | None = None,
    ) -> None:
        self.clock = clock
        #: called from :meth:`check` on every state change (component, old state)
        self.on_change = on_change
        self._components: dict[str, Component] = {}
        self._lock = threading.Lock()
        #: failures seen since start (stalls and deaths), for the summary
        self.failures = 0

    def register(
        self,
        name: str,
        *,
        stall_s: float,
        thread: threading.Thread | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> Component:
        """Watch ``name`` (replacing an earlier component of that name). The
        registration counts as a first beat."""
        comp = Component(name, float(stall_s), thread, alive, _clock=self.clock)
        comp.beat()
        with self._lock:
            self._components[name] = comp
        return comp

    def component(self, name: str) -> Component | None:
        with self._lock:
            return self._components.get(name)

    def beat(self, name: str) -> None:
        comp = self.component(name)
        if comp is not None:
            comp.beat()

    def done(self, name: str) -> None:
        comp = self.component(name)
        if comp is not None:
            comp.done()

    def done_all(self) -> None:
        """The daemon is stopping: threads ending now are not failures."""
        with self._lock:
            for comp in self._components.values():
                comp.finished = True

    def check(self) -> list[Component]:
        """Re-evaluate every component; log and report transitions once.
        Returns the failed (stalled or dead) components."""
        now = self.clock()
        with self._lock:
            comps = list(self._components.values())
        failed = []
        for comp in comps:
            new = comp.evaluate(now)
            old = comp.state
            if new != old:
                comp.state = new
                if new in (STALLED, DEAD):
                    self.failures += 1
                    log.error(
                        "watchdog: %s %s (last progress %.1f s ago%s); "
                        "the systemd watchdog is no longer fed",
                        comp.name,
                        "died" if new == DEAD else "stalled",
                        comp.age_s(now),
                        f", {comp.detail}" if comp.detail else "",
                    )
                elif old in (STALLED, DEAD) and new == OK:
                    log.info("watchdog: %s progressing again", comp.name)
                if self.on_change is not None:
                    try:
                        self.on_change(comp, old)
                    except Exception:
                        log.exception("watchdog: on_change callback failed")
            if new in (STALLED, DEAD):
                failed.append(comp)
        return failed

    def healthy(self) -> bool:
        """No component stalled or dead (as of the last :meth:`check`)."""
        with self._lock:
            return all(c.state in (OK, DONE) for c in self._components.values())

    def report(self) -> dict[str, Any]:
        """For the health message: state and age of every component."""
        now = self.clock()
        with self._lock:
            comps = list(self._components.values())
        return {
            "failed": sum(1 for c in comps if c.state in (STALLED, DEAD)),
            "failures_total": self.failures,
            "components": {
                c.name: {"state": c.state, "age_s": round(c.age_s(now), 3), "beats": c.beats}
                for c in comps
            },
        }

    def fields(self) -> dict[str, Any]:
        """``monitor`` metric fields (see :func:`watchdog_fields`)."""
        return watchdog_fields(self.report())


def watchdog_fields(report: dict[str, Any]) -> dict[str, Any]:
    """The ``monitor`` metric fields of a :meth:`Watchdog.report`:
    ``watchdog_failed`` (components stalled or dead now),
    ``watchdog_failures_total``, ``watchdog_failed_names`` ("name:state,...")
    and ``watchdog_age_s_<name>`` per component."""
    out: dict[str, Any] = {
        "watchdog_failed": int(report.get("failed", 0)),
        "watchdog_failures_total": int(report.get("failures_total", 0)),
    }
    failed_names = []
    for name, c in sorted((report.get("components") or {}).items()):
        out[f"watchdog_age_s_{name}"] = float(c.get("age_s", 0.0))
        if c.get("state") in (STALLED, DEAD):
            failed_names.append(f"{name}:{c['state']}")
    out["watchdog_failed_names"] = ",".join(failed_names)
    return out
