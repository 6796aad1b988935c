"""Run the analysis chain over MIDAS files, synchronously.

This is what ``cygno-online summary`` does, and it gives the same numbers the
daemon computes live for the same events: the daemon and this runner share the
:class:`~cygno_online.analysis.chain.AnalysisChain` and the summary builder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cygno_online.analysis.chain import AnalysisChain
from cygno_online.analysis.counters import RunCounters
from cygno_online.analysis.outputs import Output
from cygno_online.decode.items import RunInfo
from cygno_online.decode.runinfo import RunTracker

log = logging.getLogger(__name__)


class OfflineRunner:
    """Feeds events of MIDAS files through a chain; one summary per run."""

    def __init__(
        self,
        chain: AnalysisChain,
        *,
        on_outputs: Callable[[list[Output]], None] | None = None,
        pedestal: bool | None = None,
        experiment: str | None = None,
        quality: Any = None,
        summary_config: Any = None,
    ) -> None:
        self.chain = chain
        #: run quality (cygno_online.quality.monitor.RunQuality), as in the daemon
        self.quality = quality
        self.summary_config = summary_config
        self.on_outputs = on_outputs
        self.pedestal = pedestal
        self.experiment = experiment
        self.summaries: list[dict[str, Any]] = []
        self.tracker = RunTracker(pedestal=pedestal, experiment=experiment)
        self.counters = RunCounters()
        self._last_time_ns = 0
        self._reader: Any = None
        self._problems_before = 0
        self._skipped_before = 0
        #: per file read by :meth:`run_files`: events, problems (file, offset,
        #: what was lost), or ``error`` when it could not be opened
        self.file_reports: list[dict[str, Any]] = []

    def _emit(self, outputs: list[Output]) -> None:
        if self.quality is not None and outputs:
            self.quality.observe(outputs)
        if self.on_outputs and outputs:
            self.on_outputs(outputs)

    def _begin(self, run: RunInfo) -> None:
        self.counters = RunCounters()
        if self._reader is not None:
            self._problems_before = len(self._reader.problems)
            self._skipped_before = self._reader.skipped_bytes
        if self.quality is not None:
            self.quality.begin_run(run)
        self._emit(self.chain.begin_run(run))

    def _finish(self, stop_time_ns: int | None, complete: bool) -> None:
        from cygno_online.analysis.summary import build_summary

        run = self.chain.run
        if run is None:
            return
        finish = getattr(self.chain, "finish_run", None)
        if finish is not None:
            self._emit(finish())
        sections = self.chain.end_run()
        reader = self._reader
        if reader is not None:
            self.counters.format_problems = len(reader.problems) - self._problems_before
            self.counters.skipped_bytes = reader.skipped_bytes - self._skipped_before
        counters = self.counters.as_dict()
        counters["complete"] = complete
        doc = build_summary(
            run,
            sections,
            counters=counters,
            stop_time_ns=stop_time_ns or self._last_time_ns or None,
            config=self.summary_config,
        )
        if self.quality is not None:
            doc = self.quality.finish(doc)
        self.summaries.append(doc)
        self.chain.run = None

    def feed(self, events: Iterable[Any], source: str) -> None:
        for event in events:
            for kind, *args in self.tracker.transitions(event, source):
                if kind == "begin":
                    self._begin(args[0])
                elif kind == "end":
                    self._finish(args[0], complete=args[1])
                else:
                    self._process(event, source)

    def _process(self, event: Any, source: str) -> None:
        self.counters.events += 1
        self.counters.by_event_id[event.event_id] += 1
        result = self.chain.process_event(
            event, run=self.chain.run.run, source=source, received_ns=time.time_ns()
        )
        self.counters.processed += 1
        self.counters.decode_errors += len(result.errors)
        self.counters.analyzer_errors += len(result.analyzer_errors)
        self._last_time_ns = max(self._last_time_ns, event.header.time_stamp * 1_000_000_000)
        self._emit(result.outputs)

    def run_files(self, paths: Iterable[str | Path]) -> list[dict[str, Any]]:
        from cygno_online.errors import MidasFormatError
        from cygno_online.midas.reader import MidasReader

        for path in paths:
            try:
                reader = MidasReader(path, resync=True)
            except OSError as exc:
                # one unreadable file never hides the others
                self.file_reports.append(
                    {"file": str(path), "error": exc.strerror or str(exc), "problems": []}
                )
                continue
            # Problems are attributed to the run that was open when they occurred.
            self._reader, self._problems_before, self._skipped_before = reader, 0, 0
            fatal = None
            try:
                self.feed(reader, str(path))
            except MidasFormatError as exc:  # unsupported variant (big-endian)
                fatal = str(exc)
            self.file_reports.append(
                {
                    "file": str(path),
                    "events": reader.events_read,
                    "problems_total": reader.problems_total + (1 if fatal else 0),
                    "problems": [str(p) for p in reader.problems] + ([fatal] if fatal else []),
                    "skipped_bytes": reader.skipped_bytes,
                    "truncated": reader.truncated,
                }
            )
        # Files that ended without an end-of-run event (logger still writing,
        # or the run crashed): the summary says so.
        for _kind, stop_ns, complete in self.tracker.finish():
            self._finish(stop_ns, complete)
        return self.summaries
