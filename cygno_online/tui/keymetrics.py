"""The one place that knows analyzer field names.

Everything else in the TUI renders families generically. When an analyzer
renames a field, change it here: each key metric lists candidate field names
and the first one present wins.

Also here: staleness rules and small formatting helpers shared by panels.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cygno_online.publish.state import MonitorState, SeriesRecord


@dataclass(frozen=True, slots=True)
class KeyMetric:
    label: str
    family: str
    fields: tuple[str, ...]
    #: tag names a series must have (e.g. ``board``) and must not have
    require_tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    fmt: str = "{:.3g}"


#: Overview rows (value + sparkline), in display order.
KEY_METRICS: tuple[KeyMetric, ...] = (
    KeyMetric("Trigger rate", "daq", ("rate_hz", "rate", "trigger_rate_hz")),
    KeyMetric("Analysed rate", "monitor", ("rate_processed_hz",)),
    KeyMetric("Image mean", "camera", ("mean", "image_mean"), fmt="{:.2f}"),
    KeyMetric("Image RMS", "camera", ("rms", "image_rms"), fmt="{:.2f}"),
    KeyMetric("Clusters/image", "camera", ("nclusters", "n_clusters", "clusters")),
    KeyMetric("Pixels over thr.", "camera", ("n_over_threshold", "npix_over_threshold")),
    KeyMetric("Sparks", "camera", ("spark", "sparks", "spark_flag")),
    KeyMetric("55Fe peak", "clusters", ("fe_mu", "peak_mu", "fit_mu", "mu")),
    KeyMetric("PMT multiplicity", "pmt", ("multiplicity",), ("board",), ("channel",)),
    KeyMetric("Camera temp.", "camera", ("temperature", "sensor_temperature", "tcam")),
)

#: families shown in the slow-control table (all numeric fields)
SLOW_FAMILIES = ("environment", "hv", "gas")
#: other families contribute only fields matching this (camera temperature...)
SLOW_EXTRA_FIELD = re.compile(r"temp", re.IGNORECASE)
SLOW_EXTRA_FAMILIES = ("camera", "daq")

#: staleness: a value older than STALE_PERIODS usual periods is stale; with
#: no known period (fewer than 3 points) after STALE_DEFAULT_S; never before
#: STALE_MIN_S (a 2 Hz metric is not stale after one late frame).
STALE_PERIODS = 3.0
STALE_DEFAULT_S = 60.0
STALE_MIN_S = 10.0

#: pedestal boxes: fields ``box3_mean`` / ``mean_box3`` / ``box_3_rms``...
_BOX_FIELD = re.compile(r"^(?:box_?(\d+)_?(mean|rms)|(mean|rms)_?box_?(\d+))$")


# -- series lookup -------------------------------------------------------------------
def key_rows(
    state: MonitorState, km: KeyMetric, limit: int = 4
) -> list[tuple[str, SeriesRecord, str]]:
    """(series id, record, field) for the series that carry ``km`` (caller
    holds ``state.lock``)."""
    out = []
    for sid in sorted(state.series):
        rec = state.series[sid]
        if rec.family != km.family:
            continue
        if any(t not in rec.tags for t in km.require_tags):
            continue
        if any(t in rec.tags for t in km.exclude_tags):
            continue
        for f in km.fields:
            if f in rec.fields:
                out.append((sid, rec, f))
                break
        if len(out) >= limit:
            break
    return out


def tag_suffix(tags: dict[str, str]) -> str:
    return " ".join(str(v) for _, v in sorted(tags.items()))


def history_values(state: MonitorState, sid: str, field: str) -> list[float]:
    pts = state.history.get(sid, {}).get(field)
    return [float(v) for _, v in pts] if pts else []


def usual_period_s(state: MonitorState, sid: str) -> float | None:
    """Median spacing of the last points of a series (any field)."""
    hist = state.history.get(sid)
    if not hist:
        return None
    pts = next(iter(hist.values()))
    if len(pts) < 3:
        return None
    times = [t for t, _ in list(pts)[-12:]]
    gaps = sorted(b - a for a, b in itertools.pairwise(times) if b > a)
    if not gaps:
        return None
    return gaps[len(gaps) // 2] / 1e9


def stale_limit_s(period_s: float | None) -> float:
    if period_s is None:
        return STALE_DEFAULT_S
    return max(STALE_PERIODS * period_s, STALE_MIN_S)


def is_stale(state: MonitorState, sid: str, now_s: float) -> bool:
    rec = state.series.get(sid)
    if rec is None:
        return True
    return now_s - rec.time_ns / 1e9 > stale_limit_s(usual_period_s(state, sid))


def display_stale(time_ns: int, now_s: float) -> bool:
    return now_s - time_ns / 1e9 > STALE_DEFAULT_S


# -- camera helpers -----------------------------------------------------------------
def cameras(state: MonitorState) -> list[str]:
    """Camera names seen in frames, spectra or camera metrics."""
    names = set()
    for name in state.displays:
        parts = name.split("/")
        if len(parts) >= 3 and parts[0] in ("camera", "clusters"):
            names.add(parts[1])
    for rec in state.series.values():
        if rec.family == "camera" and "camera" in rec.tags:
            names.add(rec.tags["camera"])
    return sorted(names)


def pedestal_boxes(state: MonitorState, cam: str) -> list[tuple[float, float]] | None:
    """Mean and RMS of the nine 256x256 pedestal boxes of camera ``cam``
    (row-major 3x3), from camera metrics; None when not published."""
    boxes: dict[int, dict[str, float]] = {}
    for rec in state.series.values():
        if rec.family != "camera" or rec.tags.get("camera", cam) != cam:
            continue
        if "box" in rec.tags:
            try:
                i = int(rec.tags["box"])
            except ValueError:
                continue
            for k in ("mean", "rms"):
                if isinstance(rec.fields.get(k), (int, float)):
                    boxes.setdefault(i, {})[k] = float(rec.fields[k])
            continue
        for f, v in rec.fields.items():
            m = _BOX_FIELD.match(f)
            if m and isinstance(v, (int, float)):
                i = int(m.group(1) or m.group(4))
                k = m.group(2) or m.group(3)
                boxes.setdefault(i, {})[k] = float(v)
    if not boxes:
        return None
    first = min(boxes)
    out = []
    for i in range(first, first + 9):
        b = boxes.get(i, {})
        out.append((b.get("mean", math.nan), b.get("rms", math.nan)))
    return out


def image_array(arrays: dict[str, Any]) -> Any:
    """The 2-D array of an image display (``image`` key first)."""
    if "image" in arrays and getattr(arrays["image"], "ndim", 0) == 2:
        return arrays["image"]
    for a in arrays.values():
        if getattr(a, "ndim", 0) == 2:
            return a
    return None


def camera_fields(state: MonitorState, cam: str) -> dict[str, Any]:
    """Per-image camera fields (no box series) of camera ``cam``."""
    out: dict[str, Any] = {}
    for rec in state.series.values():
        if rec.family == "camera" and rec.tags.get("camera", cam) == cam and "box" not in rec.tags:
            out.update(rec.fields)
    return out


# -- formatting -----------------------------------------------------------------------
def fmt_value(v: Any, fmt: str = "{:.4g}") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:d}" if abs(v) < 10**9 else f"{v:.3e}"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return fmt.format(v)
    return str(v)


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h:02d}:{m:02d}:{s:02d}"
    return f"{h:02d}:{m:02d}:{s:02d}"


def fmt_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def numeric(values: Iterable[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
