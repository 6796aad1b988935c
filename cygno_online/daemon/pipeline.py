"""Source thread -> bounded event queue -> analysis thread -> dispatcher.

* The source thread (which owns the MIDAS client) never blocks on the queue:
  when it is full the OLDEST queued event is dropped ("newest wins": the
  monitor shows the present) and counted as a monitor drop by event id.
  Run transitions are never dropped. A replay source is lossless instead
  (it waits for room: no DAQ to protect, offline numbers must be reproduced).
* One analysis thread drives the :class:`AnalysisChain` (which fans items of
  one event out to its worker pool) and hands outputs to the dispatcher
  (publisher, alarms, sinks), whose methods never block either.
* Configuration changes (SIGHUP) run on the analysis thread between events.
* The open run's state is checkpointed (:mod:`cygno_online.daemon.checkpoint`)
  on the analysis thread between events, periodically and when the daemon
  stops in mid-run, and resumed at the begin of the same run after a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cygno_online.analysis.counters import RunCounters
from cygno_online.decode.items import RunInfo
from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.sources.base import Source

log = logging.getLogger(__name__)
_item_log = RateLimitedLog(log, "pipeline")


@dataclass(slots=True)
class QItem:
    kind: str  # event | bor | eor | call | source_done | stop
    payload: Any = None
    received_ns: int = 0
    extra: Any = None
    #: a small event (its own queue slots: see EventQueue)
    small: bool = False


#: an event of at most this many bytes (slow control, trigger-module
#: rates, DAQ messages) is *small*: it has its own slots, so that a backlog
#: of camera frames never drops one, nor a burst of them a frame
SMALL_EVENT_BYTES = 64 * 1024
#: slots for small events (256 x 64 kB = 16 MB at most)
SMALL_EVENT_SLOTS = 256


def _event_bytes(payload: Any) -> int | None:
    nbytes = getattr(payload, "nbytes", None)
    if callable(nbytes):
        nbytes = nbytes()
    return nbytes if isinstance(nbytes, int) else None


class EventQueue:
    """Bounded queue of events plus unbounded control items, in order.

    Events are bounded in two classes: ``max_events`` for large events
    (camera frames: a LIME trigger event is 10.6 MB) and ``max_small`` for
    events of at most ``small_bytes`` (an event of unknown size counts as
    large). When a class is full its oldest event is dropped. One bound for
    all had let the burst of slow-control events at a run's start (five
    equipment events of < 6 kB beside the first frame) fill the 4 slots
    while the first frame was analysed: the demo dropped 3 of them in
    every run, the first readings of the run."""

    def __init__(
        self,
        max_events: int,
        *,
        max_small: int = SMALL_EVENT_SLOTS,
        small_bytes: int = SMALL_EVENT_BYTES,
    ) -> None:
        self.max_events = max_events
        self.max_small = max_small
        self.small_bytes = small_bytes
        self._items: deque[QItem] = deque()
        self._n_events = 0  # large events queued
        self._n_small = 0
        self._cond = threading.Condition()

    def _is_small(self, item: QItem) -> bool:
        n = _event_bytes(item.payload)
        return n is not None and n <= self.small_bytes

    def put_event(self, item: QItem, *, block: bool = False, stop: threading.Event | None = None):
        """Queue an event; returns the dropped (oldest of its class) event
        item, if any."""
        small = self._is_small(item)
        item.small = small
        limit = self.max_small if small else self.max_events
        with self._cond:

            def count() -> int:
                return self._n_small if small else self._n_events

            if block:
                while count() >= limit and not (stop and stop.is_set()):
                    self._cond.wait(0.2)
            dropped = None
            if count() >= limit:
                for i, old in enumerate(self._items):
                    if old.kind == "event" and old.small == small:
                        dropped = old
                        del self._items[i]
                        self._count(old, -1)
                        break
            self._items.append(item)
            self._count(item, +1)
            self._cond.notify_all()
            return dropped

    def _count(self, item: QItem, d: int) -> None:
        if item.small:
            self._n_small += d
        else:
            self._n_events += d

    def put_control(self, item: QItem) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float) -> QItem | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            if item.kind == "event":
                self._count(item, -1)
            self._cond.notify_all()
            return item

    def depth(self) -> int:
        """Events queued (both classes)."""
        with self._cond:
            return self._n_events + self._n_small


class Dispatcher(Protocol):
    """Where the pipeline's results go (implemented by the daemon)."""

    def run_started(self, run: RunInfo, outputs: list) -> None: ...

    def event_done(self, result: Any, event: Any, run: RunInfo) -> None: ...

    def run_finished(self, run: RunInfo, summary: dict[str, Any]) -> None: ...

    # optional: ``run_outputs(run, outputs)``, the analyzers' outputs at the
    # end of a run (Analyzer.finish_run), just before run_finished

    def periodic(self) -> None: ...

    def source_state(self, state: str, detail: str) -> None: ...

    def source_failed(self, exc: BaseException) -> None: ...

    def shutdown_requested(self) -> None: ...


class Pipeline:
    def __init__(
        self,
        chain: Any,
        source: Source,
        dispatcher: Dispatcher,
        health: Any,
        *,
        queue_events: int = 4,
        summary_dir: Any = None,
        experiment: str | None = None,
        tick_s: float = 0.2,
        summarize: Callable[..., dict[str, Any]] | None = None,
        write_summary: Callable[[dict[str, Any], Any], Any] | None = None,
        summary_config: Any = None,
        stall_s: float = 15.0,
        checkpoint: Any = None,
        checkpoint_every_s: float = 60.0,
        quality: Any = None,
    ) -> None:
        self._log_id = log_key()
        self._source_run: int | None = None
        self.chain = chain
        #: run quality (cygno_online.quality.monitor.RunQuality) or None
        self.quality = quality
        #: watchdog: a thread without a loop iteration for this long is stalled
        self.stall_s = stall_s
        self.source = source
        self.dispatcher = dispatcher
        self.health = health
        self.queue = EventQueue(queue_events)
        self.summary_dir = summary_dir
        self.experiment = experiment
        self.tick_s = tick_s
        #: injectable for tests; default: cygno_online.analysis.summary
        self._summarize = summarize
        self._write_summary = write_summary
        self.summary_config = summary_config
        self.stop_source = threading.Event()
        self.source_done = threading.Event()
        self.analysis_done = threading.Event()
        self._source_thread: threading.Thread | None = None
        self._analysis_thread: threading.Thread | None = None
        self.counters = RunCounters()
        #: the last run summaries (bounded: the daemon runs for months)
        self.summaries: deque[dict[str, Any]] = deque(maxlen=20)
        self._last_time_ns = 0
        self.lossless = bool(getattr(source, "lossless", False))
        #: RunCheckpoint of the open run (None: runs do not survive a restart)
        self.checkpoint = checkpoint
        self.checkpoint_every_s = checkpoint_every_s
        self._next_checkpoint = 0.0
        self._checkpointed_events = -1
        #: first summary part whose events the open run's state includes
        self._covers_from = 1
        #: what was resumed from a checkpoint for the open run (summary)
        self._resumed: dict[str, Any] | None = None
        health.queue_depth = self.queue.depth
        health.sampling = source.sampling

    # -- life cycle --------------------------------------------------------------
    def start(self) -> None:
        self._analysis_thread = threading.Thread(
            target=self._analysis_main, name="analysis", daemon=True
        )
        self._source_thread = threading.Thread(target=self._source_main, name="source", daemon=True)
        watchdog = getattr(self.health, "watchdog", None)
        if watchdog is not None:
            # registered before they start: a thread that ends at once
            # (done or dead) is never mistaken for one not yet running
            for t in (self._analysis_thread, self._source_thread):
                watchdog.register(t.name, stall_s=self.stall_s, thread=t)
        self._analysis_thread.start()
        self._source_thread.start()

    def stop(self, timeout: float = 8.0) -> bool:
        """Stop the source, analyse what is queued, close the open run
        (summary written). Returns True when both threads ended in time."""
        deadline = time.monotonic() + timeout
        self.stop_source.set()
        if self._source_thread is not None:
            self._source_thread.join(max(0.1, deadline - time.monotonic()))
        self.queue.put_control(QItem("stop"))
        if self._analysis_thread is not None:
            self._analysis_thread.join(max(0.1, deadline - time.monotonic()))
        ok = not any(
            t is not None and t.is_alive() for t in (self._source_thread, self._analysis_thread)
        )
        if not ok:
            log.error("pipeline threads did not stop within %.1f s", timeout)
        return ok

    def call(self, fn: Callable[[], Any], timeout: float | None = 30.0) -> Any:
        """Run ``fn`` on the analysis thread between two events; returns its
        result or re-raises its exception."""
        done = threading.Event()
        box: dict[str, Any] = {}
        self.queue.put_control(QItem("call", (fn, box, done)))
        if not done.wait(timeout):
            raise TimeoutError("the analysis thread did not run the call in time")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    @property
    def finished(self) -> bool:
        """The source ended by itself and everything was analysed."""
        return self.analysis_done.is_set()

    # -- SourceSink (source thread) --------------------------------------------------
    def begin_run(self, run: RunInfo) -> None:
        # the run as the source thread knows it (for its log lines; the
        # analysis thread meets the BOR later, behind the queued events)
        self._source_run = run.run
        self.queue.put_control(QItem("bor", run))

    def event(self, event: Any, received_ns: int) -> None:
        self.health.event_in()
        dropped = self.queue.put_event(
            # extra: the run the source was in (for the drop's log line)
            QItem("event", event, received_ns, extra=self._source_run),
            block=self.lossless,
            stop=self.stop_source,
        )
        if dropped is not None:
            eid = getattr(dropped.payload, "event_id", None)
            if eid is None:
                eid = getattr(getattr(dropped.payload, "header", None), "event_id", None)
            self.health.drop("queue_full", eid)
            serial = getattr(getattr(dropped.payload, "header", None), "serial_number", None)
            _item_log.warning(
                "run %s: the monitor dropped event id %s serial %s (%s event queue full: "
                "the analysis is behind)",
                dropped.extra if dropped.extra is not None else "-",
                eid,
                serial,
                "small" if dropped.small else "large",
                key=f"{self._log_id}:drop",
            )
            self.queue.put_control(QItem("dropped", eid))
            if eid is not None:
                # Analyzers that classify serial gaps (DAQ health) must know
                # which missing events were the monitor's own doing.
                for analyzer in getattr(self.chain, "analyzers", ()):
                    note = getattr(analyzer, "note_dropped", None)
                    if note is not None:
                        try:
                            note(int(eid), 1)
                        except Exception:
                            _item_log.error(
                                "%s.note_dropped failed",
                                analyzer,
                                key=f"{self._log_id}:note",
                                exc_info=True,
                            )

    def end_run(self, stop_time_ns: int | None, complete: bool = True) -> None:
        self._source_run = None
        self.queue.put_control(QItem("eor", stop_time_ns, extra=complete))

    def status(self, state: str, detail: str = "") -> None:
        if self.health.set_source_state(state, detail):
            self.dispatcher.source_state(state, detail)

    def heartbeat(self) -> None:
        self.health.beat("source")

    # -- threads -------------------------------------------------------------------
    def _source_main(self) -> None:
        self.health.beat("source")
        try:
            self.source.run(self, self.stop_source)
            self.health.finished("source")
        except SystemExit:
            self.health.finished("source")
            # libmidas answered a shutdown request (signal, odbedit "shutdown").
            log.info("MIDAS requested shutdown")
            self.dispatcher.shutdown_requested()
        except Exception as exc:
            # One line for the operator; the traceback only when debugging.
            log.error("source failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self.dispatcher.source_failed(exc)
        finally:
            self.source_done.set()
            self.queue.put_control(QItem("source_done"))

    def _analysis_main(self) -> None:
        next_tick = 0.0
        try:
            while True:
                self.health.beat("analysis")
                item = self.queue.get(self.tick_s)
                if item is not None:
                    if item.kind == "stop":
                        break
                    if item.kind == "source_done":
                        if not self.source.endless and not self.stop_source.is_set():
                            self._finish_run(None, complete=False)
                            self.analysis_done.set()
                        continue
                    try:
                        self._handle(item)
                    except Exception:
                        # One bad event or hook must not stop the monitor.
                        _item_log.error(
                            "analysis of a %s item failed",
                            item.kind,
                            key=f"{self._log_id}:{item.kind}",
                            exc_info=True,
                        )
                        self.health.drop("analysis_error")
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.tick_s
                    if self.checkpoint is not None and now >= self._next_checkpoint:
                        self._next_checkpoint = now + self.checkpoint_every_s
                        self._save_checkpoint()
                    try:
                        self.dispatcher.periodic()
                    except Exception:
                        _item_log.error(
                            "periodic task failed", key=f"{self._log_id}:periodic", exc_info=True
                        )
            # Drained: events queued before "stop" were processed above. The
            # run goes on without us: its state is kept for the next start.
            self._save_checkpoint()
            self._finish_run(None, complete=False, keep_checkpoint=True)
            self.health.finished("analysis")
        except Exception:
            log.exception("analysis thread failed")
        finally:
            self.analysis_done.set()

    def _handle(self, item: QItem) -> None:
        kind = item.kind
        if kind == "event":
            self._process(item)
        elif kind == "bor":
            if self.chain.run is not None:
                if not self.chain.run.extra.get("synthetic"):
                    log.warning(
                        "begin of run %s before end of run %s",
                        item.payload.run,
                        self.chain.run.run,
                    )
                self._finish_run(None, complete=False)
            self.counters = RunCounters()
            outputs = self.chain.begin_run(item.payload)
            quality_state = self._resume(item.payload)
            if self.quality is not None:
                self.quality.begin_run(item.payload)
                self._resume_quality(item.payload, quality_state)
            self.dispatcher.run_started(item.payload, outputs)
        elif kind == "eor":
            self._finish_run(item.payload, complete=bool(item.extra))
        elif kind == "dropped":
            self.counters.dropped += 1
            if item.payload is not None:
                self.counters.dropped_by_event_id[item.payload] += 1
        elif kind == "call":
            fn, box, done = item.payload
            try:
                box["result"] = fn()
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

    def _process(self, item: QItem) -> None:
        event = item.payload
        if self.chain.run is None:
            # Events outside a run (slow control between runs, leftovers of
            # a stopped run in the MIDAS buffer): analysed under a synthetic
            # run 0 that is "idle", not running, and gets no summary.
            run = RunInfo(
                run=0,
                start_time_ns=int(event.header.time_stamp) * 1_000_000_000,
                experiment=self.experiment or "",
                source=self.source.name,
                extra={"synthetic": True},
            )
            self.counters = RunCounters()
            self.dispatcher.run_started(run, self.chain.begin_run(run))
        run = self.chain.run
        eid = event.header.event_id
        self.counters.events += 1
        self.counters.by_event_id[eid] += 1
        result = self.chain.process_event(
            event, run=run.run, source=self.source.name, received_ns=item.received_ns
        )
        self.counters.processed += 1
        self.counters.decode_errors += len(result.errors)
        self.counters.analyzer_errors += len(result.analyzer_errors)
        self._last_time_ns = max(self._last_time_ns, event.header.time_stamp * 1_000_000_000)
        if self.quality is not None and not run.extra.get("synthetic"):
            self.quality.observe(result.outputs)
        self.dispatcher.event_done(result, event, run)
        latency = (time.time_ns() - item.received_ns) / 1e9 if item.received_ns else None
        self.health.processed(
            result.timings_s,
            decode_errors=len(result.errors),
            analyzer_errors=len(result.analyzer_errors),
            latency_s=latency,
            time_ns=time.time_ns(),
        )

    # -- run checkpoint ----------------------------------------------------------------
    def _next_part(self, run: int) -> int:
        if self.summary_dir is None:
            return 1
        from cygno_online.analysis.summary import next_summary_part

        try:
            return next_summary_part(self.summary_dir, run)[0]
        except OSError:
            return 1

    def _resume(self, run: RunInfo) -> Any:
        """At the begin of a run: take over the state of the same run from a
        checkpoint written by an earlier daemon (restart in mid-run). Returns
        the run quality's part of it (taken over after its begin_run)."""
        from cygno_online.daemon.checkpoint import import_analyzers

        self._resumed = None
        self._covers_from = self._next_part(run.run)
        self._checkpointed_events = -1
        self._next_checkpoint = time.monotonic() + self.checkpoint_every_s
        if self.checkpoint is None or run.extra.get("synthetic"):
            return None
        doc = self.checkpoint.load_for(run)
        if doc is None:
            return None
        counters = doc.get("counters")
        if not isinstance(counters, RunCounters):
            log.error(
                "run %s: ignoring the run checkpoint %s: no run counters; starting fresh",
                run.run,
                self.checkpoint.path,
            )
            self.checkpoint.discard()
            return None
        resumed, fresh = import_analyzers(self.chain.analyzers, doc.get("analyzers") or {}, run)
        self.counters = counters
        self._last_time_ns = max(self._last_time_ns, int(doc.get("last_time_ns") or 0))
        self._covers_from = max(1, min(int(doc.get("covers_from_part") or 1), self._covers_from))
        saved_ns = int(doc.get("saved_ns") or 0)
        self._resumed = {
            "checkpoint_saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(saved_ns / 1e9)),
            "events_before_restart": counters.events,
            "analyzers_resumed": resumed,
            "analyzers_fresh": fresh,
        }
        log.info(
            "run %s: resumed from the checkpoint of %s (%d events before the restart%s)",
            run.run,
            self._resumed["checkpoint_saved"],
            counters.events,
            f"; started fresh: {', '.join(fresh)}" if fresh else "",
        )
        return doc.get("quality")

    def _resume_quality(self, run: RunInfo, state: Any) -> None:
        if state is None or self._resumed is None:
            return
        if self.quality.import_run_state(state):
            self._resumed["quality_resumed"] = True
        else:
            self._resumed["quality_resumed"] = False
            log.warning(
                "run %s: the run-quality histograms of the checkpoint do not match the "
                "configured ones; the checks cover the events since the restart",
                run.run,
            )

    def _save_checkpoint(self) -> None:
        run = self.chain.run
        if self.checkpoint is None or run is None or run.extra.get("synthetic"):
            return
        if self.counters.events == self._checkpointed_events:
            return  # nothing new since the last one
        from cygno_online.daemon.checkpoint import export_analyzers

        payload = {
            "counters": self.counters,
            "last_time_ns": self._last_time_ns,
            "covers_from_part": self._covers_from,
            "analyzers": export_analyzers(self.chain.analyzers, run.run),
        }
        if self.quality is not None:
            payload["quality"] = self.quality.export_run_state()
        if self.checkpoint.save(run, payload):
            self._checkpointed_events = self.counters.events

    def _finish_run(
        self, stop_time_ns: int | None, complete: bool, keep_checkpoint: bool = False
    ) -> None:
        run = self.chain.run
        if run is None:
            return
        # (a chain without the hook - a test double - has nothing pending)
        finish = getattr(self.chain, "finish_run", None)
        tail = finish() if finish is not None else []
        if tail:
            # outputs of work pending at the end (frames waiting for a map)
            if self.quality is not None and not run.extra.get("synthetic"):
                self.quality.observe(tail)
            publish = getattr(self.dispatcher, "run_outputs", None)
            if publish is not None:
                publish(run, tail)
        if run.extra.get("synthetic"):
            self.chain.end_run()
            self.chain.run = None
            return
        if not keep_checkpoint and self.checkpoint is not None:
            # the run is over (or another one began): nothing to resume
            self.checkpoint.discard()
        build_summary, write_summary = self._summarize, self._write_summary
        if build_summary is None or write_summary is None:
            from cygno_online.analysis import summary

            build_summary = build_summary or summary.build_summary
            write_summary = write_summary or summary.write_summary
        sections = self.chain.end_run()
        counters = self.counters.as_dict()
        counters["complete"] = complete
        extra = {"config": self.summary_config} if self.summary_config is not None else {}
        doc = build_summary(
            run,
            sections,
            counters=counters,
            stop_time_ns=stop_time_ns or self._last_time_ns or None,
            **extra,
        )
        if self._resumed is not None:
            doc["resumed"] = self._resumed
        if self.quality is not None:
            try:
                doc = self.quality.finish(doc)
            except Exception:  # a broken check must not lose the summary
                log.exception("run %s: reference checks failed", run.run)
        if self.summary_dir is not None:
            try:
                from cygno_online.analysis.summary import next_summary_part

                # a run already summarised (the daemon restarted during it):
                # this is a further part; earlier parts are kept as written
                part, earlier = next_summary_part(self.summary_dir, run.run)
                if part > 1:
                    from cygno_online.analysis.summary import merge_part_counters

                    doc["part"] = part
                    doc["previous_parts"] = earlier
                    # the run's totals over every part
                    covers = max(1, min(self._covers_from, part))
                    # the analyzer sections and counters of this part include
                    # the parts from `covers` on (all of them when resumed
                    # from a checkpoint after every restart)
                    doc["covers_from_part"] = covers
                    doc["counters_all_parts"] = merge_part_counters(
                        self.summary_dir, earlier, doc.get("counters") or {}, covers_from=covers
                    )
                    log.info(
                        "run %s: part %d (earlier parts: %s)", run.run, part, ", ".join(earlier)
                    )
                path = write_summary(doc, self.summary_dir)
                log.info("run %s: summary written to %s", run.run, path)
            except OSError as exc:
                log.error("run %s: cannot write summary: %s", run.run, exc)
        self.summaries.append(doc)
        self.chain.run = None
        self.dispatcher.run_finished(run, doc)
