"""The simulated run: event sequence in time order, BOR/EOR, truth, files.

Determinism: every random number comes from ``numpy.random.Generator(PCG64(
SeedSequence([...])))`` seeded from ``(seed, run, serial, ...)`` of the event it
belongs to, so an event's content does not depend on how many events were
generated before it, and the same arguments give byte-identical output. The
camera maps, hot pixels, digitizer baselines and noise banks depend only on
``(layout, detector_seed)``: a pedestal run and the data runs after it see the
same detector whatever their ``seed``.

Timing: trigger ``k`` (serial k) is sent at ``start + (k + 1) * (exposure_s +
readout_s)``; its exposure started ``exposure_s + readout_s`` earlier. Slow
control follows the real periods (HV, CATHODE, Environment every 60 s;
CameraStatus, TriggerModule every 10 s; first readings just after the run
start), or, with ``sc_every_n_triggers=N``, every equipment sends one event
before trigger 0, N, 2N... ("time compression" for short runs).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cygno_online.errors import ConfigError
from cygno_online.simulate import camera as cam_mod
from cygno_online.simulate.camera import Rates
from cygno_online.simulate.layouts import Layout, get_layout
from cygno_online.simulate.odb import build_odb
from cygno_online.simulate.pmt import DigitizerModel, trigger_for
from cygno_online.simulate.slowcontrol import (
    EVENTID_CAMERA,
    EVENTID_CATHODE,
    EVENTID_ENVIRONMENT,
    EVENTID_HV,
    EVENTID_TRIGGER,
    EVENTID_TRIGGER_MODULE,
    PERIODS_S,
    SLOW_EVENT_IDS,
    SlowControlModel,
)
from cygno_online.simulate.truth import CameraTruth, FrameTruth, RunTruth

#: default run start: 2026-01-01T00:00:00Z plus 10 minutes per run number
DEFAULT_EPOCH = 1_767_225_600
TID_UINT16 = 4
TID_UINT32 = 6
#: offset (s) after the run start of each equipment's first reading
_SC_OFFSETS = {
    EVENTID_CAMERA: 0.20,
    EVENTID_TRIGGER_MODULE: 0.25,
    EVENTID_HV: 0.40,
    EVENTID_CATHODE: 0.45,
    EVENTID_ENVIRONMENT: 0.50,
}
_SC_ORDER = (
    EVENTID_HV,
    EVENTID_CATHODE,
    EVENTID_ENVIRONMENT,
    EVENTID_CAMERA,
    EVENTID_TRIGGER_MODULE,
)
_STREAM_PMT = 1 << 20
_STREAM_SC = 1 << 21


@dataclass(slots=True, frozen=True)
class SimEvent:
    """One simulated MIDAS event (BOR/EOR excluded)."""

    #: the whole event, 16-byte header included
    data: bytes
    event_id: int
    serial: int
    #: absolute event time (Unix ns)
    time_ns: int
    #: trigger events only
    truth: FrameTruth | None = None


@dataclass(slots=True)
class SimTrigger:
    """The content of one trigger event as arrays (before encoding)."""

    serial: int
    time_ns: int
    #: one (rows, cols) uint16 image per camera
    images: list[np.ndarray]
    #: DGH0 words and DIG0 samples (``None`` when the layout has no PMTs)
    dgh0: np.ndarray | None
    dig0: np.ndarray | None
    truth: FrameTruth
    banks: list[tuple[str, int, np.ndarray]] = field(default_factory=list)


class Simulator:
    """A deterministic LIME-like run. Not thread-safe: one simulator per
    thread (simulators of the same detector share its read-only maps).

    Parameters
    ----------
    layout
        ``"lime"``, ``"cygno04"``, ``"crop:SIZE"`` or a :class:`Layout`.
    seed
        event randomness (objects, noise offsets, waveforms, readings).
    run
        run number (BOR/EOR serial, ODB); also mixed into the event seeds.
    pedestal
        a pedestal run: HV off, no objects, no PMT triggers, "PED" description.
    exposure_s, readout_s
        camera exposure and readout time; a trigger every ``exposure_s + readout_s``.
    start_time
        run start, Unix seconds; ``None`` = a fixed date derived from ``run``
        (deterministic; the daemon may pass ``time.time()``).
    pmt
        write DGH0/DIG0 (False: camera banks only, like a free-running DAQ).
    rates
        object rates and sizes (:class:`Rates`); ignored for pedestal runs.
    cameras
        camera count for ``cygno04`` (default 2) and crops (default 1).
    detector_seed
        seed of the fixed detector properties (maps, hot pixels, baselines).
    sc_every_n_triggers
        time compression of the slow control (see module doc); ``None`` = real periods.
    description
        ``/Experiment/Run Parameters/Run description`` (default "S003:DATA:Fe, ..."
        or "S000:PED:..." for pedestal runs).
    keep_truth
        how many recent frame truths :meth:`frame_truth` keeps (an endless
        daemon stream must not grow without bound).
    """

    def __init__(
        self,
        layout: str | Layout = "lime",
        *,
        seed: int = 0,
        run: int = 1,
        pedestal: bool = False,
        exposure_s: float = 0.3,
        readout_s: float = 0.3,
        start_time: float | None = None,
        pmt: bool = True,
        rates: Rates | None = None,
        cameras: int | None = None,
        detector_seed: int = 0,
        sc_every_n_triggers: int | None = None,
        description: str | None = None,
        keep_truth: int = 10_000,
    ) -> None:
        self.layout = get_layout(layout, cameras=cameras)
        if exposure_s <= 0 or readout_s < 0:
            raise ConfigError(
                "simulate.exposure_s", "must be > 0 (readout_s >= 0)", value=exposure_s
            )
        if sc_every_n_triggers is not None and sc_every_n_triggers < 1:
            raise ConfigError(
                "simulate.sc_every_n_triggers", "must be >= 1", value=sc_every_n_triggers
            )
        self.seed = int(seed)
        self.run = int(run)
        self.pedestal = bool(pedestal)
        self.exposure_s = float(exposure_s)
        self.readout_s = float(readout_s)
        self.period_s = self.exposure_s + self.readout_s
        if start_time is None:
            start_time = DEFAULT_EPOCH + 600 * (self.run % 100_000)
        self.start_time = float(start_time)
        self.start_time_ns = round(self.start_time * 1e9)
        #: CYGNO-04 "time zero" (TIME bank, Unix seconds)
        self.time_zero = int(self.start_time)
        self.pmt = bool(pmt)
        self.rates = rates if rates is not None else Rates()
        self.detector_seed = int(detector_seed)
        self.sc_every_n_triggers = sc_every_n_triggers
        self.description = description
        self.keep_truth = keep_truth
        self._cams, self._bank = cam_mod.detector_models(
            self.layout.camera_shapes, self.detector_seed
        )
        self._digi = DigitizerModel(self.layout.boards, self.detector_seed) if self.pmt else None
        self._sc = SlowControlModel(self.layout.ncameras, self.pedestal, self.detector_seed)
        self._buffers = [np.empty(c.shape, np.uint16) for c in self._cams]
        self._signals = [np.zeros(c.shape, np.float32) for c in self._cams]
        self._truth: OrderedDict[int, FrameTruth] = OrderedDict()
        self._counts: dict[int, int] = {}
        self._last_time_ns = self.start_time_ns

    # ------------------------------------------------------------ truth API

    def _cam(self, camera: int) -> cam_mod.CameraModel:
        if not 0 <= camera < len(self._cams):
            raise IndexError(f"camera {camera} not in 0..{len(self._cams) - 1}")
        return self._cams[camera]

    def pedestal_map(self, camera: int = 0) -> np.ndarray:
        """Mean dark value per pixel (float32 (rows, cols), hot pixels
        included); read-only view, do not modify."""
        return self._cam(camera).pedestal

    def noise_map(self, camera: int = 0) -> np.ndarray:
        """Gaussian noise RMS per pixel before digitisation (float32; rounding
        to integer ADU adds 1/12 ADU^2 to the variance)."""
        return self._cam(camera).noise

    def hot_pixels(self, camera: int = 0) -> np.ndarray:
        """(k, 2) int64 array of hot-pixel (row, col), sorted."""
        return self._cam(camera).hot_pixels

    def frame_truth(self, serial: int) -> FrameTruth:
        """Truth of trigger event ``serial`` already generated (KeyError if not,
        or if it is older than the ``keep_truth`` most recent ones)."""
        return self._truth[serial]

    def camera_truth(self) -> list[CameraTruth]:
        return [
            CameraTruth(
                camera=c.camera,
                bank=self.layout.camera_bank(c.camera),
                shape=c.shape,
                hot_pixels=[(int(r), int(q)) for r, q in c.hot_pixels],
                pedestal_mean=float(c.pedestal.mean(dtype=np.float64)),
                noise_mean=float(c.noise.mean(dtype=np.float64)),
            )
            for c in self._cams
        ]

    def run_truth(self) -> RunTruth:
        """Truth of the trigger events generated so far (the kept ones)."""
        return RunTruth(
            layout=self.layout.name,
            seed=self.seed,
            run=self.run,
            pedestal=self.pedestal,
            start_time_ns=self.start_time_ns,
            cameras=self.camera_truth(),
            frames=list(self._truth.values()),
            event_counts=dict(self._counts),
        )

    # -------------------------------------------------------------- ODB/BOR

    def _odb(self, stop_time: float | None, counts: dict[int, int] | None) -> dict[str, Any]:
        return build_odb(
            self.layout,
            run=self.run,
            start_time=self.start_time,
            pedestal=self.pedestal,
            exposure_s=self.exposure_s,
            pmt=self.pmt,
            seed=self.seed,
            detector_seed=self.detector_seed,
            description=self.description,
            stop_time=stop_time,
            events_sent=counts,
        )

    def odb(self) -> dict[str, Any]:
        """The begin-of-run ODB (a plain nested dict)."""
        return self._odb(None, None)

    def bor(self) -> bytes:
        """The begin-of-run event (id 0x8000, serial = run, JSON ODB)."""
        from cygno_online.midas.event import EVENTID_BOR, encode_special

        payload = json.dumps(self.odb(), indent=1).encode()
        return encode_special(EVENTID_BOR, self.run, payload, time_stamp=int(self.start_time))

    def eor(self) -> bytes:
        """The end-of-run event after the events generated so far (the EOR
        ODB carries the per-equipment event counts)."""
        from cygno_online.midas.event import EVENTID_EOR, encode_special

        stop = self._last_time_ns / 1e9 + 0.5
        payload = json.dumps(self._odb(stop, dict(self._counts)), indent=1).encode()
        return encode_special(EVENTID_EOR, self.run, payload, time_stamp=int(stop))

    # --------------------------------------------------------------- events

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, self.run, *key]))
        )

    def trigger_time_ns(self, serial: int) -> int:
        return self.start_time_ns + round((serial + 1) * self.period_s * 1e9)

    def trigger(self, serial: int, *, reuse_buffers: bool = False) -> SimTrigger:
        """Generate trigger event ``serial`` as arrays (deterministic, any order).

        With ``reuse_buffers`` the images are the simulator's internal buffers
        (overwritten by the next call); otherwise fresh arrays."""
        time_ns = self.trigger_time_ns(serial)
        exposure_start_ns = time_ns - self.start_time_ns - round(self.period_s * 1e9)
        physics = not self.pedestal
        images: list[np.ndarray] = []
        objects = []
        for c in self._cams:
            out = self._buffers[c.camera] if reuse_buffers else None
            img, objs = cam_mod.render_frame(
                self._rng(serial, c.camera),
                c,
                self._bank,
                self.rates,
                physics=physics,
                signal=self._signals[c.camera],
                out=out,
            )
            images.append(img)
            objects += objs
        banks: list[tuple[str, int, np.ndarray]] = [
            (self.layout.camera_bank(i), TID_UINT16, img) for i, img in enumerate(images)
        ]
        dgh = dig = None
        n_pmt = 0
        if self._digi is not None:
            rng = self._rng(serial, _STREAM_PMT)
            trigs = []
            for o in objects:
                t = float(rng.uniform(0.0, self.exposure_s * 1e9))
                trigs.append(trigger_for(o, self._cams[o.camera].shape, t))
            dgh, dig = self._digi.render(rng, trigs, exposure_start_ns, self.layout.dgh_layout)
            n_pmt = min(len(trigs), 128)
            banks += [("DGH0", TID_UINT32, dgh), ("DIG0", TID_UINT16, dig)]
        else:
            for o in objects:
                o.pmt_triggers = 0
        if self.layout.time_bank and serial == 0:
            banks.append(("TIME", TID_UINT32, np.array([self.time_zero], np.uint32)))
        truth = FrameTruth(serial=serial, time_ns=time_ns, objects=objects, n_pmt_triggers=n_pmt)
        self._remember(truth)
        return SimTrigger(serial, time_ns, images, dgh, dig, truth, banks)

    def _header_stamp(self, time_ns: int, trigger: bool) -> int:
        if trigger and self.layout.time_bank:
            # CYGNO-04: milliseconds since time zero
            return round((time_ns / 1e6) - self.time_zero * 1000) & 0xFFFFFFFF
        return time_ns // 1_000_000_000

    def _remember(self, truth: FrameTruth) -> None:
        self._truth[truth.serial] = truth
        while len(self._truth) > self.keep_truth:
            self._truth.popitem(last=False)

    def _schedule(self, n_triggers: int | None) -> Iterator[tuple[int, int, int]]:
        """(time_ns, event_id, index) in time order; index = trigger serial
        for triggers, the reading number for slow control."""
        period_ns = round(self.period_s * 1e9)
        if self.sc_every_n_triggers is not None:
            n_every = self.sc_every_n_triggers
            k = 0
            while n_triggers is None or k < n_triggers:
                t_trig = self.trigger_time_ns(k)
                if k % n_every == 0:
                    base = t_trig - period_ns // 2
                    for j, eid in enumerate(_SC_ORDER):
                        yield base + j * 1_000_000, eid, k // n_every
                yield t_trig, EVENTID_TRIGGER, k
                k += 1
            return
        next_sc = {
            eid: (self.start_time_ns + round(_SC_OFFSETS[eid] * 1e9), 0) for eid in SLOW_EVENT_IDS
        }
        k = 0
        while n_triggers is None or k < n_triggers:
            t_trig = self.trigger_time_ns(k)
            eid = min(_SC_ORDER, key=lambda e: next_sc[e][0])
            t_sc, j = next_sc[eid]
            if t_sc == t_trig:
                # keep event times strictly increasing
                t_sc -= 1000
            if t_sc < t_trig:
                yield t_sc, eid, j
                next_sc[eid] = (t_sc + round(PERIODS_S[eid] * 1e9), j + 1)
            else:
                yield t_trig, EVENTID_TRIGGER, k
                k += 1

    def events(self, n_triggers: int | None = None) -> Iterator[SimEvent]:
        """The run's events in time order (BOR/EOR excluded) up to and
        including trigger ``n_triggers - 1``; endless when ``None``. Each call
        starts the run from the beginning."""
        from cygno_online.midas.event import BANK16, BANK32, encode_event

        self._counts = {}
        self._last_time_ns = self.start_time_ns
        serials: dict[int, int] = {}
        pmt_since = 0
        last_tmod_ns = self.start_time_ns
        for time_ns, eid, index in self._schedule(n_triggers):
            serial = serials.get(eid, 0)
            serials[eid] = serial + 1
            if eid == EVENTID_TRIGGER:
                trig = self.trigger(index, reuse_buffers=True)
                pmt_since += trig.truth.n_pmt_triggers
                data = encode_event(
                    EVENTID_TRIGGER,
                    serial,
                    trig.banks,
                    time_stamp=self._header_stamp(time_ns, True),
                    bank_format=BANK32,
                )
                truth: FrameTruth | None = trig.truth
            else:
                rate = 0.0
                if eid == EVENTID_TRIGGER_MODULE:
                    dt = (time_ns - last_tmod_ns) / 1e9
                    rate = pmt_since / dt if dt > 0 else 0.0
                    pmt_since = 0
                    last_tmod_ns = time_ns
                banks = self._sc.banks(eid, self._rng(_STREAM_SC, eid, index), time_ns / 1e9, rate)
                data = encode_event(
                    eid,
                    serial,
                    banks,
                    time_stamp=self._header_stamp(time_ns, False),
                    bank_format=BANK16,
                )
                truth = None
            self._counts[eid] = serials[eid]
            self._last_time_ns = time_ns
            yield SimEvent(data, eid, serial, time_ns, truth)

    def run_events(self, n_triggers: int) -> Iterator[bytes]:
        """BOR, the events of :meth:`events`, EOR: the bytes of a MIDAS file."""
        yield self.bor()
        for ev in self.events(n_triggers):
            yield ev.data
        yield self.eor()


def write_run(
    path: str | Path,
    *,
    events: int,
    layout: str | Layout = "lime",
    pedestal: bool = False,
    seed: int = 0,
    run: int = 1,
    compression: str = "auto",
    truth_path: str | Path | None = None,
    **options: Any,
) -> RunTruth:
    """Write a simulated run of ``events`` trigger events (plus slow control,
    BOR, EOR) to the MIDAS file ``path`` (compression from the extension with
    ``"auto"``: .mid, .mid.gz, .mid.lz4) and return its truth (also written as
    JSON to ``truth_path`` if given). ``options`` go to :class:`Simulator`."""
    from cygno_online.midas.writer import MidasWriter

    if events < 0:
        raise ConfigError("simulate.events", "must be >= 0", value=events)
    sim = Simulator(layout, seed=seed, run=run, pedestal=pedestal, **options)
    with MidasWriter(path, compression=compression) as w:
        for data in sim.run_events(events):
            w.write_event(data)
    truth = sim.run_truth()
    truth.path = str(path)
    if truth_path is not None:
        truth.write_json(truth_path)
    return truth
