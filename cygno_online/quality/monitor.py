"""Run quality: reference checks live and at end of run, for the daemon and
``cygno-online summary`` alike.

Configuration (``quality`` section of the daemon's YAML)::

    quality:
      enabled: true
      live_every_s: 300          # live checks every 5 min of run (0 = end of run only)
      reference:
        mode: auto               # auto: latest good run with the same run type and exposure
        run: null                # a fixed reference run (mode: run)
        runs: {}                 # per run type, e.g. {"DATA:Fe": 41523, "PED": 41500} (mode: by_type)
      histograms: [...]          # cygno_online.quality.book; default: default.yaml beside this file
      checks: [...]              # cygno_online.quality.checks; default: default.yaml

The reference histograms and values come from the run registry (the
``histograms`` column of the reference run's row). Results go into the summary
(``checks``, ``verdict``, ``reference_run``, ``histograms``), the registry row,
the ``quality`` InfluxDB measurement / ZeroMQ metric family (one point per
check, tag ``check``; ``check=verdict`` for the run) and through that to the
TUI and the alarm rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cygno_online.analysis.outputs import Metric
from cygno_online.decode.items import RunInfo
from cygno_online.params import Params
from cygno_online.quality.book import Histogram, HistogramBook, HistogramSpec, parse_histograms
from cygno_online.quality.checks import STATUSES, CheckSpec, evaluate, parse_checks, worst

log = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).with_name("default.yaml")
MODES = ("auto", "run", "by_type", "none")


@dataclass(slots=True)
class QualityConfig:
    enabled: bool = True
    live_every_s: float = 300.0
    mode: str = "auto"
    reference_run: int | None = None
    reference_runs: dict[str, int] = field(default_factory=dict)
    histograms: list[HistogramSpec] = field(default_factory=list)
    checks: list[CheckSpec] = field(default_factory=list)

    @classmethod
    def from_params(cls, p: Params) -> QualityConfig:
        enabled = p.boolean("enabled", True)
        live = p.number("live_every_s", 300.0, minimum=0)
        ref = p.section("reference")
        mode = ref.choice("mode", "auto", list(MODES))
        run = ref.integer("run", None, minimum=0)
        runs_raw = ref.raw("runs", {}) or {}
        runs: dict[str, int] = {}
        if isinstance(runs_raw, Mapping):
            for k, v in runs_raw.items():
                if isinstance(v, bool) or not isinstance(v, int):
                    ref.error(f"runs.{k}", "must be a run number", value=v)
                else:
                    runs[str(k)] = v
        else:
            ref.error("runs", "must be a mapping run type -> run number", value=runs_raw)
        ref.check_unknown()
        if mode == "run" and run is None:
            ref.error("run", "is required with mode: run")
        if mode == "by_type" and not runs:
            ref.error("runs", "is required with mode: by_type")
        if p.has("histograms") or p.has("checks"):
            src = p
        else:
            # the shipped default set: configuration, in a YAML file
            import yaml

            doc = yaml.safe_load(DEFAULT_FILE.read_text()) or {}
            src = Params(doc, "", p.errors, str(DEFAULT_FILE))
        hists = parse_histograms(src)
        checks = parse_checks(src, {h.name for h in hists})
        if src is not p:
            src.check_unknown()
        return cls(bool(enabled), float(live), str(mode), run, runs, hists, checks)

    @classmethod
    def default(cls) -> QualityConfig:
        from cygno_online.errors import ConfigError  # noqa: F401 - raised by finish()

        p = Params({}, "quality")
        cfg = cls.from_params(p)
        p.finish()
        return cfg


def quality_series() -> Any:
    """The ``quality`` metric family, for the metric catalogue."""
    from cygno_online.analysis.catalogue import FieldSpec, SeriesSpec

    return SeriesSpec(
        "quality",
        (
            FieldSpec("status", "string", "", "good, warning, bad, unknown"),
            FieldSpec("level", "float", "", "0 good, 1 warning, 2 bad, -1 unknown"),
            FieldSpec("reason", "string"),
            FieldSpec("value", "float", "", "p-value (ks, chi2) or the tested value"),
            FieldSpec("reference", "float", "", "the reference run's value (band)"),
            FieldSpec("reference_run", "float"),
        ),
        ("check",),
        "reference checks",
        "per check (tag check; check=verdict for the run), live and at end of run",
    )


class RunQuality:
    """Histograms of the open run, its reference, the checks."""

    def __init__(
        self,
        config: QualityConfig,
        registry: Any = None,
        *,
        clock: Any = time.monotonic,
        record: bool = False,
    ) -> None:
        self.config = config
        self.registry = registry
        #: record each finished run in the registry at once (``summary
        #: --registry``: a later run of the same files may use it as reference)
        self.record = record
        self.clock = clock
        self.book = HistogramBook(config.histograms)
        self.run: RunInfo | None = None
        self.reference: dict[str, Histogram] = {}
        self.reference_run: int | None = None
        self.reference_note = ""
        self.results: list[dict[str, Any]] = []
        self._next_live: float | None = None

    # -- run life cycle -----------------------------------------------------------------
    def begin_run(self, run: RunInfo) -> None:
        self.run = run
        self.book.reset()
        self.results = []
        self._resolve_reference(run)
        every = self.config.live_every_s
        self._next_live = self.clock() + every if every > 0 else None

    def _resolve_reference(self, run: RunInfo) -> None:
        from cygno_online.sinks.registry import RegistryError, run_type

        self.reference, self.reference_run, self.reference_note = {}, None, ""
        cfg = self.config
        if cfg.mode == "none":
            self.reference_note = "no reference configured"
            return
        if self.registry is None:
            self.reference_note = "no run registry"
            return
        kind = run_type({"description": run.description, "pedestal": run.pedestal})
        try:
            if cfg.mode == "run":
                row = self.registry.get(int(cfg.reference_run or 0))
            elif cfg.mode == "by_type":
                n = cfg.reference_runs.get(kind)
                row = self.registry.get(n) if n is not None else None
                if n is None:
                    self.reference_note = f"no reference run configured for run type {kind}"
                    return
            else:
                row = self.registry.latest_good(
                    run_type=kind, exposure_s=run.exposure_s, before_run=run.run
                )
        except RegistryError as exc:
            self.reference_note = f"reference not available: {exc}"
            log.warning("run %s: %s", run.run, self.reference_note)
            return
        if row is None:
            self.reference_note = (
                f"no good {kind} run with exposure {run.exposure_s} s in the registry"
            )
            return
        self.reference_run = int(row["run"])
        for name, doc in (row.get("histograms") or {}).items():
            try:
                self.reference[name] = Histogram.from_dict(doc)
            except (KeyError, TypeError, ValueError):
                continue
        log.info("run %s: reference run %s", run.run, self.reference_run)

    def observe(self, outputs: Iterable[Any]) -> None:
        if self.run is not None and self.config.enabled:
            self.book.observe(outputs)

    def evaluate(self, summary: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        pedestal = bool(self.run.pedestal) if self.run is not None else False
        out = []
        for spec in self.config.checks:
            if spec.skip_pedestal and pedestal:
                continue
            r = evaluate(spec, self.book, self.reference, self.reference_run, summary)
            if r["status"] == "unknown" and self.reference_note and "reference" in r["reason"]:
                r["reason"] += f" ({self.reference_note})"
            out.append(r)
        self.results = out
        return out

    def live(self, time_ns: int | None = None) -> list[Metric]:
        """The checks as metrics when the live period is due, else nothing."""
        if self.run is None or not self.config.enabled or self._next_live is None:
            return []
        now = self.clock()
        if now < self._next_live:
            return []
        self._next_live = now + self.config.live_every_s
        return self.metrics(self.evaluate(), time_ns or time.time_ns())

    # -- daemon restart in mid-run (cygno_online.daemon.checkpoint) ---------------------
    def export_run_state(self) -> dict[str, Any]:
        """The run's histograms, for the daemon's run checkpoint."""
        return {"histograms": dict(self.book.hists)}

    def import_run_state(self, state: Any) -> bool:
        """Take over the histograms of the same run from a checkpoint; refused
        (False, the book stays empty) when the configured histograms changed."""
        hists = state.get("histograms") if isinstance(state, dict) else None
        if not isinstance(hists, dict) or not set(hists) <= {s.name for s in self.book.specs}:
            return False
        for name, h in hists.items():
            mine = self.book.hists.get(name)
            if not isinstance(h, Histogram) or (
                mine is not None
                and (mine.edges.shape != h.edges.shape or not np.array_equal(mine.edges, h.edges))
            ):
                return False
        self.book.hists.update(hists)
        return True

    def finish(self, doc: dict[str, Any]) -> dict[str, Any]:
        """End of run: checks with the summary, into the summary document."""
        from cygno_online.sinks.registry import verdict_of

        if not self.config.enabled or self.run is None:
            return doc
        results = self.evaluate(doc)
        doc["checks"] = results
        doc["reference_run"] = self.reference_run
        doc["histograms"] = self.book.as_dict()
        doc["checks_verdict"] = worst(results)
        doc["verdict"] = verdict_of(doc)
        self.run = None
        if self.record and self.registry is not None:
            self.registry.record(doc)
        return doc

    def metrics(
        self, results: list[dict[str, Any]], time_ns: int, run: int | None = None
    ) -> list[Metric]:
        """One ``quality`` point per check and one for the verdict (``run``:
        default the open run)."""
        if run is None:
            run = self.run.run if self.run is not None else 0
        out = []
        for r in results:
            fields: dict[str, Any] = {
                "status": r["status"],
                "level": float(STATUSES.index(r["status"])) if r["status"] in STATUSES else -1.0,
                "reason": r["reason"],
            }
            v = r.get("value")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                fields["value"] = float(v)
            if isinstance(r.get("reference"), (int, float)):
                fields["reference"] = float(r["reference"])
            if r.get("reference_run") is not None:
                fields["reference_run"] = float(r["reference_run"])
            out.append(Metric("quality", time_ns, run, 0, fields, {"check": r["name"]}))
        verdict = worst(results)
        bad = [r["reason"] for r in results if r["status"] in ("warning", "bad")]
        out.append(
            Metric(
                "quality",
                time_ns,
                run,
                0,
                {
                    "status": verdict,
                    "level": float(STATUSES.index(verdict)),
                    "reason": "; ".join(bad) or "all checks good or without data",
                },
                {"check": "verdict"},
            )
        )
        return out
