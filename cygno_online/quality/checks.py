"""Data-quality checks: configuration in, good / warning / bad with a reason out.

Tests (``test:``)

``ks``, ``chi2``
    this run's histogram against the reference run's (same binning):
    ``warning``/``bad`` are p-value thresholds (p below -> that status).
``band``
    ``value`` (``HIST.STAT``) against the same statistic of the reference run:
    ``warning``/``bad`` are limits on ``|value / reference - 1|``, or with
    ``absolute: true`` on ``|value - reference|`` (for quantities near zero,
    such as a pedestal-subtracted mean).
``limits``
    ``value`` (``HIST.STAT`` or ``summary:PATH``, a dotted path of the run
    summary, end of run only) against absolute limits ``warning_below``,
    ``warning_above``, ``bad_below``, ``bad_above``.
``range``
    physical plausibility of every raw value of a metric histogram: its
    minimum below ``min`` or maximum above ``max`` gives ``status`` (default
    bad), e.g. a humidity of -3.9 %.

A check without data (too few entries, no reference, value absent) is
``unknown`` with the reason, and does not count in the verdict: no data is not
bad data. The verdict of a run is the worst status of its checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cygno_online.params import Params
from cygno_online.quality.book import Histogram, HistogramBook
from cygno_online.quality.stats import chi2_test, ks_test

TESTS = ("ks", "chi2", "band", "limits", "range")
STATUSES = ("good", "warning", "bad")
STATS = ("entries", "mean", "median", "rms", "peak", "min", "max", "rate_hz")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    test: str
    histogram: str | None = None
    value: str | None = None
    warning: float | None = None
    bad: float | None = None
    warning_below: float | None = None
    warning_above: float | None = None
    bad_below: float | None = None
    bad_above: float | None = None
    min: float | None = None
    max: float | None = None
    status: str = "bad"
    min_entries: int = 20
    label: str = ""
    unit: str = ""
    skip_pedestal: bool = False
    absolute: bool = False


def parse_checks(p: Params, book_names: set[str], key: str = "checks") -> list[CheckSpec]:
    entries = p.raw(key, []) or []
    out: list[CheckSpec] = []
    if not isinstance(entries, list):
        p.error(key, "must be a list of checks", value=entries)
        return out
    names: set[str] = set()
    for i, entry in enumerate(entries):
        c = Params(entry, p.key_path(f"{key}[{i}]"), p.errors, p.source)
        name = c.string("name")
        test = c.choice("test", None, list(TESTS))
        if test is None and not c.has("test"):
            c.error("test", "is required", allowed=list(TESTS))
        hist = c.string("histogram", None)
        value = c.string("value", None)
        nums = {k: c.number(k, None) for k in ("warning", "bad", "warning_below", "warning_above",
                                                "bad_below", "bad_above", "min", "max")}  # fmt: skip
        status = c.choice("status", "bad", ["warning", "bad"])
        min_entries = c.integer("min_entries", 20, minimum=0)
        label = c.string("label", "", nonempty=False)
        unit = c.string("unit", "", nonempty=False)
        skip_ped = c.boolean("skip_pedestal", False)
        absolute = c.boolean("absolute", False)
        c.check_unknown()
        if name in names:
            c.error("name", "is used by another check", value=name)
        names.add(name or "")
        if name is None or test is None:
            continue
        if test in ("ks", "chi2", "range"):
            if hist is None:
                c.error("histogram", f"is required for test {test}")
                continue
            if hist not in book_names:
                c.error("histogram", "names no configured histogram", value=hist,
                        allowed=sorted(book_names))  # fmt: skip
                continue
        if test in ("ks", "chi2", "band") and nums["warning"] is None and nums["bad"] is None:
            c.error("", f"test {test} needs warning and/or bad")
            continue
        if test in ("band", "limits"):
            if value is None:
                c.error("value", f"is required for test {test} (HIST.STAT or summary:PATH)")
                continue
            if not value.startswith("summary:"):
                h, _, st = value.rpartition(".")
                if h not in book_names or st not in STATS:
                    c.error("value", f"must be HIST.STAT (STAT one of {', '.join(STATS)}) of a "
                                     "configured histogram, or summary:PATH", value=value)  # fmt: skip
                    continue
            elif test == "band":
                c.error("value", "band compares with the reference run: use HIST.STAT", value=value)
                continue
        if test == "limits" and all(nums[k] is None for k in ("warning_below", "warning_above",
                                                                "bad_below", "bad_above")):  # fmt: skip
            c.error("", "limits needs warning_below/above and/or bad_below/above")
            continue
        if test == "range" and nums["min"] is None and nums["max"] is None:
            c.error("", "range needs min and/or max")
            continue
        out.append(
            CheckSpec(
                name, test, hist, value, nums["warning"], nums["bad"], nums["warning_below"],
                nums["warning_above"], nums["bad_below"], nums["bad_above"], nums["min"],
                nums["max"], status, int(min_entries), label, unit, skip_ped, absolute,
            )
        )  # fmt: skip
    return out


def _lookup(doc: Mapping[str, Any] | None, path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _g(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:.4g}{(' ' + unit) if unit else ''}"


def evaluate(
    spec: CheckSpec,
    book: HistogramBook,
    reference: Mapping[str, Histogram] | None,
    reference_run: int | None,
    summary: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One check's result: name, test, status, reason, value(s)."""
    res: dict[str, Any] = {"name": spec.name, "test": spec.test, "status": "unknown",
                           "reason": "", "value": None, "reference": None,
                           "reference_run": reference_run}  # fmt: skip
    what = spec.label or spec.name

    def unknown(reason: str) -> dict[str, Any]:
        res["reason"] = f"{what}: {reason}"
        return res

    def done(status: str, reason: str) -> dict[str, Any]:
        res["status"] = status
        res["reason"] = f"{what}: {reason}"
        return res

    if spec.test in ("ks", "chi2"):
        h = book.get(spec.histogram or "")
        if h is None or h.n_entries < spec.min_entries:
            n = 0 if h is None else h.n_entries
            return unknown(f"{n} entries, fewer than {spec.min_entries}")
        ref = (reference or {}).get(spec.histogram or "")
        if ref is None:
            return unknown("no reference histogram")
        if ref.counts.shape != h.counts.shape:
            return unknown(f"reference run {reference_run} has another binning")
        if ref.counts.sum() < spec.min_entries:
            return unknown(f"reference run {reference_run} has too few entries")
        if spec.test == "ks":
            d, p = ks_test(h.counts, ref.counts)
            res["statistic"], res["value"] = d, p
            text = f"KS distance {d:.3f}, p = {p:.2g} against run {reference_run}"
        else:
            chi2, ndf, p = chi2_test(h.counts, ref.counts)
            res["statistic"], res["ndf"], res["value"] = chi2, ndf, p
            text = f"chi2/ndf = {chi2:.1f}/{ndf}, p = {p:.2g} against run {reference_run}"
        if spec.bad is not None and p < spec.bad:
            return done("bad", f"{text} (bad below {spec.bad:g})")
        if spec.warning is not None and p < spec.warning:
            return done("warning", f"{text} (warning below {spec.warning:g})")
        return done("good", text)

    if spec.test == "range":
        h = book.get(spec.histogram or "")
        if h is None or h.n == 0:
            return unknown("no readings")
        res["value"] = [h.vmin, h.vmax]
        if spec.min is not None and h.vmin < spec.min:
            return done(spec.status, f"reading {_g(h.vmin, spec.unit)} below the physical "
                                     f"limit {_g(spec.min, spec.unit)}")  # fmt: skip
        if spec.max is not None and h.vmax > spec.max:
            return done(spec.status, f"reading {_g(h.vmax, spec.unit)} above the physical "
                                     f"limit {_g(spec.max, spec.unit)}")  # fmt: skip
        return done("good", f"readings {_g(h.vmin)}..{_g(h.vmax, spec.unit)} within limits")

    # band / limits: one value
    value, hist_name, stat = _value(spec, book, summary)
    if value is None:
        return unknown("no value yet" if summary is None else "no value")
    res["value"] = value
    if spec.test == "band":
        ref = (reference or {}).get(hist_name or "")
        ref_value = ref.stored_stat(stat) if ref is not None else None
        if ref_value is None or (ref_value == 0 and not spec.absolute):
            return unknown(f"{_g(value, spec.unit)}, no reference value")
        res["reference"] = ref_value
        if spec.absolute:
            dev = abs(value - ref_value)
            off = f"{_g(value - ref_value, spec.unit)} off"

            def lim(x: float) -> str:
                return _g(x, spec.unit)
        else:
            dev = abs(value / ref_value - 1.0)
            off = f"{value / ref_value - 1.0:+.1%} off"

            def lim(x: float) -> str:
                return f"{x:.0%}"

        text = (f"{_g(value, spec.unit)} vs {_g(ref_value, spec.unit)} in run {reference_run} "
                f"({off})")  # fmt: skip
        if spec.bad is not None and dev > spec.bad:
            return done("bad", f"{text}, bad above {lim(spec.bad)}")
        if spec.warning is not None and dev > spec.warning:
            return done("warning", f"{text}, warning above {lim(spec.warning)}")
        return done("good", text)
    for level, below, above in (("bad", spec.bad_below, spec.bad_above),
                                ("warning", spec.warning_below, spec.warning_above)):  # fmt: skip
        if below is not None and value < below:
            return done(level, f"{_g(value, spec.unit)} below {_g(below, spec.unit)}")
        if above is not None and value > above:
            return done(level, f"{_g(value, spec.unit)} above {_g(above, spec.unit)}")
    return done("good", f"{_g(value, spec.unit)} within limits")


def _value(
    spec: CheckSpec, book: HistogramBook, summary: Mapping[str, Any] | None
) -> tuple[float | None, str | None, str]:
    v = spec.value or ""
    if v.startswith("summary:"):
        if summary is None:
            return None, None, ""
        got = _lookup(summary, v[len("summary:") :])
        return (float(got) if _is_number(got) else None), None, ""
    hist_name, _, stat = v.rpartition(".")
    h = book.get(hist_name)
    if h is None or (h.n_entries < spec.min_entries and stat not in ("min", "max", "rate_hz")):
        return None, hist_name, stat
    return h.stat(stat), hist_name, stat


def worst(results: list[dict[str, Any]]) -> str:
    level = 0
    for r in results:
        if r.get("status") in STATUSES:
            level = max(level, STATUSES.index(r["status"]))
    return STATUSES[level]
