"""The shifter's questions, answered from a :class:`MonitorState`.

Each function returns a small record: the number, what it is compared with,
and a status (``ok``, ``warn``, ``bad``, ``unknown``) that the Overview colours.
No drawing here, so every answer is testable without a terminal. Callers hold
``state.lock``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cygno_online.publish.state import MonitorState
from cygno_online.tui.keymetrics import (
    KEY_METRICS,
    camera_fields,
    cameras,
    field_time_ns,
    history_values,
    is_stale,
    key_rows,
    numeric,
    series_fields,
    unit_of,
)
from cygno_online.tui.source import Expectations, Limit

#: a pedestal box whose RMS is above this many times the map's noise is noisy
NOISY_FACTOR = 2.0
#: points of the per-image 55Fe mean averaged when there is no spectrum
FE55_POINTS = 30


@dataclass(slots=True)
class Answer:
    status: str = "unknown"  # ok | warn | bad | unknown
    text: str = ""


# -- 55Fe ------------------------------------------------------------------------------
def peak_of(
    counts: np.ndarray, edges: np.ndarray, min_entries: int = 30
) -> tuple[float, float, int] | None:
    """Mean and sigma of the main peak of a histogram (iterated window of
    +-1.5 sigma around the highest smoothed bin); None with too few entries."""
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64))
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 1 or edges.size != counts.size + 1 or counts.size < 3:
        return None
    n = int(counts.sum())
    if n < min_entries:
        return None
    centres = 0.5 * (edges[1:] + edges[:-1])
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    mu = float(centres[int(np.argmax(smooth))])
    sigma = float(edges[-1] - edges[0]) / 10
    for _ in range(6):
        sel = np.abs(centres - mu) <= 1.5 * sigma
        w = counts[sel]
        if w.sum() <= 0:
            return None
        mu_new = float(np.sum(w * centres[sel]) / w.sum())
        # the RMS of a Gaussian cut at +-1.5 sigma is 0.74 sigma
        sigma_new = float(np.sqrt(np.sum(w * (centres[sel] - mu_new) ** 2) / w.sum())) / 0.74
        sigma_new = max(sigma_new, float(edges[1] - edges[0]))
        if abs(mu_new - mu) < 1e-3 * sigma and abs(sigma_new - sigma) < 1e-3 * sigma:
            mu, sigma = mu_new, sigma_new
            break
        mu, sigma = mu_new, sigma_new
    return mu, sigma, n


@dataclass(slots=True)
class Fe55Answer(Answer):
    peak: float | None = None
    sigma: float | None = None
    entries: int = 0
    band: tuple[float, float] | None = None
    reference: float | None = None
    where: str = ""  # "spectrum" or "per-image mean"


def fe55(state: MonitorState, expect: Expectations, cam: str | None = None) -> Fe55Answer:
    """The 55Fe peak (cluster integral) against the configured reference."""
    out = Fe55Answer()
    cams = cameras(state)
    cam = cam if cam in cams else (cams[0] if cams else None)
    d = state.displays.get(f"clusters/{cam}/fe55_integral") if cam else None
    if d is not None:
        fit = (d.meta or {}).get("fit") if isinstance(d.meta, dict) else None
        mu = _f(fit.get("mu")) if isinstance(fit, dict) else None
        if mu is not None:
            out.peak, out.sigma = mu, _f(fit.get("sigma"))
            out.entries = int(np.nansum(np.asarray(d.arrays.get("counts", []), dtype=float)))
            out.where = "fit"
        else:
            got = peak_of(d.arrays.get("counts", []), d.arrays.get("edges", []))
            if got is not None:
                out.peak, out.sigma, out.entries = got
                out.where = "spectrum"
    if out.peak is None:
        for sid, _rec in _fe55_series(state):
            vals = history_values(state, sid, "fe55_integral_mean")[-FE55_POINTS:]
            if vals:
                out.peak = float(np.mean(vals))
                out.entries = len(vals)
                out.where = "per-image mean"
                break
    out.band = expect.fe55_band()
    out.reference = expect.fe55_peak
    if out.peak is None:
        out.status = "unknown"
        out.text = "no 55Fe clusters yet"
        return out
    if out.band is None:
        out.status = "unknown"
        out.text = "no reference (summary.references.fe55_peak)"
    elif out.band[0] <= out.peak <= out.band[1]:
        out.status = "ok"
        out.text = "in band"
    else:
        out.status = "bad"
        shift = out.peak / out.reference - 1 if out.reference else 0.0
        out.text = f"{shift:+.0%} off"
    return out


def _fe55_series(state: MonitorState) -> list[tuple[str, Any]]:
    return [
        (sid, rec)
        for sid, rec in sorted(state.series.items())
        if rec.family == "clusters" and "cluster" not in rec.tags
    ]


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# -- pedestal boxes ------------------------------------------------------------------
@dataclass(slots=True)
class BoxesAnswer(Answer):
    #: per box (row-major 3x3): (offset from the reference, rms, flag)
    boxes: list[tuple[float, float, str]] = field(default_factory=list)
    sigma: float | None = None
    against: str = ""  # "pedestal map" or "median of boxes"
    k: float = 3.0


def pedestal_check(state: MonitorState, cam: str | None, k: float = 3.0) -> BoxesAnswer:
    """The nine 256x256 boxes against the pedestal map.

    With a map (``box{k}_ped_mean/rms``: map already subtracted) a box is off
    when its mean is more than ``k`` map sigmas from zero, the sigma being
    the median box RMS (the map noise, robust to a bad corner); noisy when
    its RMS is above :data:`NOISY_FACTOR` times that. Without a map the raw
    boxes are compared with their median the same way. A box holding a
    cluster this frame (``box{k}_light``: a track's light in it) that
    would be off or noisy is flagged ``light``, not counted as off: the
    light, not the pedestal, moved it."""
    out = BoxesAnswer(k=k)
    if cam is None:
        return out
    f = camera_fields(state, cam)
    has_map = any(f"box{i}_ped_mean" in f and f"box{i}_ped_rms" in f for i in range(9))
    kind = "ped" if has_map else "raw"
    means, rmss, lit = [], [], []
    for i in range(9):
        means.append(_f(f.get(f"box{i}_{kind}_mean")))
        rmss.append(_f(f.get(f"box{i}_{kind}_rms")))
        lit.append(f.get(f"box{i}_light") is True)
    if all(m is None for m in means):
        out.text = "no pedestal boxes published"
        return out
    good_rms = [r for r in rmss if r is not None and r > 0]
    sigma = float(np.median(good_rms)) if good_rms else None
    ref = 0.0 if kind == "ped" else float(np.median([m for m in means if m is not None]))
    out.sigma = sigma
    out.against = "pedestal map" if kind == "ped" else "median of boxes (no map)"
    n_off = n_lit = 0
    for m, r, light in zip(means, rmss, lit, strict=True):
        if m is None:
            out.boxes.append((math.nan, math.nan, "?"))
            continue
        off = m - ref
        flag = ""
        if sigma:
            if abs(off) > k * sigma:
                flag = "off"
            elif r is not None and r > NOISY_FACTOR * sigma:
                flag = "noisy"
        if flag and light:
            flag = "light"
            n_lit += 1
        else:
            n_off += bool(flag)
        out.boxes.append((off, r if r is not None else math.nan, flag))
    if sigma is None:
        out.status, out.text = "unknown", "no box RMS"
    elif n_off:
        out.status = "bad"
        out.text = f"{n_off}/9 boxes off"
    else:
        out.status, out.text = "ok", f"{9 - n_lit}/9 boxes ok"
    if n_lit:
        out.text += f", {n_lit} with a track"
    return out


# -- PMT -------------------------------------------------------------------------------
@dataclass(slots=True)
class ChannelState:
    board: str
    channel: str
    state: str  # ok | silent | saturated | stale | flat
    amplitude: float | None = None
    unit: str = ""


def pmt_channels(state: MonitorState, now_s: float) -> list[ChannelState]:
    """Every PMT channel's state from the ``pmt{board,channel}`` metrics:
    ``silent`` (no pulse for the analyzer's ``silent_after_triggers``
    triggers; from a daemon without that field, no pulse in the last
    image), ``saturated``, ``flat`` (no
    baseline noise: dead input), ``stale`` (no recent record), else ``ok``."""
    out = []
    for sid, rec in sorted(state.series.items(), key=lambda kv: _chan_key(kv[1].tags)):
        if rec.family != "pmt" or "channel" not in rec.tags:
            continue
        f = series_fields(state, sid)
        if is_stale(state, sid, now_s):
            st = "stale"
        elif f.get("saturated"):
            st = "saturated"
        elif f.get("no_signal") is True or (
            "triggers_since_peak" not in f and f.get("npeaks") == 0
        ):
            st = "silent"
        elif _f(f.get("rms")) is not None and _f(f.get("rms")) == 0:
            st = "flat"
        else:
            st = "ok"
        out.append(
            ChannelState(
                rec.tags.get("board", "0"),
                rec.tags["channel"],
                st,
                _f(f.get("amplitude")),
                unit_of(state, sid, "amplitude"),
            )
        )
    return out


def _chan_key(tags: dict[str, str]) -> tuple:
    def n(v: str) -> tuple:
        return (0, int(v), "") if v.isdigit() else (1, 0, v)

    return (n(tags.get("board", "")), n(tags.get("channel", "")))


# -- slow-control values with their alarm limits ---------------------------------------
@dataclass(slots=True)
class Reading(Answer):
    label: str = ""
    value: float | None = None
    unit: str = ""
    limits: str = ""
    age_s: float | None = None
    stale: bool = True


def reading(
    state: MonitorState, label: str, limits: list[Limit], now_s: float, fmt: str = "{:.4g}"
) -> Reading:
    """A key metric by its label (``KEY_METRICS``) with the alarm limits
    that apply to it."""
    km = next((k for k in KEY_METRICS if k.label == label), None)
    out = Reading(label=label)
    if km is None:
        return out
    rows = key_rows(state, km, limit=1)
    if not rows:
        out.text = "not published"
        return out
    sid, rec, fld = rows[0]
    v = _f(series_fields(state, sid).get(fld))
    out.value = v
    out.unit = unit_of(state, sid, fld)
    t = field_time_ns(state, sid, fld)
    out.age_s = now_s - t / 1e9 if t else None
    out.stale = is_stale(state, sid, now_s, fld)
    lim = next((x for x in limits if x.matches(rec.family, rec.tags, fld)), None)
    if lim is not None:
        out.limits = lim.text()
    if v is None:
        out.status = "unknown"
    elif lim is not None and (
        (lim.low is not None and v < lim.low) or (lim.high is not None and v > lim.high)
    ):
        out.status = "bad"
        out.text = "LOW" if lim.low is not None and v < lim.low else "HIGH"
    else:
        out.status = "ok" if lim is not None else "unknown"
    return out


def recent_numbers(state: MonitorState, sid: str, fld: str, n: int = 60) -> list[float]:
    return numeric(history_values(state, sid, fld)[-n:])


# -- reference checks (the run-quality ``quality`` metric) -------------------------------
@dataclass(slots=True)
class RefChecks(Answer):
    verdict: str = ""
    reference_run: Any = None
    counts: dict[str, int] = field(default_factory=dict)
    worst: list[tuple[str, str, str]] = field(default_factory=list)  # check, status, reason


def reference_run_of(state: MonitorState) -> int | None:
    """The reference run of the live quality checks (their ``reference_run``
    field), None when they have none."""
    for sid, rec in state.series.items():
        if rec.family != "quality" or "check" not in rec.tags:
            continue
        v = series_fields(state, sid).get("reference_run")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v > 0:
            return int(v)
    return None


def reference_checks(state: MonitorState) -> RefChecks | None:
    """The live reference checks (family ``quality``, one series per tag
    ``check``; ``check=verdict`` is the run's); None when none are published."""
    out = RefChecks()
    found = False
    bad: list[tuple[int, str, str, str]] = []
    for sid, rec in sorted(state.series.items()):
        if rec.family != "quality" or "check" not in rec.tags:
            continue
        found = True
        f = series_fields(state, sid)
        status = str(f.get("status") or "unknown")
        check = rec.tags["check"]
        if check == "verdict":
            out.verdict = status
            out.reference_run = f.get("reference_run")
            out.text = str(f.get("reason") or "")
            continue
        out.counts[status] = out.counts.get(status, 0) + 1
        level = f.get("level")
        if isinstance(level, (int, float)) and level >= 1:
            bad.append((-int(level), check, status, str(f.get("reason") or "")))
    if not found:
        return None
    out.worst = [(c, s, r) for _lvl, c, s, r in sorted(bad)]
    v = out.verdict or ("bad" if any(s == "bad" for _c, s, _r in out.worst) else "unknown")
    out.status = {"good": "ok", "ok": "ok", "warning": "warn", "bad": "bad"}.get(v, "unknown")
    return out
