"""The analysis chain: one MIDAS event in, decoded items through the configured
analyzers, outputs out.

Used unchanged by the daemon (live, replay, simulator) and by the offline
``cygno-online summary``. It owns no threads of its own except a small pool for
analysing items of one event concurrently (several cameras of a CYGNO-04
event): numba kernels release the GIL, so cameras really run in parallel.

Configuration (top-level keys of the daemon's YAML file)::

    plugin_paths: [/opt/cygno/plugins]   # extra plugin folders (optional)
    decode: {...}                        # bank map, see cygno_online.decode.bankmap
    analyzers:
      - plugin: camera                   # plugin name (required)
        name: camera                     # instance name (default: plugin name)
        enabled: true                    # default true
        params: {nsigma: 1.3}            # the plugin's own parameters

A failure inside one analyzer is logged with run, serial and analyzer name,
counted, and never stops the chain or the other analyzers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cygno_online.analysis.outputs import Metric, Output
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, discover
from cygno_online.decode.items import RunInfo
from cygno_online.errors import ConfigError, DecodeError
from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.params import Params, raise_if_errors

log = logging.getLogger(__name__)
_failures_log = RateLimitedLog(log, "analyzer-failures")
_decode_log = RateLimitedLog(log, "decode-errors")


@dataclass(slots=True)
class ChainResult:
    outputs: list[Output]
    #: decode errors of this event (one per bad bank)
    errors: list[DecodeError]
    #: seconds spent per analyzer instance (and "decode") on this event
    timings_s: dict[str, float]
    #: analyzer failures as (instance name, message)
    analyzer_errors: list[tuple[str, str]] = field(default_factory=list)
    #: number of decoded items (EventSeen included)
    n_items: int = 0


@dataclass(slots=True)
class AnalyzerSpec:
    """One entry of the ``analyzers`` list, validated."""

    plugin: str
    name: str
    params: dict[str, Any]
    #: position in the configuration list (for key paths in errors)
    index: int = 0


def parse_analyzer_specs(params: Params, classes: dict[str, type[Analyzer]]) -> list[AnalyzerSpec]:
    """Validate the ``analyzers`` list (structure and plugin names; each
    plugin validates its own ``params``)."""
    entries = params.raw("analyzers", [])
    specs: list[AnalyzerSpec] = []
    if not isinstance(entries, list):
        params.error(
            "analyzers", "must be a list of {plugin, name, enabled, params}", value=entries
        )
        return specs
    names: set[str] = set()
    for i, entry in enumerate(entries):
        p = Params(entry, params.key_path(f"analyzers[{i}]"), params.errors, params.source)
        plugin = p.choice("plugin", None, sorted(classes))
        if plugin is None and "plugin" not in (entry or {}):
            p.error("plugin", "is required", allowed=sorted(classes))
        name = p.string("name", plugin or f"analyzer{i}")
        enabled = p.boolean("enabled", True)
        plugin_params = p.raw("params", {}) or {}
        if not isinstance(plugin_params, dict):
            p.error("params", "must be a mapping", value=plugin_params)
            plugin_params = {}
        p.check_unknown()
        if name in names:
            p.error(
                "name", "is used by another analyzer; give each instance a unique name", value=name
            )
        names.add(name)
        if plugin and enabled:
            specs.append(AnalyzerSpec(plugin, name, plugin_params, i))
    return specs


def build_analyzers(
    specs: list[AnalyzerSpec], classes: dict[str, type[Analyzer]], env: AnalyzerEnv, params: Params
) -> list[Analyzer]:
    analyzers = []
    for spec in specs:
        analyzer = classes[spec.plugin]()
        analyzer.instance_name = spec.name
        sub = Params(
            spec.params,
            params.key_path(f"analyzers[{spec.index}].params"),
            params.errors,
            params.source,
        )
        analyzer.configure(sub, env)
        sub.check_unknown()
        analyzers.append(analyzer)
    return analyzers


def _stamp_points(outputs: list[Output], ctx: Any) -> None:
    """Give this event's metrics their point time (unique per event, the same
    on every replay: decode.timebase.point_time_ns). Only metrics stamped with
    this very event's time and serial are moved; an analyzer that emits a
    point for another time (a run total, a rate window) keeps its own."""
    t, serial, point = ctx.time_ns, ctx.serial, ctx.point_ns
    for out in outputs:
        if isinstance(out, Metric) and out.time_ns == t and out.serial == serial:
            out.time_ns = point


class AnalysisChain:
    """Decoder + ordered analyzers. Not thread-safe: one caller thread drives it
    (the pipeline's analysis thread); it fans out internally."""

    def __init__(self, decoder: Any, analyzers: list[Analyzer], *, workers: int = 1) -> None:
        self.decoder = decoder
        self.analyzers = analyzers
        self._log_id = log_key()
        self.workers = max(1, int(workers))
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="analyzer")
            if self.workers > 1
            else None
        )
        self.run: RunInfo | None = None
        #: failures per analyzer instance
        self.analyzer_failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._route_cache: dict[type, list[Analyzer]] = {}

    # -- construction --------------------------------------------------------
    @classmethod
    def from_params(
        cls,
        params: Params,
        env: AnalyzerEnv | None = None,
        *,
        workers: int = 1,
        classes: dict[str, type[Analyzer]] | None = None,
        decoder: Any = None,
    ) -> AnalysisChain:
        """Build from a whole configuration tree (reads ``plugin_paths``,
        ``decode`` and ``analyzers``); raises ConfigError(s) naming key paths."""
        env = env or AnalyzerEnv()
        paths = params.list_of("plugin_paths", [], str)
        if classes is None:
            try:
                classes = discover(paths)
            except ConfigError as exc:
                params.errors.append(exc)
                classes = {}
        if decoder is None:
            from cygno_online.decode.bankmap import EventDecoder

            has_map = params.has("decode")
            decoder = (
                EventDecoder.from_params(params.section("decode"))
                if has_map
                else EventDecoder.lime()
            )
        else:
            params.raw("decode")
        # Every analyzer validates its parameters even when another entry is
        # already wrong: the operator sees all problems in one pass.
        specs = parse_analyzer_specs(params, classes)
        analyzers = build_analyzers(specs, classes, env, params)
        raise_if_errors(params.errors)
        chain = cls(decoder, analyzers, workers=workers)
        chain._classes = classes
        chain._env = env
        return chain

    def reconfigure(self, params: Params) -> None:
        """Apply new analyzer parameters (SIGHUP). Everything is validated on
        fresh instances first; on any error nothing changes. Analyzers whose
        plugin and name are unchanged keep their run state and only get
        ``configure`` again; new ones start with the current run."""
        classes = getattr(self, "_classes", None) or discover(
            params.list_of("plugin_paths", [], str)
        )
        env = getattr(self, "_env", AnalyzerEnv())
        specs = parse_analyzer_specs(params, classes)
        fresh = build_analyzers(specs, classes, env, params)  # validation pass
        raise_if_errors(params.errors)
        current = {(a.name, a.instance_name): a for a in self.analyzers}
        new_list: list[Analyzer] = []
        for spec, candidate in zip(specs, fresh, strict=True):
            kept = current.get((spec.plugin, spec.name))
            if kept is not None:
                sub = Params(
                    spec.params,
                    params.key_path(f"analyzers[{spec.index}].params"),
                    [],
                    params.source,
                )
                kept.configure(sub, env)
                new_list.append(kept)
            else:
                if self.run is not None:
                    candidate.begin_run(self.run)
                new_list.append(candidate)
        self.analyzers = new_list
        self._route_cache.clear()

    def warm_up(self) -> float:
        """Compile every analyzer's kernels; returns seconds spent."""
        t0 = time.perf_counter()
        for a in self.analyzers:
            a.warm_up()
        return time.perf_counter() - t0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- run life cycle --------------------------------------------------------
    def _run_hook_outputs(
        self, run: RunInfo, hook: Callable[[Analyzer], Iterable[Output] | None]
    ) -> list[Output]:
        """The outputs of one run hook of every analyzer; a plugin that fails
        is counted and logged, and must neither stop the run nor lose the
        other analyzers' outputs."""
        outputs: list[Output] = []
        for a in self.analyzers:
            try:
                outputs.extend(hook(a) or ())
            except Exception as exc:
                self._failed(a, exc, run.run, None)
        return outputs

    def begin_run(self, run: RunInfo) -> list[Output]:
        self.run = run
        self.decoder.begin_run(run)
        return self._run_hook_outputs(run, lambda a: a.begin_run(run))

    def finish_run(self) -> list[Output]:
        """The analyzers' outputs of work still pending at the end of the run
        (``Analyzer.finish_run``): the host publishes them, then calls
        :meth:`end_run`."""
        run = self.run
        if run is None:
            return []
        return self._run_hook_outputs(run, lambda a: a.finish_run(run))

    def end_run(self) -> dict[str, Any]:
        """Sections of the end-of-run summary, by analyzer instance name."""
        run = self.run
        sections: dict[str, Any] = {}
        if run is None:
            return sections
        for a in self.analyzers:
            try:
                sections[a.instance_name] = a.end_run(run)
            except Exception as exc:
                self._failed(a, exc, run.run, None)
                sections[a.instance_name] = {"error": f"{type(exc).__name__}: {exc}"}
        return sections

    # -- per event -----------------------------------------------------------
    def _route(self, item_type: type) -> list[Analyzer]:
        route = self._route_cache.get(item_type)
        if route is None:
            route = [a for a in self.analyzers if any(issubclass(item_type, t) for t in a.consumes)]
            self._route_cache[item_type] = route
        return route

    def _failed(
        self, analyzer: Analyzer, exc: BaseException, run: int | None, serial: int | None
    ) -> str:
        with self._lock:
            self.analyzer_failures[analyzer.instance_name] += 1
        msg = f"{type(exc).__name__}: {exc}"
        # an analyzer failing on every event: the first in full, then counts
        _failures_log.error(
            "run %s serial %s: analyzer %s failed: %s",
            run,
            serial,
            analyzer.instance_name,
            msg,
            key=f"{self._log_id}:{analyzer.instance_name}",
        )
        return msg

    def _process_group(
        self, items: list[Any]
    ) -> tuple[list[Output], dict[str, float], list[tuple[str, str]]]:
        outputs: list[Output] = []
        timings: dict[str, float] = defaultdict(float)
        failures: list[tuple[str, str]] = []
        for item in items:
            flow: dict[str, Any] = {}
            ctx = getattr(item, "ctx", None)
            for a in self._route(type(item)):
                t0 = time.perf_counter()
                try:
                    produced = list(a.process(item, flow) or ())
                    if ctx is not None and ctx.point_ns:
                        _stamp_points(produced, ctx)
                    outputs.extend(produced)
                except Exception as exc:
                    failures.append(
                        (
                            a.instance_name,
                            self._failed(
                                a, exc, getattr(ctx, "run", None), getattr(ctx, "serial", None)
                            ),
                        )
                    )
                timings[a.instance_name] += time.perf_counter() - t0
        return outputs, timings, failures

    def process_items(self, items: Iterable[Any]) -> ChainResult:
        """Run already-decoded items of one event through the analyzers."""
        groups: dict[str, list[Any]] = defaultdict(list)
        n = 0
        for item in items:
            groups[getattr(item, "key", "")].append(item)
            n += 1
        parts = list(groups.values())
        if self._pool is not None and len(parts) > 1:
            results = list(self._pool.map(self._process_group, parts))
        else:
            results = [self._process_group(p) for p in parts]
        outputs: list[Output] = []
        timings: dict[str, float] = defaultdict(float)
        failures: list[tuple[str, str]] = []
        for outs, t, f in results:
            outputs.extend(outs)
            for k, v in t.items():
                timings[k] += v
            failures.extend(f)
        return ChainResult(outputs, [], dict(timings), failures, n)

    def process_event(
        self, event: Any, *, run: int, source: str = "", received_ns: int = 0
    ) -> ChainResult:
        t0 = time.perf_counter()
        decoded = self.decoder.decode(event, run=run, source=source, received_ns=received_ns)
        t_decode = time.perf_counter() - t0
        for err in decoded.errors:
            _decode_log.warning(
                "%s",
                err,
                key=f"{self._log_id}:{getattr(err, 'kind', 'error')}:{getattr(err, 'bank', '')}",
            )
        result = self.process_items(decoded.items)
        result.errors = list(decoded.errors)
        result.timings_s["decode"] = t_decode
        return result
