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
    #: exact tag values a series must have (e.g. the trigger event id)
    tags: tuple[tuple[str, str], ...] = ()
    #: shown as value * scale in ``unit`` (a fraction as %), else the
    #: metric's own unit
    scale: float = 1.0
    unit: str | None = None

    def show(self, v: Any, unit: str = "") -> str:
        """The value with its unit, ready for a table cell."""
        if isinstance(v, (int, float)) and not isinstance(v, bool) and self.scale != 1.0:
            v = float(v) * self.scale
        u = self.unit if self.unit is not None else unit
        text = fmt_value(v, self.fmt)
        return f"{text} {u}" if u and text != "-" else text


#: Overview rows (value + sparkline), in display order. Field names are those
#: of the shipped analyzers (analyzers/*/analyzer.py) and the daemon's health.
KEY_METRICS: tuple[KeyMetric, ...] = (
    KeyMetric("Trigger rate", "daq", ("rate_hz",), tags=(("event_id", "1"),)),
    KeyMetric("DAQ lag", "daq", ("lag_s",), tags=(("event_id", "1"),), fmt="{:.2f}"),
    KeyMetric("Events analysed", "monitor", ("rate_processed_hz",)),
    KeyMetric("Image mean", "camera", ("raw_mean", "mean"), exclude_tags=("box",), fmt="{:.2f}"),
    KeyMetric("Image RMS", "camera", ("raw_rms", "rms"), exclude_tags=("box",), fmt="{:.2f}"),
    KeyMetric("Clusters/image", "camera", ("n_clusters", "nclusters")),
    KeyMetric(
        "Pixels over thr.",
        "camera",
        ("frac_over_threshold",),
        exclude_tags=("box",),
        fmt="{:.3g}",
        scale=100.0,
        unit="%",
    ),
    KeyMetric("Sparks", "camera", ("spark",)),
    KeyMetric("55Fe/image", "clusters", ("n_fe55",), exclude_tags=("cluster",)),
    KeyMetric(
        "55Fe integral",
        "clusters",
        ("fe55_integral_mean",),
        exclude_tags=("cluster",),
        fmt="{:.0f}",
    ),
    KeyMetric("PMT multiplicity", "pmt", ("multiplicity",), ("board",), ("channel",)),
    KeyMetric("Camera temp.", "camera", ("sensor_temperature", "temperature"), fmt="{:.1f}"),
    KeyMetric("LIME pressure", "environment", ("lime_pressure",), fmt="{:.4g}"),
    KeyMetric("Gas temp.", "environment", ("gas_temperature",), fmt="{:.1f}"),
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

#: pedestal boxes: ``box3_raw_mean`` (camera analyzer), ``box3_mean``, ``mean_box3``...
_BOX_FIELD = re.compile(r"^(?:box_?(\d+)_(?:(raw|ped)_)?(mean|rms)|(mean|rms)_?box_?(\d+))$")


# -- series lookup -------------------------------------------------------------------
def series_fields(state: MonitorState, sid: str) -> dict[str, Any]:
    """Latest value of every field of a series.

    Two analyzers may publish different fields under one series id (camera
    temperature from slow control and per-image camera numbers share
    ``camera{camera=cam0}``) and the state keeps only the last record, so
    numeric fields come from their own history."""
    out: dict[str, Any] = {}
    for f, pts in state.history.get(sid, {}).items():
        if pts:
            out[f] = pts[-1][1]
    rec = state.series.get(sid)
    if rec is not None:
        out.update(rec.fields)
    return out


_UNITS: dict[tuple[str, str], str] = {}


def remember_units(sid: str, units: dict[str, str]) -> None:
    """Called from the client thread for every metric (see
    :func:`cygno_online.tui.source.track_units`); dict stores are atomic."""
    for field, unit in units.items():
        _UNITS[(sid, field)] = unit


def unit_of(state: MonitorState, sid: str, field: str) -> str:
    """A field's unit, remembered across records of the series that lack it."""
    rec = state.series.get(sid)
    if rec is not None and field in rec.units:
        _UNITS[(sid, field)] = rec.units[field]
        return rec.units[field]
    return _UNITS.get((sid, field), "")


def field_time_ns(state: MonitorState, sid: str, field: str) -> int:
    pts = state.history.get(sid, {}).get(field)
    if pts:
        return int(pts[-1][0])
    rec = state.series.get(sid)
    return rec.time_ns if rec is not None and field in rec.fields else 0


def has_field(state: MonitorState, sid: str, rec: SeriesRecord, field: str) -> bool:
    return field in rec.fields or field in state.history.get(sid, {})


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
        if any(rec.tags.get(k) != v for k, v in km.tags):
            continue
        for f in km.fields:
            if has_field(state, sid, rec, f):
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


def usual_period_s(state: MonitorState, sid: str, field: str | None = None) -> float | None:
    """Median spacing of the last points of a series field (default: any)."""
    hist = state.history.get(sid)
    if not hist:
        return None
    pts = hist.get(field) if field is not None else None
    if pts is None:
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


def is_stale(state: MonitorState, sid: str, now_s: float, field: str | None = None) -> bool:
    """Older than its usual period allows (see the module constants)."""
    rec = state.series.get(sid)
    if rec is None:
        return True
    t_ns = field_time_ns(state, sid, field) if field is not None else rec.time_ns
    if not t_ns:
        return True
    return now_s - t_ns / 1e9 > stale_limit_s(usual_period_s(state, sid, field))


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


def camera_sids(state: MonitorState, cam: str) -> list[str]:
    return [
        sid
        for sid, rec in state.series.items()
        if rec.family == "camera"
        and rec.tags.get("camera", cam) == cam
        and not ({"box", "cluster"} & rec.tags.keys())
    ]


def camera_fields(state: MonitorState, cam: str) -> dict[str, Any]:
    """Latest per-image (and temperature) fields of camera ``cam``."""
    out: dict[str, Any] = {}
    for sid in camera_sids(state, cam):
        out.update(series_fields(state, sid))
    return out


def camera_time_ns(state: MonitorState, cam: str) -> int:
    return max((state.series[sid].time_ns for sid in camera_sids(state, cam)), default=0)


def pedestal_boxes(state: MonitorState, cam: str) -> list[tuple[float, float]] | None:
    """Mean and RMS of the nine 256x256 pedestal boxes of camera ``cam``
    (row-major 3x3) from camera metrics (raw values preferred); None when not
    published."""
    boxes: dict[int, dict[str, float]] = {}
    for rec in state.series.values():
        if rec.family == "camera" and rec.tags.get("camera", cam) == cam and "box" in rec.tags:
            try:
                i = int(rec.tags["box"])
            except ValueError:
                continue
            for k in ("mean", "rms"):
                if isinstance(rec.fields.get(k), (int, float)):
                    boxes.setdefault(i, {})[k] = float(rec.fields[k])
    ped: dict[int, dict[str, float]] = {}
    for f, v in camera_fields(state, cam).items():
        m = _BOX_FIELD.match(f)
        if m and isinstance(v, (int, float)) and not isinstance(v, bool):
            i = int(m.group(1) or m.group(5))
            k = m.group(3) or m.group(4)
            (ped if m.group(2) == "ped" else boxes).setdefault(i, {})[k] = float(v)
    boxes = boxes or ped
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


def image_boxes(meta: dict[str, Any]) -> list[list[float]]:
    """Cluster boxes [r0, c0, r1, c1] in display pixels from an image's meta
    (lists, or dicts with row0/col0/row1/col1 as the camera analyzer sends)."""
    out = []
    for b in meta.get("boxes") or []:
        try:
            if isinstance(b, dict):
                out.append([float(b["row0"]), float(b["col0"]), float(b["row1"]), float(b["col1"])])
            elif len(b) == 4:
                out.append([float(x) for x in b])
        except (KeyError, TypeError, ValueError):
            continue
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
        return f"{seconds / 60:.0f}min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def fmt_age_coarse(seconds: float) -> str:
    """An age that changes at most every 10 s (tables of many rows would
    otherwise repaint every second): ``<10s``, ``20s``, then as fmt_age."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return "<10s"
    if seconds < 60:
        return f"{int(seconds // 10) * 10}s"
    return fmt_age(seconds)


def numeric(values: Iterable[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
