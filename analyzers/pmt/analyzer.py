"""PMT and GEM waveform analyzer (plugin ``pmt``).

Consumes :class:`~cygno_online.decode.items.DigitizerBoard` items: one
digitizer board of one camera image, with ``ntriggers`` PMT triggers. Per
trigger and analysed channel the numba kernel computes baseline, RMS,
amplitude, peak time, integral, time over threshold, number of peaks and an
ADC-rail flag; this module turns them into per-image metrics, viewer displays
and the run's summary section.

Charge: the digitizer input is terminated on ``input_impedance_ohm`` (50 ohm)
and one ADC count is ``adc_range_v / adcmax`` volt (V1742 and V1720: 1 V over
4096 counts), so ``charge [pC] = integral [counts x samples] * adc_range_v /
adcmax * sample_ns / input_impedance_ohm * 1e3``.

Time tags: the trigger time tag (TTT) is a ``ttt_bits``-bit counter (31 bits)
that wraps; consecutive differences are taken modulo ``2**ttt_bits``. The tick
period differs by model (``ttt_tick_ns``: 8 ns for the V1720's 125 MHz clock;
8.5 ns for the V1742 as we read CAEN's x742 documentation - verify against
your firmware and set ``models.1742.ttt_tick_ns``/``ttt_bits`` if it differs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cygno_online.analysis.catalogue import CatalogueContext, SeriesSpec, fields_from_units
from cygno_online.analysis.outputs import Display, Metric, Output
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, Flow
from cygno_online.decode.items import DigitizerBoard, RunInfo
from cygno_online.params import Params

from . import kernels as kern

#: per-model defaults: fast V1742 (DRS4, 1024 samples) and slow V1720 (4000)
MODEL_DEFAULTS: dict[int, dict[str, Any]] = {
    1742: {"baseline_samples": 100, "channels": [1, 2, 3, 4, 5, 6, 7], "ttt_tick_ns": 8.5},
    1720: {"baseline_samples": 400, "channels": [1, 2, 3, 4], "ttt_tick_ns": 8.0},
}
FALLBACK = {"baseline_samples": 100, "channels": [1, 2, 3, 4], "ttt_tick_ns": 8.0}
DEFAULT_LABELS = {1: "pmt1", 2: "pmt2", 3: "pmt3", 4: "pmt4", 5: "gem1", 6: "gem2", 7: "gem3"}

# (field, kernel column, unit) of the per-channel metric; means over triggers
_CHANNEL_UNITS = {
    "baseline": "ADC",
    "rms": "ADC",
    "amplitude": "ADC",
    "peak_time": "ns",
    "integral": "ADC*ns",
    "charge": "pC",
    "npeaks": "",
    "tot": "ns",
    "baseline_drift": "ADC",
    "saturated": "",
    "no_signal": "",
    "triggers_since_peak": "",
    "triggers": "",
}
_BOARD_UNITS = {
    "multiplicity": "",
    "rate": "Hz",
    "dt_mean": "s",
    "saturated_channels": "",
    "silent_channels": "",
}


def _int_keyed(p: Params, key: str) -> dict[int, Params]:
    """A mapping whose keys are integers (board index or model), written as
    YAML ints or digit strings; each value read through its own Params."""
    raw = p.raw(key, {}) or {}
    out: dict[int, Params] = {}
    if not isinstance(raw, Mapping):
        p.error(key, "must be a mapping", value=raw)
        return out
    for k, v in raw.items():
        try:
            ik = int(k)
        except (TypeError, ValueError):
            p.error(f"{key}.{k}", "key must be an integer", value=k)
            continue
        out[ik] = Params(v, p.key_path(f"{key}.{k}"), p.errors, p.source)
    return out


def _channel_keyed(p: Params, key: str, what: str) -> dict[int, Any]:
    """A mapping channel number -> value as written (``labels``,
    ``silent_after``); keys that are not channel numbers are errors."""
    raw = p.raw(key, {}) or {}
    if not isinstance(raw, Mapping):
        p.error(key, f"must be a mapping channel -> {what}", value=raw)
        return {}
    out: dict[int, Any] = {}
    for k, v in raw.items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            p.error(f"{key}.{k}", "key must be a channel number", value=k)
    return out


def _per_channel_triggers(p: Params, key: str) -> dict[int, int]:
    """``{channel: triggers}`` (channel numbers >= 0, triggers >= 1)."""
    out: dict[int, int] = {}
    for ch, v in _channel_keyed(p, key, "triggers").items():
        if ch < 0:
            p.error(f"{key}.{ch}", "channel numbers must be >= 0", value=ch)
        elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
            p.error(f"{key}.{ch}", "must be an integer >= 1 (triggers)", value=v)
        else:
            out[ch] = v
    return out


def _read_board_entry(p: Params) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if p.has("baseline_samples"):
        entry["baseline_samples"] = p.integer("baseline_samples", None, minimum=1)
    if p.has("channels"):
        chans = p.list_of("channels", None, int, nonempty=True)
        if chans is not None and any(c < 0 for c in chans):
            p.error("channels", "channel numbers must be >= 0", value=chans)
            chans = None
        entry["channels"] = chans
    if p.has("ttt_tick_ns"):
        entry["ttt_tick_ns"] = p.number("ttt_tick_ns", None, minimum=0, exclusive_minimum=True)
    if p.has("ttt_bits"):
        entry["ttt_bits"] = p.integer("ttt_bits", None, minimum=8, maximum=48)
    if p.has("polarity"):
        entry["polarity"] = p.choice("polarity", None, ("negative", "positive"))
    if p.has("silent_after_triggers"):
        entry["silent_after_triggers"] = p.integer("silent_after_triggers", None, minimum=1)
    if p.has("silent_after"):
        entry["silent_after"] = _per_channel_triggers(p, "silent_after")
    p.check_unknown()
    return {k: v for k, v in entry.items() if v is not None}


def _silent_after(cfg: Mapping[str, Any], ch: int) -> int:
    """Triggers without a peak after which channel ``ch`` is silent."""
    return int(cfg.get("silent_after", {}).get(ch, cfg["silent_after_triggers"]))


@dataclass(slots=True)
class _Settings:
    polarity: str = "negative"
    nsigma: float = 5.0
    peak_distance: float = 10.0
    peak_width: float = 2.0
    adc_range_v: float = 1.0
    impedance_ohm: float = 50.0
    average_triggers: int = 100
    display_every: int = 1
    amplitude_bins: int = 128
    ttt_bits: int = 31
    silent_after_triggers: int = 20
    models: dict[int, dict[str, Any]] = field(default_factory=dict)
    boards: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)

    def for_board(self, board: int, model: int) -> dict[str, Any]:
        cfg = dict(MODEL_DEFAULTS.get(model, FALLBACK))
        cfg["polarity"] = self.polarity
        cfg["ttt_bits"] = self.ttt_bits
        cfg["silent_after_triggers"] = self.silent_after_triggers
        m, b = self.models.get(model, {}), self.boards.get(board, {})
        cfg.update(m)
        cfg.update(b)
        # per-channel thresholds merge (a board names its own channels only)
        cfg["silent_after"] = {**m.get("silent_after", {}), **b.get("silent_after", {})}
        return cfg


@dataclass(slots=True)
class _ChannelRun:
    """Run accumulators of one channel."""

    triggers: int = 0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(kern.NFEATURES))
    charge_sum: float = 0.0
    baseline_start: float | None = None
    drift_last: float = 0.0
    drift_max_abs: float = 0.0
    saturated: int = 0
    #: images with triggers but no peak in any of them (the run summary's
    #: ``silent_fraction``: a channel dead for the whole run)
    silent_images: int = 0
    #: triggers since the last trigger with a peak (across images): the live
    #: ``no_signal`` state; from the run's start for a channel never seen
    #: pulsing
    since_peak: int = 0


@dataclass(slots=True)
class _BoardState:
    board: int
    model: int
    nsamples: int
    chans: np.ndarray
    cfg: dict[str, Any]
    ring: np.ndarray
    #: running sum of the ring (float64): the average costs O(samples), not O(window)
    ring_sum: np.ndarray | None = None
    ring_pos: int = 0
    ring_count: int = 0
    amp_counts: np.ndarray | None = None
    amp_edges: np.ndarray | None = None
    mult_counts: np.ndarray = field(default_factory=lambda: np.zeros(130, dtype=np.int64))
    images: int = 0
    triggers: int = 0
    sample_ns: float = 0.0
    rate_sum: float = 0.0
    rate_n: int = 0
    channels: dict[int, _ChannelRun] = field(default_factory=dict)


class PmtAnalyzer(Analyzer):
    name = "pmt"
    consumes = (DigitizerBoard,)
    description = "PMT/GEM waveforms: baseline, RMS, amplitude, charge, peaks, ToT, rates"

    #: run-scoped state (per-board statistics and display buffers),
    #: checkpointed so that a run survives a daemon restart
    run_state = ("_boards",)
    #: 2: channels count the triggers since their last peak (``since_peak``)
    run_state_version = 2

    def __init__(self) -> None:
        super().__init__()
        self.settings = _Settings()
        self._boards: dict[int, _BoardState] = {}
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------
    def configure(self, params: Params, env: AnalyzerEnv) -> None:
        s = _Settings(
            polarity=params.choice("polarity", "negative", ("negative", "positive")),
            nsigma=float(params.number("nsigma", 5.0, minimum=0)),
            peak_distance=float(params.number("peak_distance", 10.0, minimum=1)),
            peak_width=float(params.number("peak_width", 2.0, minimum=0)),
            adc_range_v=float(params.number("adc_range_v", 1.0, minimum=0, exclusive_minimum=True)),
            impedance_ohm=float(
                params.number("input_impedance_ohm", 50.0, minimum=0, exclusive_minimum=True)
            ),
            average_triggers=params.integer("average_triggers", 100, minimum=1, maximum=10000),
            display_every=params.integer("display_every", 1, minimum=1),
            amplitude_bins=params.integer("amplitude_bins", 128, minimum=2, maximum=100000),
            ttt_bits=params.integer("ttt_bits", 31, minimum=8, maximum=48),
            silent_after_triggers=params.integer("silent_after_triggers", 20, minimum=1),
        )
        s.models = {k: _read_board_entry(v) for k, v in _int_keyed(params, "models").items()}
        s.boards = {k: _read_board_entry(v) for k, v in _int_keyed(params, "boards").items()}
        labels = dict(DEFAULT_LABELS)
        labels.update({ch: str(v) for ch, v in _channel_keyed(params, "labels", "label").items()})
        s.labels = labels
        self.env = env
        self.settings = s
        with self._lock:
            # New channel lists/windows apply from the next image of each board.
            for st in self._boards.values():
                st.cfg = {}

    def warm_up(self) -> None:
        wf = np.zeros((1, 2, 16), dtype=np.uint16)
        # Decoders hand out read-only views of the event buffer: a distinct
        # numba signature, so compile both.
        readonly = wf.copy()
        readonly.setflags(write=False)
        for array in (wf, readonly):
            out = np.zeros((1, 1, kern.NFEATURES))
            sig = np.zeros((1, 1, 16), dtype=np.float32)
            kern.waveform_features(
                array, np.array([1], np.int64), 8, -1.0, 5.0, 1.0, 0.0, 4095, out, sig
            )

    # -- run life cycle ------------------------------------------------------------
    def begin_run(self, run: RunInfo) -> Iterable[Output]:
        with self._lock:
            self._boards = {}
        return ()

    def _state(self, item: DigitizerBoard) -> _BoardState:
        with self._lock:
            st = self._boards.get(item.board)
            cfg = self.settings.for_board(item.board, item.model)
            if st is not None and st.nsamples == item.nsamples and st.cfg == cfg:
                return st
            chans = np.array(
                [c for c in cfg["channels"] if 0 <= c < item.nchannels], dtype=np.int64
            )
            ring = np.zeros(
                (self.settings.average_triggers, len(chans), item.nsamples), dtype=np.float32
            )
            new = _BoardState(item.board, item.model, item.nsamples, chans, cfg, ring)
            new.ring_sum = np.zeros(ring.shape[1:], dtype=np.float64)
            if st is not None:
                # Keep the run's statistics; only the display buffers restart.
                new.mult_counts = st.mult_counts
                new.images, new.triggers = st.images, st.triggers
                new.rate_sum, new.rate_n = st.rate_sum, st.rate_n
                new.channels = st.channels
                if st.amp_counts is not None and st.amp_counts.shape[0] == len(chans):
                    new.amp_counts, new.amp_edges = st.amp_counts, st.amp_edges
            self._boards[item.board] = new
            return new

    # -- per image -------------------------------------------------------------------
    def process(self, item: DigitizerBoard, flow: Flow) -> Iterable[Output]:
        s = self.settings
        st = self._state(item)
        ctx = item.ctx
        ntr = int(item.ntriggers)
        nsel = len(st.chans)
        outputs: list[Output] = []
        st.images += 1
        st.triggers += ntr
        st.sample_ns = float(item.sample_ns)
        st.mult_counts[min(ntr, len(st.mult_counts) - 1)] += 1
        if st.amp_counts is None:
            st.amp_edges = np.linspace(0.0, float(item.adcmax), s.amplitude_bins + 1)
            st.amp_counts = np.zeros((nsel, s.amplitude_bins), dtype=np.int64)

        board_fields: dict[str, Any] = {"multiplicity": ntr}
        if ntr >= 2:
            deltas = ttt_deltas(item.ttt, st.cfg["ttt_bits"])
            span_s = float(deltas.sum()) * st.cfg["ttt_tick_ns"] * 1e-9
            if span_s > 0:
                board_fields["rate"] = (ntr - 1) / span_s
                board_fields["dt_mean"] = span_s / (ntr - 1)
                st.rate_sum += board_fields["rate"]
                st.rate_n += 1

        feats = sig = None
        if ntr > 0 and nsel > 0:
            sign = -1.0 if st.cfg["polarity"] == "negative" else 1.0
            feats = np.empty((ntr, nsel, kern.NFEATURES))
            sig = np.empty((ntr, nsel, item.nsamples), dtype=np.float32)
            kern.waveform_features(
                item.waveforms,
                st.chans,
                int(st.cfg["baseline_samples"]),
                sign,
                s.nsigma,
                s.peak_distance,
                s.peak_width,
                int(item.adcmax) - 1,
                feats,
                sig,
            )
            self._push_ring(st, sig)
            channel_metrics = self._channel_metrics(item, st, feats)
            outputs.extend(channel_metrics)
            board_fields["saturated_channels"] = int(
                np.count_nonzero(feats[:, :, kern.F_SATURATED].max(axis=0))
            )
            # the channels' own verdicts, not decided a second time
            board_fields["silent_channels"] = sum(m.fields["no_signal"] for m in channel_metrics)
            idx = np.clip(
                np.searchsorted(st.amp_edges, feats[:, :, kern.F_AMPLITUDE], side="right") - 1,
                0,
                s.amplitude_bins - 1,
            )
            for c in range(nsel):
                np.add.at(st.amp_counts[c], idx[:, c], 1)
        outputs.append(
            Metric(
                "pmt",
                ctx.time_ns,
                ctx.run,
                ctx.serial,
                board_fields,
                {"board": str(item.board)},
                {k: _BOARD_UNITS[k] for k in board_fields},
            )
        )
        if st.images % s.display_every == 0:
            outputs.extend(self._displays(item, st, sig))
        return outputs

    def _push_ring(self, st: _BoardState, sig: np.ndarray) -> None:
        size = st.ring.shape[0]
        for row in sig[-size:]:
            if st.ring_count == size:
                st.ring_sum -= st.ring[st.ring_pos]
            st.ring[st.ring_pos] = row
            st.ring_sum += row
            st.ring_pos = (st.ring_pos + 1) % size
            st.ring_count = min(st.ring_count + 1, size)

    def _channel_metrics(
        self, item: DigitizerBoard, st: _BoardState, feats: np.ndarray
    ) -> list[Metric]:
        s = self.settings
        ctx = item.ctx
        ntr = feats.shape[0]
        means = feats.mean(axis=0)
        lsb_v = s.adc_range_v / float(item.adcmax)
        charge_per_count = lsb_v * item.sample_ns / s.impedance_ohm * 1e3  # pC per count*sample
        metrics = []
        for c, ch in enumerate(st.chans.tolist()):
            m = means[c]
            run = st.channels.setdefault(ch, _ChannelRun())
            if run.baseline_start is None:
                run.baseline_start = float(m[kern.F_BASELINE])
            drift = float(m[kern.F_BASELINE]) - run.baseline_start
            saturated = int(feats[:, c, kern.F_SATURATED].sum())
            # A channel is silent when it has seen no peak for
            # silent_after_triggers triggers, not when one image has none:
            # an image holds a few triggers, and a weak 55Fe spot far from a
            # PMT (or on a GEM channel) may give no peak above 5 RMS in all
            # of them; the state flickered ok/silent image by image.
            peaked = np.flatnonzero(feats[:, c, kern.F_NPEAKS] > 0)
            if peaked.size:
                run.since_peak = ntr - 1 - int(peaked[-1])
            else:
                run.since_peak += ntr
            silent = run.since_peak >= _silent_after(st.cfg, ch)
            run.triggers += ntr
            run.sums += feats[:, c].sum(axis=0)
            run.charge_sum += float(feats[:, c, kern.F_INTEGRAL].sum()) * charge_per_count
            run.drift_last = drift
            run.drift_max_abs = max(run.drift_max_abs, abs(drift))
            run.saturated += saturated
            run.silent_images += int(peaked.size == 0)
            fields = {
                "baseline": float(m[kern.F_BASELINE]),
                "rms": float(m[kern.F_RMS]),
                "amplitude": float(m[kern.F_AMPLITUDE]),
                "peak_time": float(m[kern.F_PEAK_SAMPLE]) * item.sample_ns,
                "integral": float(m[kern.F_INTEGRAL]) * item.sample_ns,
                "charge": float(m[kern.F_INTEGRAL]) * charge_per_count,
                "npeaks": float(m[kern.F_NPEAKS]),
                "tot": float(m[kern.F_TOT]) * item.sample_ns,
                "baseline_drift": drift,
                "saturated": saturated,
                "no_signal": silent,
                "triggers_since_peak": run.since_peak,
                "triggers": ntr,
            }
            metrics.append(
                Metric(
                    "pmt",
                    ctx.time_ns,
                    ctx.run,
                    ctx.serial,
                    fields,
                    {"board": str(item.board), "channel": str(ch)},
                    dict(_CHANNEL_UNITS),
                )
            )
        return metrics

    def _displays(
        self, item: DigitizerBoard, st: _BoardState, sig: np.ndarray | None
    ) -> list[Display]:
        ctx = item.ctx
        b = item.board
        labels = {f"ch{ch}": self.settings.labels.get(ch, f"ch{ch}") for ch in st.chans.tolist()}
        meta = {
            "sample_ns": item.sample_ns,
            "units": "ADC",
            "polarity_corrected": True,
            "model": item.model,
            "labels": labels,
        }
        out: list[Display] = []
        if st.ring_count:
            avg = (st.ring_sum / st.ring_count).astype(np.float32)
            out.append(
                Display(
                    "waveforms",
                    f"pmt/{b}/average",
                    ctx.run,
                    ctx.serial,
                    ctx.time_ns,
                    {f"ch{ch}": avg[c] for c, ch in enumerate(st.chans.tolist())},
                    {**meta, "triggers": st.ring_count},
                )
            )
        if sig is not None:
            out.append(
                Display(
                    "waveforms",
                    f"pmt/{b}/latest",
                    ctx.run,
                    ctx.serial,
                    ctx.time_ns,
                    {f"ch{ch}": sig[-1, c].copy() for c, ch in enumerate(st.chans.tolist())},
                    dict(meta),
                )
            )
        for c, ch in enumerate(st.chans.tolist()):
            out.append(
                Display(
                    "histogram",
                    f"pmt/{b}/amplitude/ch{ch}",
                    ctx.run,
                    ctx.serial,
                    ctx.time_ns,
                    {"counts": st.amp_counts[c].copy(), "edges": st.amp_edges},
                    {"units": "ADC", "label": labels[f"ch{ch}"], "x": "amplitude"},
                )
            )
        out.append(
            Display(
                "histogram",
                f"pmt/{b}/multiplicity",
                ctx.run,
                ctx.serial,
                ctx.time_ns,
                {
                    "counts": st.mult_counts.copy(),
                    "edges": np.arange(len(st.mult_counts) + 1, dtype=np.float64) - 0.5,
                },
                {"units": "triggers per image", "x": "multiplicity"},
            )
        )
        return out

    # -- end of run ------------------------------------------------------------------
    def catalogue(self, ctx: CatalogueContext) -> list[SeriesSpec]:
        src = f"analyzer {self.instance_name}"
        ch_types = {
            "saturated": "int",
            "no_signal": "bool",
            "triggers_since_peak": "int",
            "triggers": "int",
        }
        board_types = {"multiplicity": "int", "saturated_channels": "int", "silent_channels": "int"}
        return [
            SeriesSpec(
                "pmt",
                fields_from_units(
                    _CHANNEL_UNITS,
                    ch_types,
                    descriptions={
                        "baseline": "mean of the first samples (V1742: 100, V1720: 400)",
                        "npeaks": "peaks above 5 RMS, mean per trigger",
                        "saturated": "saturated triggers in this image",
                        "no_signal": "no peak in the last silent_after_triggers triggers",
                        "triggers_since_peak": "triggers since the last one with a peak",
                    },
                ),
                ("board", "channel"),
                src,
                "per image, board and channel (means over the image's triggers)",
            ),
            SeriesSpec(
                "pmt",
                fields_from_units(
                    _BOARD_UNITS, board_types, descriptions={"multiplicity": "triggers in image"}
                ),
                ("board",),
                src,
                "per image and board",
            ),
        ]

    def end_run(self, run: RunInfo) -> dict[str, Any]:
        boards: dict[str, Any] = {}
        total = 0
        images = 0
        with self._lock:
            states = dict(self._boards)
        for b, st in sorted(states.items()):
            # Every board digitises the same PMT trigger: the run's trigger
            # count is the largest per-board count, not their sum.
            total = max(total, st.triggers)
            images = max(images, st.images)
            channels: dict[str, Any] = {}
            for ch, cr in sorted(st.channels.items()):
                n = max(cr.triggers, 1)
                sums = cr.sums
                sample_ns = st.sample_ns
                channels[str(ch)] = {
                    "label": self.settings.labels.get(ch, f"ch{ch}"),
                    "triggers": cr.triggers,
                    "baseline_mean_adc": float(sums[kern.F_BASELINE] / n),
                    "baseline_start_adc": cr.baseline_start,
                    "baseline_drift_last_adc": cr.drift_last,
                    "baseline_drift_max_adc": cr.drift_max_abs,
                    "rms_mean_adc": float(sums[kern.F_RMS] / n),
                    "amplitude_mean_adc": float(sums[kern.F_AMPLITUDE] / n),
                    "charge_mean_pc": cr.charge_sum / n,
                    "npeaks_mean": float(sums[kern.F_NPEAKS] / n),
                    "tot_mean_ns": float(sums[kern.F_TOT] / n) * sample_ns,
                    "saturated_triggers": cr.saturated,
                    "silent_images": cr.silent_images,
                }
            boards[str(b)] = {
                "model": st.model,
                "images": st.images,
                "triggers": st.triggers,
                "multiplicity_mean": st.triggers / st.images if st.images else 0.0,
                "rate_mean_hz": st.rate_sum / st.rate_n if st.rate_n else None,
                "channels": channels,
            }
        return {"triggers_total": total, "images": images, "boards": boards}


def ttt_deltas(ttt: np.ndarray, bits: int = 31) -> np.ndarray:
    """Tick differences between consecutive trigger time tags of a
    ``bits``-bit counter; a wrap (later tag numerically smaller) adds
    ``2**bits``. Bits above the counter width are ignored."""
    t = np.asarray(ttt, dtype=np.int64) & ((1 << bits) - 1)
    return (t[1:] - t[:-1]) & ((1 << bits) - 1)
