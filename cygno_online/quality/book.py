"""The run's data-quality histograms, filled from the analysis outputs.

A histogram is configuration, never code (``quality.histograms``)::

    - name: fe55_spectrum
      display: clusters/cam0/fe55_integral   # a cumulative histogram an analyzer publishes
    - name: cluster_length
      display: clusters/cam0/length_integral # a scatter display: histogram of one axis
      axis: x
      bins: [0, 400, 40]                     # low, high, number of bins
    - name: image_mean
      metric: camera.ped_mean                # FAMILY.FIELD of a Metric, one entry per point
      tags: {camera: cam0}                   # only points with these tags ("*": tag present)
      bins: [-3, 3, 60]

``display`` histograms take the latest counts of a cumulative histogram the
analyzer keeps for the run (so they match the end-of-run section exactly);
``metric`` histograms add one entry per point and also keep the count, sum,
minimum, maximum, first and last time of the raw values (values outside the
bins still count there: a humidity of -3.9 % is seen even with bins 0..100).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.params import Params


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    name: str
    display: str | None = None
    axis: str | None = None
    family: str | None = None
    field: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    bins: tuple[float, float, int] | None = None

    def matches(self, m: Metric) -> bool:
        if m.family != self.family or self.field not in m.fields:
            return False
        for k, v in self.tags:
            have = m.tags.get(k)
            if have is None or (v != "*" and have != v):
                return False
        return True


def parse_histograms(p: Params, key: str = "histograms") -> list[HistogramSpec]:
    entries = p.raw(key, []) or []
    specs: list[HistogramSpec] = []
    if not isinstance(entries, list):
        p.error(key, "must be a list of histograms", value=entries)
        return specs
    names: set[str] = set()
    for i, entry in enumerate(entries):
        h = Params(entry, p.key_path(f"{key}[{i}]"), p.errors, p.source)
        name = h.string("name")
        display = h.string("display", None)
        metric = h.string("metric", None)
        axis = h.choice("axis", None, ["x", "y"])
        tags_raw = h.raw("tags", {}) or {}
        bins_raw = h.raw("bins", None)
        h.check_unknown()
        if name in names:
            h.error("name", "is used by another histogram", value=name)
        names.add(name or "")
        if (display is None) == (metric is None):
            h.error("", "needs exactly one of display (a histogram/scatter display name) or "
                        "metric (FAMILY.FIELD)")  # fmt: skip
            continue
        family = fld = None
        if metric is not None:
            family, _, fld = metric.partition(".")
            if not family or not fld:
                h.error("metric", "must be FAMILY.FIELD, e.g. camera.ped_mean", value=metric)
                continue
        if not isinstance(tags_raw, Mapping):
            h.error("tags", "must be a mapping tag -> value", value=tags_raw)
            tags_raw = {}
        bins = None
        if bins_raw is not None:
            ok = (
                isinstance(bins_raw, list)
                and len(bins_raw) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bins_raw)
                and bins_raw[1] > bins_raw[0]
                and isinstance(bins_raw[2], int)
                and 1 <= bins_raw[2] <= 10_000
            )
            if not ok:
                h.error("bins", "must be [low, high, n] with high > low and 1 <= n <= 10000",
                        value=bins_raw)  # fmt: skip
                continue
            bins = (float(bins_raw[0]), float(bins_raw[1]), int(bins_raw[2]))
        needs_bins = metric is not None or axis is not None
        if needs_bins and bins is None:
            h.error("bins", "is required for metric and scatter-axis histograms")
            continue
        if name is None:
            continue
        tags = tuple(sorted((str(k), str(v)) for k, v in tags_raw.items()))
        specs.append(HistogramSpec(name, display, axis, family, fld, tags, bins))
    return specs


@dataclass(slots=True)
class Histogram:
    """Counts and edges plus running statistics of the raw values."""

    counts: np.ndarray
    edges: np.ndarray
    n: int = 0
    total: float = 0.0
    vmin: float = math.inf
    vmax: float = -math.inf
    first_ns: int | None = None
    last_ns: int | None = None
    underflow: int = 0
    overflow: int = 0
    #: the display's own entry count (display histograms)
    entries: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_entries(self) -> int:
        return int(self.counts.sum())

    def stat(self, name: str) -> float | None:
        """``entries``, ``mean``, ``min``, ``max``, ``peak`` (centre of the fullest
        bin refined by the counts-weighted mean of it and its neighbours),
        ``rms``, ``median`` (interpolated in the bins: robust against the odd
        spark or alpha image), ``rate_hz`` (points per second of event time)."""
        c = self.counts.astype(np.float64)
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        total = c.sum()
        if name == "entries":
            return float(total)
        if name == "min":
            return self.vmin if self.n else None
        if name == "max":
            return self.vmax if self.n else None
        if name == "rate_hz":
            if self.n < 2 or self.first_ns is None or self.last_ns is None:
                return None
            span = (self.last_ns - self.first_ns) / 1e9
            return (self.n - 1) / span if span > 0 else None
        if total <= 0:
            return None
        if name == "mean":
            return self.total / self.n if self.n else float((c * centres).sum() / total)
        if name == "rms":
            mean = float((c * centres).sum() / total)
            return float(math.sqrt(max(0.0, (c * (centres - mean) ** 2).sum() / total)))
        if name == "median":
            cum = np.cumsum(c)
            k = int(np.searchsorted(cum, total / 2.0))
            below = cum[k - 1] if k > 0 else 0.0
            frac = (total / 2.0 - below) / c[k] if c[k] > 0 else 0.5
            return float(self.edges[k] + frac * (self.edges[k + 1] - self.edges[k]))
        if name == "peak":
            k = int(np.argmax(c))
            lo, hi = max(0, k - 1), min(len(c), k + 2)
            w = c[lo:hi]
            return float((w * centres[lo:hi]).sum() / w.sum())
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts.tolist(),
            "edges": self.edges.tolist(),
            "stats": {
                k: self.stat(k)
                for k in ("entries", "mean", "median", "rms", "peak", "min", "max", "rate_hz")
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Histogram:
        """A stored histogram (registry ``histograms`` column) for comparisons."""
        h = cls(np.asarray(doc["counts"], np.float64), np.asarray(doc["edges"], np.float64))
        st = doc.get("stats") or {}
        h.extra["stats"] = dict(st)
        return h

    def stored_stat(self, name: str) -> float | None:
        st = self.extra.get("stats")
        if st is not None and name in st:
            v = st[name]
            return float(v) if isinstance(v, (int, float)) else None
        return self.stat(name)


class HistogramBook:
    """The run's histograms; ``observe`` is called with every output batch."""

    def __init__(self, specs: Iterable[HistogramSpec]) -> None:
        self.specs = list(specs)
        self.by_display: dict[str, list[HistogramSpec]] = {}
        self.by_family: dict[str, list[HistogramSpec]] = {}
        for s in self.specs:
            if s.display:
                self.by_display.setdefault(s.display, []).append(s)
            else:
                self.by_family.setdefault(s.family or "", []).append(s)
        self.hists: dict[str, Histogram] = {}
        self.reset()

    def reset(self) -> None:
        self.hists = {}
        for s in self.specs:
            if s.bins is not None:
                lo, hi, n = s.bins
                self.hists[s.name] = Histogram(np.zeros(n, np.int64), np.linspace(lo, hi, n + 1))

    def observe(self, outputs: Iterable[Any]) -> None:
        for o in outputs:
            if isinstance(o, Metric):
                specs = self.by_family.get(o.family)
                if specs:
                    for s in specs:
                        if s.matches(o):
                            self._fill(s, o.fields[s.field or ""], o.time_ns)
            elif isinstance(o, Display):
                specs = self.by_display.get(o.name)
                if specs:
                    for s in specs:
                        self._display(s, o)

    def _fill(self, s: HistogramSpec, value: Any, t_ns: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        v = float(value)
        if not math.isfinite(v):
            return
        h = self.hists[s.name]
        h.n += 1
        h.total += v
        h.vmin = min(h.vmin, v)
        h.vmax = max(h.vmax, v)
        h.first_ns = t_ns if h.first_ns is None else min(h.first_ns, t_ns)
        h.last_ns = t_ns if h.last_ns is None else max(h.last_ns, t_ns)
        k = int(np.searchsorted(h.edges, v, side="right")) - 1
        if k < 0:
            h.underflow += 1
        elif k >= len(h.counts):
            if v == h.edges[-1]:
                h.counts[-1] += 1
            else:
                h.overflow += 1
        else:
            h.counts[k] += 1

    def _display(self, s: HistogramSpec, d: Display) -> None:
        if s.axis is None:
            counts = d.arrays.get("counts")
            edges = d.arrays.get("edges")
            if counts is None or edges is None or len(edges) != len(counts) + 1:
                return
            self.hists[s.name] = Histogram(
                np.asarray(counts, np.int64).copy(), np.asarray(edges, np.float64).copy()
            )
            return
        values = d.arrays.get(s.axis)
        if values is None or s.bins is None:
            return
        lo, hi, n = s.bins
        edges = np.linspace(lo, hi, n + 1)
        vals = np.asarray(values, np.float64)
        counts = np.histogram(vals[np.isfinite(vals)], edges)[0]
        h = Histogram(counts.astype(np.int64), edges)
        if vals.size:
            h.n, h.total = int(vals.size), float(vals.sum())
            h.vmin, h.vmax = float(vals.min()), float(vals.max())
        self.hists[s.name] = h

    def get(self, name: str) -> Histogram | None:
        h = self.hists.get(name)
        if h is None or (h.n_entries <= 0 and h.n <= 0):
            return None
        return h

    def as_dict(self) -> dict[str, Any]:
        """Every filled histogram, JSON-able (summary and registry)."""
        return {name: h.as_dict() for name, h in self.hists.items() if h.n_entries or h.n}
