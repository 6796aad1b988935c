"""The end-of-run summary document: assembly, quality flags, JSON file, text.

One JSON-able document per run, built by the daemon at end of run and by
``cygno-online summary`` from files, from the same inputs: the run info, the
sections every analyzer returned from ``end_run`` (keyed by instance name) and
the host's event counters.

The document keeps every analyzer section verbatim under ``sections`` and
adds normalised blocks the shifter and the quality rules read (``daq``,
``camera``, ``pmt``, ``environment``, ``hv``). Sections are recognised by their
shape, so renamed analyzer instances still work, and every block is empty
when its analyzer did not run.

Quality flags come from a declarative rule list (:data:`DEFAULT_RULES`,
replaceable or extendable from configuration via :class:`SummaryConfig`): a
rule reads one dotted path of the document (``*`` matches every key at that
level) and flags when the value is above/below a limit, equals a value, or -
with ``relative_to`` - deviates from a reference by more than a fraction.
A rule whose value is absent does not apply: no data is not bad data.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cygno_online.decode.items import RunInfo
from cygno_online.params import Params

SCHEMA = "cygno-online/run-summary/1"
SEVERITIES = ("info", "warning", "error")
_UNSET: Any = object()


# -- quality rules --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QualityRule:
    """Flag ``flag`` when the value at ``path`` is ``> above``, ``< below``,
    ``== equals``; with ``relative_to`` (a number or a document path) the value
    tested is ``|value / reference - 1|``."""

    flag: str
    path: str
    above: float | None = None
    below: float | None = None
    equals: Any = _UNSET
    relative_to: float | str | None = None
    reason: str = ""
    severity: str = "warning"
    #: not evaluated for pedestal runs (HV off: no sparks, no PMT signals)
    skip_pedestal: bool = False


DEFAULT_RULES: tuple[QualityRule, ...] = (
    QualityRule("no_events", "counters.events_seen", below=1, severity="error",
                reason="no events were seen in the run"),
    QualityRule("incomplete_run", "counters.complete", equals=False, severity="info",
                reason="the run ended without an end-of-run record"),
    QualityRule("high_drop_fraction", "counters.drop_fraction", above=0.2,
                reason="the monitor dropped {value:.1%} of the events (limit {limit:.0%})"),
    QualityRule("daq_lost_events", "daq.daq_lost", above=0,
                reason="{value:.0f} events missing from the DAQ stream (serial gaps)"),
    QualityRule("decode_errors", "counters.decode_errors", above=0,
                reason="{value:.0f} banks could not be decoded"),
    QualityRule("analyzer_errors", "counters.analyzer_errors", above=0,
                reason="analyzers failed {value:.0f} times"),
    QualityRule("no_camera_images", "camera.images", below=1, severity="error",
                reason="no camera image was analysed"),
    QualityRule("spark_rate_high", "cameras.*.spark_fraction", above=0.05, skip_pedestal=True,
                reason="{where}: {value:.1%} of the images had a spark (limit {limit:.0%})"),
    QualityRule("no_pedestal", "cameras.*.pedestal_source", equals="none", skip_pedestal=True,
                reason="{where}: no pedestal maps, clustering was off"),
    QualityRule("pedestal_too_old", "cameras.*.pedestal_age_days", above=10,
                skip_pedestal=True,
                reason="{where}: pedestal maps are {value:.1f} days old (limit {limit:g})"),
    QualityRule("fe55_peak_shifted", "cameras.*.fe55_peak",
                relative_to="references.fe55_peak", above=0.1, skip_pedestal=True,
                reason="{where}: 55Fe peak moved by {value:.1%} from the reference "
                       "(limit {limit:.0%})"),
    QualityRule("pmt_baseline_drift", "pmt.*.baseline_drift_max_adc", above=20,
                reason="PMT {where} baseline drifted by {value:.1f} ADC (limit {limit:g})"),
    QualityRule("pmt_saturation", "pmt.*.saturated_fraction", above=0.05, skip_pedestal=True,
                reason="PMT {where} saturated in {value:.1%} of the triggers"),
    QualityRule("pmt_no_signal", "pmt.*.silent_fraction", above=0.999, skip_pedestal=True,
                reason="PMT {where} saw no pulse in the whole run"),
    QualityRule("gas_alarm", "gas.alarms_active_max", above=0, severity="error",
                reason="the gas system raised up to {value:.0f} alarm flags"),
    QualityRule("env_out_of_band", "environment.gas_temperature.mean", below=15, above=35,
                reason="gas temperature {value:.1f} degC outside {below:g}..{above:g}"),
    QualityRule("env_out_of_band", "environment.lime_pressure.mean", below=0.8, above=1.2,
                reason="LIME pressure {value:.3f} bar outside {below:g}..{above:g}"),
    QualityRule("env_out_of_band", "environment.cam*_sensor_temperature.mean", below=-25,
                above=-10, reason="{where} {value:.1f} degC outside {below:g}..{above:g}"),
)  # fmt: skip


@dataclass(slots=True)
class SummaryConfig:
    """Rules and references, e.g. from a ``summary:`` configuration section::

    summary:
      default_rules: true          # keep DEFAULT_RULES (extra rules are added)
      references: {fe55_peak: 1850.0}
      quality_rules:
        - {flag: hv_low, path: hv.drift.measured_mean, below: 4000, severity: error}
    """

    rules: tuple[QualityRule, ...] = DEFAULT_RULES
    references: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: Params) -> SummaryConfig:
        use_defaults = p.boolean("default_rules", True)
        refs_raw = p.raw("references", {}) or {}
        refs: dict[str, float] = {}
        if isinstance(refs_raw, Mapping):
            for k, v in refs_raw.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    p.error(f"references.{k}", "must be a number", value=v)
                else:
                    refs[str(k)] = float(v)
        else:
            p.error("references", "must be a mapping name -> number", value=refs_raw)
        extra = parse_quality_rules(p, "quality_rules")
        rules = (DEFAULT_RULES if use_defaults else ()) + tuple(extra)
        return cls(rules, refs)


def parse_quality_rules(p: Params, key: str = "quality_rules") -> list[QualityRule]:
    """Validate a list of rule mappings (errors collected in ``p``)."""
    entries = p.raw(key, []) or []
    rules: list[QualityRule] = []
    if not isinstance(entries, list):
        p.error(key, "must be a list of rules", value=entries)
        return rules
    for i, entry in enumerate(entries):
        r = Params(entry, p.key_path(f"{key}[{i}]"), p.errors, p.source)
        flag = r.string("flag")
        path = r.string("path")
        above = r.number("above", None)
        below = r.number("below", None)
        equals = r.raw("equals", _UNSET) if r.has("equals") else _UNSET
        rel = r.raw("relative_to", None)
        if rel is not None and (isinstance(rel, bool) or not isinstance(rel, (int, float, str))):
            r.error("relative_to", "must be a number or a document path", value=rel)
            rel = None
        severity = r.choice("severity", "warning", SEVERITIES)
        reason = r.string("reason", "", nonempty=False)
        skip = r.boolean("skip_pedestal", False)
        r.check_unknown()
        if above is None and below is None and equals is _UNSET:
            r.error("", "needs at least one of above, below, equals")
            continue
        if flag is None or path is None:
            continue
        rules.append(QualityRule(flag, path, above, below, equals, rel, reason, severity, skip))
    return rules


def _walk(doc: Any, parts: list[str], where: list[str]) -> Iterable[tuple[str, Any]]:
    if not parts:
        yield "/".join(where), doc
        return
    if not isinstance(doc, Mapping):
        return
    head, rest = parts[0], parts[1:]
    if "*" in head:
        prefix, _, suffix = head.partition("*")
        for k in sorted(doc, key=str):
            ks = str(k)
            if ks.startswith(prefix) and ks.endswith(suffix) and len(ks) >= len(head) - 1:
                yield from _walk(doc[k], rest, [*where, ks])
    elif head in doc:
        yield from _walk(doc[head], rest, where)


def lookup(doc: Mapping[str, Any], path: str) -> list[tuple[str, Any]]:
    """``(where, value)`` for every match of a dotted path; ``where`` joins
    the keys the wildcards matched."""
    return list(_walk(doc, path.split("."), []))


def evaluate_rules(doc: Mapping[str, Any], rules: Iterable[QualityRule]) -> list[dict[str, Any]]:
    flags: list[dict[str, Any]] = []
    pedestal = bool(doc.get("pedestal"))
    for rule in rules:
        if rule.skip_pedestal and pedestal:
            continue
        ref = rule.relative_to
        if isinstance(ref, str):
            found = [v for _, v in lookup(doc, ref)]
            ref = found[0] if found else None
            if not _is_number(ref):
                continue
        for where, value in lookup(doc, rule.path):
            if value is None:
                continue
            tested = value
            if ref is not None:
                if not _is_number(value) or ref == 0:
                    continue
                tested = abs(value / ref - 1.0)
            hit = None
            if (
                rule.equals is not _UNSET
                and value == rule.equals
                and type(value) is type(rule.equals)
            ):
                hit = rule.equals
            elif _is_number(tested):
                if rule.above is not None and tested > rule.above:
                    hit = rule.above
                elif rule.below is not None and tested < rule.below:
                    hit = rule.below
            if hit is None:
                continue
            ctx = {
                "value": tested,
                "limit": hit,
                "above": rule.above if rule.above is not None else math.nan,
                "below": rule.below if rule.below is not None else math.nan,
                "where": where or rule.path,
                "path": rule.path,
            }
            try:
                reason = (rule.reason or "{path} = {value}").format(**ctx)
            except (ValueError, TypeError, KeyError, IndexError):
                reason = f"{rule.path} = {tested!r}"
            flags.append(
                {
                    "flag": rule.flag,
                    "reason": reason,
                    "severity": rule.severity,
                    "path": rule.path if not where else f"{rule.path} [{where}]",
                    "value": tested,
                    "limit": hit,
                }
            )
    return flags


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# -- normalised blocks ------------------------------------------------------------------
def _find(sections: Mapping[str, Any], name: str, shape: tuple[str, ...]) -> Mapping | None:
    sec = sections.get(name)
    if isinstance(sec, Mapping) and "error" not in sec:
        return sec
    for sec in sections.values():
        if isinstance(sec, Mapping) and all(k in sec for k in shape):
            return sec
    return None


def _get(d: Any, *paths: str) -> Any:
    """First present, non-None value among dotted ``paths``."""
    for p in paths:
        cur = d
        for part in p.split("."):
            if not isinstance(cur, Mapping) or part not in cur:
                cur = None
                break
            cur = cur[part]
        if cur is not None:
            return cur
    return None


def _daq_block(sec: Mapping | None) -> dict[str, Any]:
    if not sec:
        return {}
    totals = sec.get("totals", {}) or {}
    cam = sec.get("camera", {}) or {}
    trig = (sec.get("events", {}) or {}).get("1", {}) or {}
    return {
        "sampling": sec.get("sampling"),
        "events_seen": totals.get("seen"),
        "bytes": totals.get("bytes"),
        "missing": totals.get("missing"),
        "sampled_out": totals.get("sampled_out"),
        "daq_lost": totals.get("daq_lost"),
        "monitor_dropped": totals.get("monitor_dropped"),
        "decode_errors": totals.get("decode_errors"),
        "decode_errors_by_kind": sec.get("decode_errors_by_kind", {}),
        "trigger_rate_hz": trig.get("daq_rate_hz"),
        "trigger_events_seen_rate_hz": trig.get("rate_hz"),
        "frame_period_s": cam.get("frame_period_s"),
        "exposure_s": cam.get("exposure_s"),
        "frame_overhead_s": cam.get("frame_overhead_s"),
        "lag_mean_s": _get(sec, "lag_s.mean"),
        "lag_max_s": _get(sec, "lag_s.max"),
    }


def _one_camera(sec: Mapping, duration_s: float | None) -> dict[str, Any]:
    """One camera's block from the camera analyzer's per-camera section
    (with a few aliases for flat or older layouts)."""
    images = _get(sec, "frames", "images", "n_images")
    sparks = _get(sec, "sparks.count", "sparks", "n_sparks")
    if isinstance(sparks, Mapping):
        sparks = None
    spark_fraction = _get(sec, "sparks.fraction", "spark_fraction")
    if spark_fraction is None and _is_number(sparks) and _is_number(images) and images > 0:
        spark_fraction = sparks / images
    clusters = _get(sec, "clusters.total", "clusters_total", "n_clusters", "clusters")
    if isinstance(clusters, Mapping):
        clusters = None
    rates = _get(sec, "clusters.rate_hz", "cluster_rate_hz")
    if isinstance(rates, Mapping):
        rate = sum(v for v in rates.values() if _is_number(v))
    else:
        rate = rates
        live = _get(sec, "live_time_s") or duration_s
        if rate is None and _is_number(clusters) and live:
            rate = clusters / live
    by_class = _get(sec, "clusters.by_class", "clusters_by_class")
    boxes = []
    for b in sec.get("boxes") or ():
        if isinstance(b, Mapping):
            boxes.append(
                {
                    "mean": _get(b, "ped_mean", "raw_mean", "mean"),
                    "rms": _get(b, "ped_rms", "raw_rms", "rms"),
                }
            )
    fit = _get(sec, "fe55.fit")
    fe55_ok = isinstance(fit, Mapping) and fit.get("ok")
    return {
        "images": images,
        "sparks": sparks,
        "spark_fraction": spark_fraction,
        "clusters": clusters,
        "cluster_rate_hz": rate,
        "clusters_by_class": dict(by_class) if isinstance(by_class, Mapping) else None,
        "cluster_rates_hz_by_class": dict(rates) if isinstance(rates, Mapping) else None,
        "alpha_rate_hz": _get(sec, "alpha_rate_hz"),
        "muon_rate_hz": _get(sec, "muon_rate_hz"),
        "pedestal_source": _get(sec, "pedestal.source"),
        "pedestal_age_days": _get(sec, "pedestal.age_days", "pedestal_age_days"),
        "fe55_peak": fit.get("mean") if fe55_ok else _get(sec, "fe55_peak", "fe55.peak"),
        "fe55_width": fit.get("sigma") if fe55_ok else _get(sec, "fe55_width", "fe55.sigma"),
        "fe55_resolution": fit.get("resolution") if fe55_ok else None,
        "fe55_entries": _get(sec, "fe55.entries"),
        "image_mean": _get(sec, "image.ped_mean", "image.raw_mean", "image_mean"),
        "image_rms": _get(sec, "image.ped_rms", "image.raw_rms", "image_rms"),
        "boxes": boxes or None,
    }


def _camera_blocks(
    sec: Mapping | None, duration_s: float | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(all cameras together, {camera: block})."""
    if not sec:
        return {}, {}
    per = sec.get("cameras")
    if isinstance(per, Mapping):
        cams = {
            str(k): _one_camera(v, duration_s)
            for k, v in sorted(per.items())
            if isinstance(v, Mapping)
        }
    else:
        cams = {"cam0": _one_camera(sec, duration_s)}
    if not cams:
        return {"images": 0}, {}

    def total(key: str) -> Any:
        vals = [c[key] for c in cams.values() if _is_number(c.get(key))]
        return sum(vals) if vals else None

    images = total("images")
    sparks = total("sparks")
    by_class: dict[str, int] = {}
    for c in cams.values():
        for k, v in (c.get("clusters_by_class") or {}).items():
            if _is_number(v):
                by_class[k] = by_class.get(k, 0) + v
    ages = [c["pedestal_age_days"] for c in cams.values() if _is_number(c["pedestal_age_days"])]
    first = next(iter(cams.values()))
    combined = {
        "cameras": len(cams),
        "images": images,
        "sparks": sparks,
        "spark_fraction": sparks / images if _is_number(sparks) and images else None,
        "clusters": total("clusters"),
        "cluster_rate_hz": total("cluster_rate_hz"),
        "clusters_by_class": by_class or None,
        "pedestal_age_days": max(ages) if ages else None,
        "fe55_peak": first.get("fe55_peak") if len(cams) == 1 else None,
        "fe55_width": first.get("fe55_width") if len(cams) == 1 else None,
    }
    return combined, cams


def _pmt_block(sec: Mapping | None) -> tuple[dict[str, Any], int | None]:
    if not sec:
        return {}, None
    out: dict[str, Any] = {}
    for b, board in sorted((sec.get("boards") or {}).items()):
        images = board.get("images") or 0
        for ch, c in sorted((board.get("channels") or {}).items(), key=lambda kv: int(kv[0])):
            n = c.get("triggers") or 0
            out[f"{b}/{ch}"] = {
                "label": c.get("label"),
                "triggers": n,
                "baseline_adc": c.get("baseline_mean_adc"),
                "rms_adc": c.get("rms_mean_adc"),
                "amplitude_adc": c.get("amplitude_mean_adc"),
                "charge_pc": c.get("charge_mean_pc"),
                "baseline_drift_max_adc": c.get("baseline_drift_max_adc"),
                "saturated_fraction": (c.get("saturated_triggers") or 0) / n if n else None,
                "silent_fraction": (c.get("silent_images") or 0) / images if images else None,
            }
    return out, sec.get("triggers_total")


def _gas_block(sec: Mapping | None) -> dict[str, Any]:
    st = _get(sec or {}, "gas_alarms.alarms_active")
    if not isinstance(st, Mapping):
        return {}
    return {"alarms_active_max": st.get("max"), "alarms_active_last": st.get("last")}


def _slow_blocks(sec: Mapping | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if not sec:
        return {}, {}
    env: dict[str, Any] = {}
    for name, st in sorted((sec.get("environment") or {}).items()):
        env[name] = {k: st.get(k) for k in ("mean", "min", "max", "unit")}
    for cam, fields in sorted((sec.get("camera") or {}).items()):
        st = fields.get("sensor_temperature")
        if st:
            env[f"{cam}_sensor_temperature"] = {
                k: st.get(k) for k in ("mean", "min", "max", "unit")
            }
    hv: dict[str, Any] = {}
    for ch, fields in sorted((sec.get("hv") or {}).items()):
        entry: dict[str, Any] = {}
        for q in ("demand", "measured", "current"):
            st = fields.get(q)
            if st:
                entry[f"{q}_mean"] = st.get("mean")
                entry[f"{q}_max"] = st.get("max")
                entry[f"{q}_unit"] = st.get("unit")
        hv[ch] = entry
    return env, hv


def _iso(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN/inf -> None,
    keys -> str, tuples -> lists."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return jsonable(tolist())
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# -- the document ------------------------------------------------------------------------
def build_summary(
    run: RunInfo,
    sections: dict[str, dict],
    *,
    counters: dict | None = None,
    stop_time_ns: int | None = None,
    config: SummaryConfig | None = None,
) -> dict:
    """The run summary document (see README "End-of-run summary")."""
    config = config or SummaryConfig()
    sections = dict(sections or {})
    counters = dict(counters or {})
    seen = counters.get("events_seen")
    dropped = counters.get("events_dropped") or 0
    if _is_number(seen):
        total = seen + dropped
        counters["drop_fraction"] = dropped / total if total else 0.0
    duration = (
        (stop_time_ns - run.start_time_ns) / 1e9
        if stop_time_ns and run.start_time_ns and stop_time_ns >= run.start_time_ns
        else None
    )
    daq = _find(sections, "daqhealth", ("sampling", "events", "totals"))
    pmt = _find(sections, "pmt", ("boards", "triggers_total"))
    slow = _find(sections, "slowcontrol", ("skipped_non_finite",))
    cam = sections.get("camera")
    if not isinstance(cam, Mapping) or "error" in cam:
        cam = next(
            (
                s
                for k, s in sections.items()
                if "camera" in k and isinstance(s, Mapping) and "error" not in s
            ),
            None,
        )
    if duration is None and daq and _is_number(daq.get("run_duration_s")):
        duration = daq["run_duration_s"] or None
    pmt_block, pmt_triggers = _pmt_block(pmt)
    camera_all, cameras = _camera_blocks(cam, duration)
    env, hv = _slow_blocks(slow)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run": run.run,
        "experiment": run.experiment,
        "description": run.description,
        "pedestal": bool(run.pedestal),
        "exposure_s": run.exposure_s,
        "source": run.source,
        "start_time_ns": run.start_time_ns,
        "stop_time_ns": stop_time_ns,
        "start_time": _iso(run.start_time_ns),
        "stop_time": _iso(stop_time_ns),
        "duration_s": duration,
        "counters": counters,
        "daq": _daq_block(daq),
        "camera": camera_all,
        "cameras": cameras,
        "pmt_triggers": pmt_triggers,
        "pmt": pmt_block,
        "environment": env,
        "hv": hv,
        "gas": _gas_block(slow),
        "references": dict(config.references),
        "sections": sections,
        "generated_ns": time.time_ns(),
    }
    doc = jsonable(doc)
    doc["quality_flags"] = jsonable(evaluate_rules(doc, config.rules))
    doc["quality"] = "flagged" if doc["quality_flags"] else "good"
    return doc


def summary_path(directory: str | Path, run: int, part: int = 1) -> Path:
    """``run00042-summary.json``; a run analysed in several parts (the daemon
    restarted during it) has ``run00042-part2-summary.json`` and so on."""
    name = f"run{int(run):05d}" + (f"-part{int(part)}" if int(part) > 1 else "")
    return Path(directory) / f"{name}-summary.json"


def merge_part_counters(
    directory: str | Path, earlier: list[str], counters: dict, covers_from: int | None = None
) -> dict:
    """The run's counters over every part: ``counters`` (this part's, which
    cover the parts from ``covers_from`` on: a part resumed from a checkpoint
    already includes the parts before the restart) plus the run totals of the
    part just before ``covers_from`` (its ``counters_all_parts``, or its
    ``counters`` for a first part). ``earlier`` lists the earlier parts' file
    names in ``directory``, part 1 first. An unreadable part is left out and
    named in ``unreadable_parts``."""
    total: dict[str, Any] = {}
    unreadable: list[str] = []
    n = len(earlier) + 1
    start = n if covers_from is None else max(1, min(int(covers_from), n))

    def add(src: dict) -> None:
        for key, value in src.items():
            if isinstance(value, bool) or key in ("complete", "parts", "unreadable_parts"):
                continue
            if isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                sub = total.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        sub[k] = sub.get(k, 0) + v

    if start > 1:
        name = earlier[start - 2]
        try:
            doc = json.loads((Path(directory) / name).read_text(encoding="utf-8"))
            add(doc.get("counters_all_parts") or doc.get("counters") or {})
            unreadable.extend(doc.get("counters_all_parts", {}).get("unreadable_parts", []))
        except (OSError, ValueError, AttributeError):
            unreadable.append(name)
    add(counters)
    total["parts"] = n
    if unreadable:
        total["unreadable_parts"] = unreadable
    return total


def next_summary_part(directory: str | Path, run: int) -> tuple[int, list[str]]:
    """The first part number without a summary file, and the existing parts'
    file names: a summary is never overwritten."""
    part, existing = 1, []
    while (path := summary_path(directory, run, part)).exists():
        existing.append(path.name)
        part += 1
    return part, existing


def write_summary(doc: dict, directory: str | Path) -> Path:
    """Write ``run<NNNNN>-summary.json`` atomically (temp file in the same
    directory, fsync, rename): a reader never sees half a document."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = summary_path(directory, doc.get("run") or 0, doc.get("part") or 1)
    text = json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return target
    try:
        # the rename itself must survive a crash too
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


# -- text -------------------------------------------------------------------------------------
def _f(v: Any, fmt: str = "{:.3g}", missing: str = "-") -> str:
    if v is None:
        return missing
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return fmt.format(v)


def summary_to_text(doc: dict) -> str:
    """A shifter-readable rendering of a summary document."""
    lines: list[str] = []
    kind = "pedestal" if doc.get("pedestal") else "data"
    complete = (doc.get("counters") or {}).get("complete")
    state = "" if complete is None else (" [complete]" if complete else " [incomplete]")
    lines.append(
        f"Run {doc.get('run')} ({doc.get('experiment') or '-'}, {kind}){state}"
        f"  {doc.get('description') or ''}".rstrip()
    )
    lines.append(
        f"  time: {doc.get('start_time') or '-'} -> {doc.get('stop_time') or '-'}"
        f"  ({_f(doc.get('duration_s'), '{:.1f}')} s), exposure {_f(doc.get('exposure_s'))} s"
    )
    c = doc.get("counters") or {}
    lines.append(
        f"  events: seen {_f(c.get('events_seen'), '{}')}, processed "
        f"{_f(c.get('events_processed'), '{}')}, dropped {_f(c.get('events_dropped'), '{}')}"
        f" ({_f(c.get('drop_fraction'), '{:.1%}')}), decode errors "
        f"{_f(c.get('decode_errors'), '{}')}, analyzer errors {_f(c.get('analyzer_errors'), '{}')}"
    )
    d = doc.get("daq") or {}
    if d:
        lines.append(
            f"  DAQ: sampling {d.get('sampling')}, trigger rate "
            f"{_f(d.get('trigger_rate_hz'))} Hz, frame period {_f(d.get('frame_period_s'))} s"
            f" (exposure {_f(d.get('exposure_s'))} s), missing {_f(d.get('missing'), '{}')}"
            f" = sampled out {_f(d.get('sampled_out'), '{}')} + DAQ lost "
            f"{_f(d.get('daq_lost'), '{}')} + dropped by monitor "
            f"{_f(d.get('monitor_dropped'), '{}')}, lag {_f(d.get('lag_mean_s'))} s"
        )
    cam = doc.get("camera") or {}
    if cam:
        line = (
            f"  camera: images {_f(cam.get('images'), '{}')}, sparks {_f(cam.get('sparks'), '{}')}"
            f" ({_f(cam.get('spark_fraction'), '{:.1%}')}), clusters "
            f"{_f(cam.get('clusters'), '{}')} ({_f(cam.get('cluster_rate_hz'))} Hz)"
        )
        lines.append(line)
        by_class = cam.get("clusters_by_class") or {}
        if by_class:
            parts = ", ".join(f"{k} {_f(v, '{}')}" for k, v in by_class.items())
            lines.append(f"    clusters by class: {parts}")
        for name, cb in (doc.get("cameras") or {}).items():
            lines.append(
                f"    {name}: images {_f(cb.get('images'), '{}')}, sparks "
                f"{_f(cb.get('sparks'), '{}')}, clusters {_f(cb.get('clusters'), '{}')}, "
                f"55Fe peak {_f(cb.get('fe55_peak'))} sigma {_f(cb.get('fe55_width'))}"
                f" ({_f(cb.get('fe55_entries'), '{}')} entries), pedestal "
                f"{cb.get('pedestal_source') or '-'} age {_f(cb.get('pedestal_age_days'), '{:.1f}')} d"
            )
    pmt = doc.get("pmt") or {}
    if pmt:
        lines.append(f"  PMT: {_f(doc.get('pmt_triggers'), '{}')} triggers")
        for key, p in pmt.items():
            board, ch = key.split("/", 1)
            lines.append(
                f"    board {board} ch{ch} {p.get('label') or '':<5} baseline "
                f"{_f(p.get('baseline_adc'), '{:.1f}')} ADC, rms {_f(p.get('rms_adc'), '{:.2f}')}"
                f", amplitude {_f(p.get('amplitude_adc'), '{:.1f}')}, charge "
                f"{_f(p.get('charge_pc'), '{:.3g}')} pC, drift max "
                f"{_f(p.get('baseline_drift_max_adc'), '{:.1f}')}"
            )
    env = doc.get("environment") or {}
    if env:
        lines.append("  environment:")
        for name, st in env.items():
            lines.append(
                f"    {name:<32} {_f(st.get('mean'), '{:.4g}')} {st.get('unit') or ''}"
                f"  [{_f(st.get('min'), '{:.4g}')} .. {_f(st.get('max'), '{:.4g}')}]"
            )
    hv = doc.get("hv") or {}
    if hv:
        lines.append("  HV:")
        for ch, st in hv.items():
            lines.append(
                f"    {ch:<20} measured {_f(st.get('measured_mean'), '{:.1f}')} "
                f"{st.get('measured_unit') or ''}, current {_f(st.get('current_mean'), '{:.3g}')}"
                f" {st.get('current_unit') or ''}"
            )
    flags = doc.get("quality_flags") or []
    if flags:
        lines.append(f"  quality: FLAGGED ({len(flags)})")
        for fl in flags:
            lines.append(f"    [{fl.get('severity')}] {fl.get('flag')}: {fl.get('reason')}")
    else:
        lines.append("  quality: good")
    checks = doc.get("checks")
    if checks is not None:
        ref = doc.get("reference_run")
        counts: dict[str, int] = {}
        for c in checks:
            counts[c.get("status")] = counts.get(c.get("status"), 0) + 1
        tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines.append(
            f"  reference checks ({'reference run ' + str(ref) if ref is not None else 'no reference run'}"
            f"): {tally or 'none'}"
        )
        for c in checks:
            if c.get("status") in ("warning", "bad"):
                lines.append(f"    [{c.get('status')}] {c.get('name')}: {c.get('reason')}")
    if doc.get("verdict"):
        lines.append(f"  verdict: {doc['verdict']}")
    return "\n".join(lines) + "\n"
