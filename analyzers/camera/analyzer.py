"""The ``camera`` analyzer: per-frame chain, pedestal handling, run summary.

One :class:`CameraState` per camera key (``cam0``, ``cam1``...) holds all
mutable state of that camera; the pipeline calls ``process`` for different
cameras of one event from different threads, never for the same camera twice
at once, so states need no locking (only their creation is locked).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cygno_online.analyzers.camera.chain import (
    NBOXES,
    CameraConfig,
    FrameChain,
    FrameResult,
    derive_maps,
    describe_result,
    warm_up_kernels,
)
from cygno_online.analyzers.camera.classify import ALPHA, CLASS_NAMES, FE55, MUON, OTHER
from cygno_online.analyzers.camera.clusters import ClusterTable, fit_peak
from cygno_online.analyzers.camera.pedestals import (
    PedestalAccumulator,
    PedestalEstimator,
    PedestalLoader,
    PedestalMaps,
    PedestalStore,
)

from cygno_online.analysis.catalogue import (
    CatalogueContext,
    SeriesSpec,
    fields_from_units,
)
from cygno_online.analysis.outputs import Display, Metric, Output
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, Flow
from cygno_online.decode.items import CameraFrame, RunInfo
from cygno_online.params import Params

log = logging.getLogger(__name__)

#: units of the ``camera`` metric fields
CAMERA_UNITS: dict[str, str] = {
    "raw_mean": "ADU",
    "raw_rms": "ADU",
    "ped_mean": "ADU",
    "ped_rms": "ADU",
    "n_over_threshold": "px",
    "frac_over_threshold": "",
    "frac_over_threshold_noise": "",
    "n_clipped": "px",
    "hot_pixels": "px",
    "spark": "",
    "clustered": "",
    "n_clusters": "",
    "clusters_integral": "ADU",
    "pedestal_source": "",
    "pedestal_run": "",
    "pedestal_age_days": "days",
    "pedestal_too_old": "",
    "pedestal_map_run": "",
    "process_ms": "ms",
    "analysed_late": "",
}
for _k in range(NBOXES):
    for _q in ("raw_mean", "raw_rms", "ped_mean", "ped_rms"):
        CAMERA_UNITS[f"box{_k}_{_q}"] = "ADU"
    CAMERA_UNITS[f"box{_k}_light"] = ""

#: types of the ``camera`` fields that are not float (metric catalogue)
CAMERA_TYPES: dict[str, str] = {
    "n_over_threshold": "int",
    "n_clipped": "int",
    "hot_pixels": "int",
    "spark": "bool",
    "clustered": "bool",
    "n_clusters": "int",
    "pedestal_source": "string",
    "pedestal_run": "bool",
    "pedestal_too_old": "bool",
    "pedestal_map_run": "int",
    "analysed_late": "bool",
    **{f"box{_k}_light": "bool" for _k in range(NBOXES)},
}
CAMERA_DESCRIPTIONS: dict[str, str] = {
    **{
        f"box{_k}_light": "a cluster (its light) lies in this box: its mean/RMS are not the pedestal's"
        for _k in range(NBOXES)
    },
    "frac_over_threshold": "pixels over the zero-suppression threshold / pixels in the acceptance",
    "frac_over_threshold_noise": "the same fraction expected from Gaussian noise alone at nsigma",
    "analysed_late": "second point of a frame seen before its pedestal estimate was ready",
    "spark": "spark veto: sum(raw) > 2*100*npix + 9e6",
    "pedestal_age_days": "age of the pedestal map in use (stored maps only)",
    "pedestal_source": "store, estimate or none",
    "process_ms": "analysis time of the frame",
}

#: units of the per-frame ``clusters`` metric fields
CLUSTERS_UNITS: dict[str, str] = {
    "n_clusters": "",
    "n_fe55": "",
    "n_alpha": "",
    "n_muon": "",
    "n_other": "",
    "integral_total": "ADU",
    "fe55_integral_mean": "ADU",
    # mean cluster size of the image: what the run-quality cluster-size check
    # compares with the reference without per-cluster rows in the database
    "size_mean": "px",
}

#: units of the optional per-cluster ``clusters`` rows (tag ``cluster``)
CLUSTER_ROW_UNITS: dict[str, str] = {
    "class": "",
    "integral": "ADU",
    "nhits": "px",
    "size": "px",
    "row": "px",
    "col": "px",
    "length": "px",
    "width": "px",
    "length_mm": "mm",
    "angle": "deg",
    "rms": "ADU",
    "slimness": "",
    "density": "ADU",
    "track_length": "px",
    "fit_rms": "px",
}


#: end of run: how long to wait for a pedestal estimate still running
ESTIMATE_WAIT_S = 120.0


@dataclass(slots=True)
class RunContext:
    run: RunInfo
    pedestal: bool
    store: PedestalStore | None


class _RunStats:
    """Run-scoped accumulators of one camera."""

    def __init__(self, cfg: CameraConfig) -> None:
        self.n_frames = 0
        self.n_clustered = 0
        self.n_no_pedestal = 0
        self.n_sparks = 0
        self.n_overflow = 0
        #: frames analysed with the estimated pedestal after it was ready
        self.n_late = 0
        #: frames seen while estimating beyond pedestal.max_deferred
        self.n_deferred_overflow = 0
        self.estimate_s: float | None = None
        self.img_sum = np.zeros(4)
        self.n_img_ped = 0
        self.box_sum = np.zeros((NBOXES, 4))
        self.class_counts = np.zeros(len(CLASS_NAMES), np.int64)
        self.integral_sum = 0.0
        self.hot_last = 0
        self.hot_max = 0
        self.over_sum = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.proc_ms: list[float] = []
        self.hist_edges = np.geomspace(cfg.hist_min, cfg.hist_max, cfg.hist_bins + 1)
        self.hist = np.zeros(cfg.hist_bins, np.int64)
        self.hist_under = 0
        self.hist_over = 0
        self.fe55_edges = np.linspace(
            cfg.cuts.fe55_integral_min, cfg.cuts.fe55_integral_max, cfg.fe55_bins + 1
        )
        self.fe55_hist = np.zeros(cfg.fe55_bins, np.int64)
        n = cfg.scatter_max
        self.sc_x = np.zeros(n, np.float32)
        self.sc_y = np.zeros(n, np.float32)
        self.sc_c = np.zeros(n, np.int8)
        self.sc_next = 0
        self.sc_n = 0

    def add_clusters(self, table: ClusterTable) -> None:
        if not len(table):
            return
        integ = table.column("integral")
        self.class_counts += np.bincount(table.classes, minlength=len(CLASS_NAMES))
        self.integral_sum += float(integ.sum())
        idx = np.searchsorted(self.hist_edges, integ, side="right") - 1
        self.hist_under += int(np.count_nonzero(idx < 0))
        self.hist_over += int(np.count_nonzero(idx >= len(self.hist)))
        ok = (idx >= 0) & (idx < len(self.hist))
        self.hist += np.bincount(idx[ok], minlength=len(self.hist))
        fe = integ[table.classes == FE55]
        if fe.size:
            self.fe55_hist += np.histogram(fe, self.fe55_edges)[0]
        n = self.sc_x.size
        if n:
            length = table.column("length")
            for i in range(min(len(table), n)):
                k = self.sc_next
                self.sc_x[k] = length[i]
                self.sc_y[k] = integ[i]
                self.sc_c[k] = table.classes[i]
                self.sc_next = (k + 1) % n
            self.sc_n = min(self.sc_n + len(table), n)


class CameraState:
    """All mutable state of one camera."""

    def __init__(self, camera: str, cfg: CameraConfig, ctx: RunContext) -> None:
        self.camera = camera
        self.cfg = cfg
        self.chain: FrameChain | None = None
        #: last pedestal loaded from the store (reused across runs if still newest)
        self.maps_cache: PedestalMaps | None = None
        self.begin_run(ctx)

    # -- life cycle ------------------------------------------------------------
    def begin_run(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.stats = _RunStats(self.cfg)
        self.pedestal_checked = False
        self.accumulator = PedestalAccumulator() if ctx.pedestal else None
        self.estimator: PedestalEstimator | None = None
        #: a stored map being loaded (and its cuts derived) in the background
        self.loader: PedestalLoader | None = None
        #: frames seen while estimating or loading, analysed once the map is there
        self.deferred: list[tuple[CameraFrame, np.ndarray]] = []
        self.stored: dict[str, Any] | None = None
        self.frame_count = 0
        if self.chain is not None:
            self.chain.set_pedestal(None)
            if not ctx.pedestal:
                # the shape is known from the last run: find the map and start
                # loading it now, ahead of the first frame
                self._resolve_pedestal(self.chain)

    def set_config(self, cfg: CameraConfig) -> None:
        """New parameters (SIGHUP): rebuilt derived maps, kept pedestal; the
        run histograms restart only if their binning changed."""
        old = self.cfg
        self.cfg = cfg
        if self.chain is not None:
            maps = self.chain.maps
            self.chain = FrameChain(cfg, self.chain.shape, self.camera)
            if maps is not None:
                self.chain.set_pedestal(maps)
        binning = (
            "hist_bins",
            "hist_min",
            "hist_max",
            "fe55_bins",
            "scatter_max",
        )
        if any(getattr(old, k) != getattr(cfg, k) for k in binning) or old.cuts != cfg.cuts:
            fresh = _RunStats(cfg)
            for k in (
                "n_frames",
                "n_clustered",
                "n_no_pedestal",
                "n_sparks",
                "n_overflow",
                "n_late",
                "n_deferred_overflow",
                "estimate_s",
            ):
                setattr(fresh, k, getattr(self.stats, k))
            self.stats = fresh

    def _resolve_pedestal(self, chain: FrameChain) -> None:
        self.pedestal_checked = True
        store = self.ctx.store
        exposure = self.ctx.run.exposure_s
        maps = None
        entry = store.find(self.camera, chain.shape, exposure) if store is not None else None
        if entry is not None:
            cached = self.maps_cache
            if cached is not None and cached.path == entry["path"]:
                maps = cached
            else:
                # decompressing a map takes seconds: in the background, with
                # its cuts; frames meanwhile are kept and analysed once it is in
                assert store is not None
                cfg = self.cfg
                self.loader = PedestalLoader(
                    store, entry, lambda m: derive_maps(m, cfg.nsigma, cfg.hot_nsigma)
                )
                return
        self._use_cached_or_estimate(chain, maps)

    def _use_cached_or_estimate(self, chain: FrameChain, maps: PedestalMaps | None) -> None:
        exposure = self.ctx.run.exposure_s
        store = self.ctx.store
        cached = self.maps_cache
        if (
            maps is None
            and cached is not None
            and cached.shape == chain.shape
            and (
                exposure is None
                or cached.exposure_s is None
                or abs(cached.exposure_s - exposure) < 5e-4
            )
        ):
            # a pedestal run of this process that could not be stored (no
            # store, saving disabled): better than an estimate from signal frames
            maps = cached
        if maps is not None:
            chain.set_pedestal(maps)
            self.maps_cache = maps
            log.info(
                "run %s camera %s: pedestal of run %s (%s, %.2f days old; "
                "%d/%d rows with mean and cut in one byte)",
                self.ctx.run.run,
                self.camera,
                maps.run,
                maps.path,
                maps.age_days(self.ctx.run.start_time_ns),
                chain.packed_rows,
                chain.shape[0],
            )
            return
        self.estimator = PedestalEstimator(
            self.cfg.pedestal_estimate_frames, self.cfg.pedestal_estimate_clip_nsigma
        )
        where = store.root if store is not None else "(no pedestal store configured)"
        log.warning(
            "run %s camera %s: no pedestal map for %dx%d exposure %s in %s; "
            "estimating one from the first %d frames",
            self.ctx.run.run,
            self.camera,
            chain.shape[0],
            chain.shape[1],
            exposure,
            where,
            self.cfg.pedestal_estimate_frames,
        )

    # -- per frame -------------------------------------------------------------
    def process(self, frame: CameraFrame, flow: Flow) -> list[Output]:
        t0 = time.perf_counter()
        raw = frame.image
        ctx = frame.ctx
        if not isinstance(raw, np.ndarray) or raw.ndim != 2 or raw.dtype != np.uint16:
            raise ValueError(
                f"run {ctx.run} serial {ctx.serial} bank {frame.bank}: camera image must be "
                f"a 2-D uint16 array, got {getattr(raw, 'dtype', type(raw))} "
                f"{getattr(raw, 'shape', '')}"
            )
        if not raw.flags.c_contiguous:
            raw = np.ascontiguousarray(raw)
        shape = (int(raw.shape[0]), int(raw.shape[1]))
        cfg = self.cfg
        chain = self.chain
        if chain is None or chain.shape != shape:
            if chain is not None:
                log.warning(
                    "camera %s: frame shape changed %s -> %s", self.camera, chain.shape, shape
                )
            chain = self.chain = FrameChain(cfg, shape, self.camera)
            self.pedestal_checked = False
            self.estimator = None
            self.loader = None
            self.stats.n_deferred_overflow += len(self.deferred)
            self.deferred = []
            if self.accumulator is not None and self.accumulator.n:
                self.accumulator = PedestalAccumulator()
        late: list[Output] = []
        if self.ctx.pedestal:
            assert self.accumulator is not None
            self.accumulator.add(raw)
            res = chain.raw_only(raw, "pedestal_run")
        else:
            if not self.pedestal_checked:
                self._resolve_pedestal(chain)
            if chain.maps is None and self.loader is not None:
                late = self._install_loaded(chain)
            if chain.maps is None and self.estimator is not None:
                late += self._install_estimate(chain)
            if chain.maps is not None and self.deferred:
                # kept frames resumed from a checkpoint, the map already there
                deferred, self.deferred = self.deferred, []
                late += self._analyse_late(chain, deferred, chain.maps.source, count_late=False)
            if chain.maps is None:
                res = chain.raw_only(raw, "loading" if self.loader is not None else "estimating")
                self._defer(raw, frame)
            else:
                res = chain.process(
                    raw,
                    run=ctx.run,
                    serial=ctx.serial,
                    time_ns=ctx.time_ns,
                    source=chain.maps.source,
                )
        proc_ms = (time.perf_counter() - t0) * 1e3
        table = res.clusters or ClusterTable.empty(
            self.camera, ctx.run, ctx.serial, ctx.time_ns, cfg.pixel_mm
        )
        flow["clusters"] = table
        flow["camera"] = describe_result(res)
        self._accumulate(frame, res, table, proc_ms)
        return late + self._outputs(frame, raw, res, table, proc_ms)

    def _defer(self, raw: np.ndarray, frame: CameraFrame) -> None:
        """A frame seen without a pedestal: into the estimate while it
        collects frames (then the estimate starts in the background), else
        kept for the late analysis while the estimate runs (at most
        ``pedestal.max_deferred`` copies; beyond that the frame keeps its raw
        statistics only and counts as without pedestal)."""
        if self.loader is not None:
            if len(self.deferred) < self.cfg.pedestal_max_deferred:
                self.deferred.append((frame, np.array(raw, dtype=np.uint16, copy=True)))
            else:
                self.stats.n_deferred_overflow += 1
                self.stats.n_no_pedestal += 1
            return
        est = self.estimator
        assert est is not None
        if not est.started:
            if est.add(raw):
                self._start_estimate(frame)
            self.deferred.append((frame, est.frames[-1]))
        elif len(self.deferred) - est.n < self.cfg.pedestal_max_deferred:
            self.deferred.append((frame, np.array(raw, dtype=np.uint16, copy=True)))
        else:
            self.stats.n_deferred_overflow += 1

    def _install_loaded(self, chain: FrameChain, wait_s: float = 0.0) -> list[Output]:
        """If the background load is done: install the map and analyse the
        frames seen meanwhile with it (``frames_analysed_late``); if it
        failed, fall back as without a stored map."""
        ld = self.loader
        assert ld is not None
        if not (ld.ready() or (wait_s > 0 and ld.wait(wait_s))):
            return []
        self.loader = None
        failed = False
        try:
            maps = ld.result()
            if maps.shape != chain.shape:
                raise ValueError(f"map shape {maps.shape} != frame shape {chain.shape}")
        except Exception as exc:
            log.warning(
                "camera %s: unreadable pedestal %s: %s", self.camera, ld.entry.get("path"), exc
            )
            # the frames kept meanwhile now wait like frames without a map
            failed = True
            self.stats.n_no_pedestal += len(self.deferred)
            self._use_cached_or_estimate(chain, None)
            if chain.maps is None:
                # the frames kept meanwhile feed the estimate (then are analysed
                # with it): it is made of the run's first frames whatever the
                # load took, as if there had been no map at all
                self._feed_estimate()
                return []
        else:
            self._use_cached_or_estimate(chain, maps)
            log.info(
                "run %s camera %s: pedestal loaded in %.2f s in the background; "
                "analysing the %d frames seen meanwhile",
                self.ctx.run.run,
                self.camera,
                ld.seconds or 0.0,
                len(self.deferred),
            )
        deferred, self.deferred = self.deferred, []
        # with the map it would have had at once (same results): not counted
        # as late, so a run's summary does not depend on how long loading took
        return self._analyse_late(chain, deferred, chain.maps.source, count_late=failed)

    def _feed_estimate(self) -> None:
        """The frames kept so far go into the estimate, in order, until it has
        its frames (then it starts); the rest stay kept for the late analysis."""
        est = self.estimator
        assert est is not None
        kept: list[tuple[CameraFrame, np.ndarray]] = []
        for fr, img in self.deferred:
            if est.started:
                kept.append((fr, img))
                continue
            full = est.add(img)
            kept.append((fr, est.frames[-1]))
            if full:
                self._start_estimate(fr)
        self.deferred = kept

    def _start_estimate(self, frame: CameraFrame) -> None:
        est = self.estimator
        assert est is not None
        est.start()
        log.info(
            "run %s camera %s: estimating the pedestal from %d frames in the background",
            frame.ctx.run,
            self.camera,
            est.n,
        )

    # -- run checkpoint: the frames waiting for a map ----------------------------
    def export_pending(self) -> dict[str, Any] | None:
        """The frames seen without a map and not analysed yet (kept while a map
        loads or is estimated) and the estimate's frames, so that a daemon
        restart in the first frames of a run analyses them like an
        uninterrupted run would (at most estimate_frames + max_deferred
        frames, only while a map is pending)."""
        if not self.deferred and (self.estimator is None or self.estimator.n == 0):
            return None
        assert self.chain is not None
        est = self.estimator
        stack = est.stack if est is not None and est.n else None
        frames: list[tuple[Any, int, str, Any]] = []
        for fr, img in self.deferred:
            ref: Any = np.array(img, copy=True)
            if stack is not None and img.base is stack:
                # a view into the estimate's stack: saved once, with the stack
                ref = int(
                    (img.__array_interface__["data"][0] - stack.__array_interface__["data"][0])
                    // img.nbytes
                )
            frames.append((fr.ctx, fr.camera, fr.bank, ref))
        return {
            "shape": tuple(self.chain.shape),
            "frames": frames,
            "estimate": None if stack is None else np.array(stack[: est.n], copy=True),
            "estimate_started": bool(est is not None and est.started),
        }

    def import_pending(self, pending: dict[str, Any]) -> None:
        """Take over what :meth:`export_pending` saved: the map is looked up
        (loaded) again or the estimate resumed or rerun from the same frames;
        the kept frames are analysed once it is in, as without a restart."""
        shape = tuple(int(x) for x in pending["shape"])
        stack = pending.get("estimate")
        frames = pending.get("frames") or []
        for _ctx, _cam, _bank, ref in frames:
            img = stack[ref] if isinstance(ref, int) else ref
            if not isinstance(img, np.ndarray) or img.dtype != np.uint16 or img.shape != shape:
                raise ValueError(f"{self.camera}: a kept frame does not match shape {shape}")
        if self.chain is None or self.chain.shape != shape:
            self.chain = FrameChain(self.cfg, shape, self.camera)  # type: ignore[arg-type]
        chain = self.chain
        self.loader = None
        self.pedestal_checked = True
        self.deferred = []
        if stack is not None:
            # the estimate of the run's first frames, exactly as it was (not
            # looked up again: the run goes on with the pedestal it started with)
            self.estimator = PedestalEstimator(
                self.cfg.pedestal_estimate_frames, self.cfg.pedestal_estimate_clip_nsigma
            )
        else:
            self.estimator = None
        for ctx, cam, bank, ref in frames:
            img = stack[ref] if isinstance(ref, int) else ref
            self.deferred.append((CameraFrame(ctx, cam, bank, img), img))
        if self.estimator is not None:
            self._feed_estimate()
            if pending.get("estimate_started") and not self.estimator.started:
                self.estimator.n_frames = self.estimator.n  # fewer frames configured now
                self._start_estimate(self.deferred[-1][0])
        else:
            self._resolve_pedestal(chain)
            if chain.maps is None and self.estimator is not None:
                # the map is gone from the store: the frames kept while it
                # loaded wait like frames without a map, as after a failed load
                self.stats.n_no_pedestal += len(self.deferred)
                self._feed_estimate()

    def _install_estimate(self, chain: FrameChain, wait_s: float = 0.0) -> list[Output]:
        """If the background estimate is done: install it and analyse the
        frames seen meanwhile with it (their outputs carry their own run,
        serial and time; counted as ``frames_analysed_late``)."""
        est = self.estimator
        assert est is not None
        if not est.started or not (est.ready() or (wait_s > 0 and est.wait(wait_s))):
            return []
        self.estimator = None
        deferred, self.deferred = self.deferred, []
        try:
            mean, sigma = est.result()
        except Exception as exc:
            log.error("camera %s: pedestal estimate failed: %s", self.camera, exc)
            return []
        first = deferred[0][0].ctx if deferred else None
        chain.set_pedestal(
            PedestalMaps(
                self.camera,
                mean,
                sigma,
                est.n,
                first.run if first else self.ctx.run.run,
                first.time_ns if first else self.ctx.run.start_time_ns,
                self.ctx.run.exposure_s,
                source="estimated",
            )
        )
        self.stats.estimate_s = est.seconds
        log.info(
            "run %s camera %s: pedestal estimated from %d frames in %.2f s (median sigma "
            "%.2f ADU); analysing the %d frames seen meanwhile",
            self.ctx.run.run,
            self.camera,
            est.n,
            est.seconds or 0.0,
            float(np.median(sigma)),
            len(deferred),
        )
        return self._analyse_late(chain, deferred, "estimated")

    def _analyse_late(
        self,
        chain: FrameChain,
        deferred: list[tuple[CameraFrame, np.ndarray]],
        source: str,
        count_late: bool = True,
    ) -> list[Output]:
        out: list[Output] = []
        for fr, img in deferred:
            t0 = time.perf_counter()
            c = fr.ctx
            res = chain.process(img, run=c.run, serial=c.serial, time_ns=c.time_ns, source=source)
            res.late = True
            proc_ms = (time.perf_counter() - t0) * 1e3
            table = res.clusters or ClusterTable.empty(
                self.camera, c.run, c.serial, c.time_ns, self.cfg.pixel_mm
            )
            self._accumulate(fr, res, table, proc_ms, late=True, count_late=count_late)
            produced = self._outputs(fr, img, res, table, proc_ms)
            if c.point_ns:
                # the host stamps only the current event's points with their
                # point time; these belong to an earlier event: its own point
                # time, as its first point had (the same on every replay,
                # however late the map came)
                for o in produced:
                    if isinstance(o, Metric) and o.time_ns == c.time_ns and o.serial == c.serial:
                        o.time_ns = c.point_ns
            out.extend(produced)
        return out

    def _accumulate(
        self,
        frame: CameraFrame,
        res: FrameResult,
        table: ClusterTable,
        proc_ms: float,
        late: bool = False,
        count_late: bool = True,
    ) -> None:
        """Run statistics of one analysed frame; ``late`` = a second analysis
        of a frame first seen without pedestal (its raw statistics and frame
        count are already in); ``count_late`` False for frames kept only
        while their stored map loaded (never counted as without pedestal)."""
        st = self.stats
        if late:
            if count_late:
                st.n_no_pedestal -= 1
                st.n_late += 1
        else:
            st.n_frames += 1
            t = frame.ctx.time_ns
            st.first_ns = t if st.first_ns is None else min(st.first_ns, t)
            st.last_ns = t if st.last_ns is None else max(st.last_ns, t)
            st.n_sparks += int(res.spark)
            st.img_sum[0] += res.raw_mean
            st.img_sum[1] += res.raw_rms
            st.box_sum[:, :2] += res.boxes[:, :2]
        st.n_overflow += int(res.overflow)
        st.n_clustered += int(res.clustered)
        if res.pedestal_source == "estimating":
            st.n_no_pedestal += 1
        if res.ped_mean is not None:
            st.n_img_ped += 1
            st.img_sum[2] += res.ped_mean
            st.img_sum[3] += res.ped_rms or 0.0
            st.box_sum[:, 2:] += res.boxes[:, 2:]
            st.over_sum += res.n_over_threshold or 0
        if res.hot_pixels is not None:
            st.hot_last = res.hot_pixels
            st.hot_max = max(st.hot_max, res.hot_pixels)
        if len(st.proc_ms) < 100_000:
            st.proc_ms.append(proc_ms)
        st.add_clusters(table)

    def _pedestal_fields(self, time_ns: int) -> dict[str, Any]:
        maps = self.chain.maps if self.chain is not None else None
        if maps is None or maps.source != "store":
            return {}
        age = maps.age_days(time_ns)
        return {
            "pedestal_age_days": float(age),
            "pedestal_too_old": bool(age > self.cfg.pedestal_max_age_days),
            "pedestal_map_run": int(maps.run),
        }

    def _outputs(
        self,
        frame: CameraFrame,
        raw: np.ndarray,
        res: FrameResult,
        table: ClusterTable,
        proc_ms: float,
    ) -> list[Output]:
        cfg = self.cfg
        ctx = frame.ctx
        tags = {"camera": self.camera}
        fields: dict[str, Any] = {
            "raw_mean": float(res.raw_mean),
            "raw_rms": float(res.raw_rms),
            "n_clipped": int(res.n_clipped),
            "spark": bool(res.spark),
            "clustered": bool(res.clustered),
            "n_clusters": len(table),
            "clusters_integral": float(table.column("integral").sum()) if len(table) else 0.0,
            "pedestal_source": res.pedestal_source,
            "pedestal_run": bool(self.ctx.pedestal),
            "process_ms": float(proc_ms),
        }
        if res.late:
            # a second point for this serial: the frame's analysis with the
            # pedestal estimated after it was first seen
            fields["analysed_late"] = True
        for k in range(NBOXES):
            fields[f"box{k}_raw_mean"] = float(res.boxes[k, 0])
            fields[f"box{k}_raw_rms"] = float(res.boxes[k, 1])
        if res.ped_mean is not None:
            fields["ped_mean"] = float(res.ped_mean)
            fields["ped_rms"] = float(res.ped_rms or 0.0)
            fields["n_over_threshold"] = int(res.n_over_threshold or 0)
            # over the acceptance (where zero suppression is counted), beside
            # what Gaussian noise alone passes at this nsigma (9.7 % at 1.3)
            fields["frac_over_threshold"] = float(
                (res.n_over_threshold or 0) / max(self.chain.n_accepted, 1)
            )
            fields["frac_over_threshold_noise"] = self.chain.noise_fraction
            fields["hot_pixels"] = int(res.hot_pixels or 0)
            for k in range(NBOXES):
                fields[f"box{k}_ped_mean"] = float(res.boxes[k, 2])
                fields[f"box{k}_ped_rms"] = float(res.boxes[k, 3])
        if res.clustered:
            # which boxes hold a cluster: a track's light moves a box's mean
            # and RMS, and the pedestal check must not call that a drift
            for k, lit in enumerate(self.chain.boxes_with_clusters(table)):
                fields[f"box{k}_light"] = lit
        fields.update(self._pedestal_fields(ctx.time_ns))
        units = {k: CAMERA_UNITS[k] for k in fields}
        out: list[Output] = [
            Metric("camera", ctx.time_ns, ctx.run, ctx.serial, fields, dict(tags), units)
        ]
        if res.clustered:
            cf: dict[str, Any] = {
                "n_clusters": len(table),
                "n_fe55": table.count(FE55),
                "n_alpha": table.count(ALPHA),
                "n_muon": table.count(MUON),
                "n_other": table.count(OTHER),
                "integral_total": float(table.column("integral").sum()) if len(table) else 0.0,
            }
            fe = table.column("integral")[table.classes == FE55]
            if fe.size:
                cf["fe55_integral_mean"] = float(fe.mean())
            if len(table):
                cf["size_mean"] = float(table.column("size").mean())
            out.append(
                Metric(
                    "clusters",
                    ctx.time_ns,
                    ctx.run,
                    ctx.serial,
                    cf,
                    dict(tags),
                    {k: CLUSTERS_UNITS[k] for k in cf},
                )
            )
            if cfg.per_cluster_metrics:
                for i, rec in enumerate(table.records(cfg.max_cluster_metrics)):
                    rf = {k: rec[k] for k in CLUSTER_ROW_UNITS}
                    out.append(
                        Metric(
                            "clusters",
                            ctx.time_ns,
                            ctx.run,
                            ctx.serial,
                            rf,
                            {"camera": self.camera, "cluster": str(i)},
                            dict(CLUSTER_ROW_UNITS),
                        )
                    )
        self.frame_count += 1
        if (self.frame_count - 1) % cfg.display_every == 0 and self.chain is not None:
            out.extend(self._displays(frame, raw, res, table))
        return out

    def _displays(
        self, frame: CameraFrame, raw: np.ndarray, res: FrameResult, table: ClusterTable
    ) -> list[Display]:
        ctx = frame.ctx
        st = self.stats
        assert self.chain is not None
        img, what, scale = self.chain.display_image(raw, res)
        boxes = []
        if len(table):
            f = table.features
            for i in range(len(table)):
                boxes.append(
                    {
                        "row0": float(f[i, 5] / scale),
                        "col0": float(f[i, 7] / scale),
                        "row1": float(f[i, 6] / scale),
                        "col1": float(f[i, 8] / scale),
                        "class": CLASS_NAMES[int(table.classes[i])],
                    }
                )
        cam = self.camera
        n = st.sc_n
        order = (np.arange(n) + (st.sc_next if n == st.sc_x.size else 0)) % max(st.sc_x.size, 1)
        return [
            Display(
                "image",
                f"camera/{cam}/frame",
                ctx.run,
                ctx.serial,
                ctx.time_ns,
                {"image": img},
                {
                    "scale": scale,
                    "shows": what,
                    "units": "ADU",
                    "shape": list(raw.shape),
                    "boxes": boxes,
                    "spark": bool(res.spark),
                },
            ),
            Display(
                "histogram",
                f"clusters/{cam}/integral",
                ctx.run,
                ctx.serial,
                ctx.time_ns,
                {"counts": st.hist.copy(), "edges": st.hist_edges},
                {
                    "units": "ADU",
                    "log_x": True,
                    "underflow": st.hist_under,
                    "overflow": st.hist_over,
                    "entries": int(st.hist.sum()),
                },
            ),
            Display(
                "histogram",
                f"clusters/{cam}/fe55_integral",
                ctx.run,
                ctx.serial,
                ctx.time_ns,
                {"counts": st.fe55_hist.copy(), "edges": st.fe55_edges},
                {"units": "ADU", "entries": int(st.fe55_hist.sum())},
            ),
            Display(
                "scatter",
                f"clusters/{cam}/length_integral",
                ctx.run,
                ctx.serial,
                ctx.time_ns,
                {"x": st.sc_x[order], "y": st.sc_y[order], "class": st.sc_c[order]},
                {"x": "length (px)", "y": "integral (ADU)", "classes": list(CLASS_NAMES)},
            ),
        ]

    # -- end of run ------------------------------------------------------------
    def finish_run(self) -> list[Output]:
        """The run ended with frames waiting for their map: wait for it
        (bounded: ESTIMATE_WAIT_S) and analyse them, outputs included, so the
        run's points and summary do not depend on how long the map took."""
        out: list[Output] = []
        if self.ctx.pedestal or self.chain is None:
            return out
        if self.loader is not None:
            out += self._install_loaded(self.chain, wait_s=ESTIMATE_WAIT_S)
        if self.estimator is not None:
            out += self._install_estimate(self.chain, wait_s=ESTIMATE_WAIT_S)
        return out

    def end_run(self, run: RunInfo) -> dict[str, Any]:
        if self.loader is not None and self.chain is not None:
            self._install_loaded(self.chain, wait_s=ESTIMATE_WAIT_S)
        if self.estimator is not None and self.chain is not None:
            # an estimate still running: wait for it so that the frames seen
            # meanwhile count in the summary (no outputs any more at this point)
            self._install_estimate(self.chain, wait_s=ESTIMATE_WAIT_S)
        st = self.stats
        cfg = self.cfg
        out: dict[str, Any] = {"frames": st.n_frames}
        chain = self.chain
        if chain is not None:
            out["shape"] = list(chain.shape)
            out["acceptance"] = list(chain.acc)
            out["spark_threshold"] = chain.spark_sum
        if self.ctx.pedestal:
            out["pedestal_run"] = self._finish_pedestal_run(run)
        nf = max(st.n_frames, 1)
        img: dict[str, Any] = {"raw_mean": st.img_sum[0] / nf, "raw_rms": st.img_sum[1] / nf}
        if st.n_img_ped:
            img["ped_mean"] = st.img_sum[2] / st.n_img_ped
            img["ped_rms"] = st.img_sum[3] / st.n_img_ped
            img["mean_over_threshold"] = st.over_sum / st.n_img_ped
        out["image"] = img
        boxes = []
        for k in range(NBOXES):
            b: dict[str, Any] = {
                "bounds": [int(x) for x in chain.box_table[k]] if chain is not None else None,
                "raw_mean": st.box_sum[k, 0] / nf,
                "raw_rms": st.box_sum[k, 1] / nf,
            }
            if st.n_img_ped:
                b["ped_mean"] = st.box_sum[k, 2] / st.n_img_ped
                b["ped_rms"] = st.box_sum[k, 3] / st.n_img_ped
            boxes.append(b)
        out["boxes"] = boxes
        exposure = run.exposure_s
        live_s = st.n_frames * exposure if exposure else None
        wall_s = (
            (st.last_ns - st.first_ns) / 1e9 if st.first_ns is not None and st.last_ns else None
        )
        n_cl = max(st.n_clustered, 1)
        counts = {name: int(st.class_counts[i]) for i, name in enumerate(CLASS_NAMES)}
        out["clusters"] = {
            "frames_clustered": st.n_clustered,
            "frames_without_pedestal": st.n_no_pedestal,
            "frames_analysed_late": st.n_late,
            "frames_overflow": st.n_overflow,
            "total": int(st.class_counts.sum()),
            "by_class": counts,
            "per_frame": {k: v / n_cl for k, v in counts.items()},
            "rate_hz": (
                {k: v / (st.n_clustered * exposure) for k, v in counts.items()}
                if exposure and st.n_clustered
                else None
            ),
            "integral_total": st.integral_sum,
        }
        out["alpha_rate_hz"] = (
            out["clusters"]["rate_hz"]["alpha"] if out["clusters"]["rate_hz"] else None
        )
        out["muon_rate_hz"] = (
            out["clusters"]["rate_hz"]["muon"] if out["clusters"]["rate_hz"] else None
        )
        out["live_time_s"] = live_s
        out["wall_time_s"] = wall_s
        out["sparks"] = {"count": st.n_sparks, "fraction": st.n_sparks / nf}
        out["fe55"] = {
            "counts": st.fe55_hist.tolist(),
            "edges": st.fe55_edges.tolist(),
            "entries": int(st.fe55_hist.sum()),
            "fit": fit_peak(st.fe55_hist, st.fe55_edges, min_entries=cfg.fit_min_entries),
        }
        out["integral_histogram"] = {
            "counts": st.hist.tolist(),
            "edges": st.hist_edges.tolist(),
            "underflow": st.hist_under,
            "overflow": st.hist_over,
        }
        out["hot_pixels"] = {
            "last": st.hot_last,
            "max": st.hot_max,
            "definition": f"raw > pedestal + {cfg.hot_nsigma} sigma in >= {cfg.hot_frames} consecutive frames",
        }
        maps = chain.maps if chain is not None else None
        if maps is not None and not self.ctx.pedestal:
            med = float(np.median(maps.mean))
            age = maps.age_days(run.start_time_ns)
            out["pedestal"] = {
                "source": maps.source,
                "run": maps.run,
                "path": maps.path,
                "n_frames": maps.n_frames,
                "age_days": age if maps.source == "store" else 0.0,
                "too_old": bool(maps.source == "store" and age > cfg.pedestal_max_age_days),
                "mean_of_means": float(np.mean(maps.mean, dtype=np.float64)),
                "mean_sigma": float(np.mean(maps.sigma, dtype=np.float64)),
                "outlier_pixels": int(np.count_nonzero(maps.mean > med + 100.0)),
            }
            if maps.source == "estimated":
                out["pedestal"]["estimate_s"] = st.estimate_s
        elif not self.ctx.pedestal:
            out["pedestal"] = {"source": "none"}
        if not self.ctx.pedestal:
            out["pedestal"]["frames_analysed_late"] = st.n_late
            out["pedestal"]["frames_over_max_deferred"] = st.n_deferred_overflow
        if st.proc_ms:
            arr = np.asarray(st.proc_ms)
            out["process_ms"] = {"median": float(np.median(arr)), "max": float(arr.max())}
        return out

    def _finish_pedestal_run(self, run: RunInfo) -> dict[str, Any]:
        acc = self.accumulator
        if acc is None or acc.n == 0:
            return {"stored": False, "reason": "no frames"}
        mean, sigma = acc.maps()
        maps = PedestalMaps(
            self.camera,
            mean,
            sigma,
            acc.n,
            run.run,
            self.stats.last_ns or run.start_time_ns,
            run.exposure_s,
            source="store",
        )
        info: dict[str, Any] = maps.summary()
        store = self.ctx.store
        if acc.n < self.cfg.pedestal_min_frames:
            info.update(stored=False, reason=f"fewer than {self.cfg.pedestal_min_frames} frames")
        elif store is None or not self.cfg.pedestal_save:
            info.update(
                stored=False, reason="no pedestal store" if store is None else "saving disabled"
            )
            # still used by the next runs of this process (see _resolve_pedestal)
            self.maps_cache = maps
        else:
            path = store.save(maps)
            self.maps_cache = maps
            info.update(stored=True, path=str(path))
            log.info("run %s camera %s: pedestal stored in %s", run.run, self.camera, path)
        return info


class CameraAnalyzer(Analyzer):
    """Camera frames: spark veto, pedestal subtraction, zero suppression,
    rebinned DBSCAN clustering, cluster features and classes, image health."""

    name = "camera"
    consumes = (CameraFrame,)
    description = "camera chain: pedestals, zero suppression, DBSCAN clusters, 55Fe/alpha/muon"

    def __init__(self) -> None:
        super().__init__()
        self.cfg = CameraConfig()
        self.store: PedestalStore | None = None
        self._states: dict[str, CameraState] = {}
        self._lock = threading.Lock()
        self._ctx = RunContext(RunInfo(run=0, start_time_ns=0), False, None)

    def configure(self, params: Params, env: AnalyzerEnv) -> None:
        cfg = CameraConfig.from_params(params)
        if params.errors:
            return  # the host raises; keep the previous configuration
        super().configure(params, env)
        if cfg.pedestal_store:
            store = PedestalStore(Path(cfg.pedestal_store).expanduser())
        elif env.state_dir is not None:
            store = PedestalStore(Path(env.state_dir) / "pedestals")
        else:
            store = None
        self.cfg = cfg
        self.store = store
        self._ctx = RunContext(self._ctx.run, self._ctx.run.pedestal or cfg.pedestal_force, store)
        with self._lock:
            for st in self._states.values():
                st.set_config(cfg)
                st.ctx = self._ctx

    def warm_up(self) -> None:
        dt = warm_up_kernels()
        log.info("camera kernels ready in %.2f s", dt)

    def begin_run(self, run: RunInfo) -> list[Output]:
        self._ctx = RunContext(run, run.pedestal or self.cfg.pedestal_force, self.store)
        with self._lock:
            for st in self._states.values():
                st.begin_run(self._ctx)
        return []

    # -- run checkpoint (a run survives a daemon restart) ------------------------------
    def export_run_state(self) -> dict[str, Any]:
        """Per camera: the run's accumulators (counts, spectra, sums), the
        frame count and a pedestal run's accumulator. Not carried: the loaded
        pedestal (reloaded from the store). Frames seen without a map and not
        analysed yet are carried (``pending``): a restart while a map loads or
        is estimated analyses them as the uninterrupted run would."""
        with self._lock:
            states = dict(self._states)
        return {
            cam: {
                "stats": st.stats,
                "frame_count": st.frame_count,
                "accumulator": st.accumulator,
                "pending": st.export_pending(),
            }
            for cam, st in states.items()
        }

    def import_run_state(self, state: Any) -> None:
        fresh = _RunStats(self.cfg)
        for cam, saved in state.items():
            stats = saved["stats"]
            for k in ("hist_edges", "fe55_edges"):
                if not np.array_equal(getattr(stats, k), getattr(fresh, k)):
                    raise ValueError(f"{cam}: the binning changed since the checkpoint ({k})")
            if stats.sc_x.size != fresh.sc_x.size:
                raise ValueError(f"{cam}: scatter_max changed since the checkpoint")
        for cam, saved in state.items():
            st = self.state(cam)
            st.stats = saved["stats"]
            st.frame_count = int(saved["frame_count"])
            if st.accumulator is not None and saved["accumulator"] is not None:
                st.accumulator = saved["accumulator"]
            if saved.get("pending") is not None and not self._ctx.pedestal:
                st.import_pending(saved["pending"])

    def state(self, camera: str) -> CameraState:
        st = self._states.get(camera)
        if st is None:
            with self._lock:
                st = self._states.get(camera)
                if st is None:
                    st = CameraState(camera, self.cfg, self._ctx)
                    self._states[camera] = st
        return st

    def process(self, item: CameraFrame, flow: Flow) -> list[Output]:
        cam = item.key
        if self.cfg.cameras is not None and cam not in self.cfg.cameras:
            return []
        return self.state(cam).process(item, flow)

    def catalogue(self, ctx: CatalogueContext) -> list[SeriesSpec]:
        src = f"analyzer {self.instance_name}"
        out = [
            SeriesSpec(
                "camera",
                fields_from_units(CAMERA_UNITS, CAMERA_TYPES, descriptions=CAMERA_DESCRIPTIONS),
                ("camera",),
                src,
                "one point per analysed image",
            ),
            SeriesSpec(
                "clusters",
                fields_from_units(
                    CLUSTERS_UNITS, {k: "int" for k in CLUSTERS_UNITS if k.startswith("n_")}
                ),
                ("camera",),
                src,
                "per clustered frame",
            ),
        ]
        if self.cfg.per_cluster_metrics:
            types = {"class": "string"}
            out.append(
                SeriesSpec(
                    "clusters",
                    fields_from_units(
                        CLUSTER_ROW_UNITS, types, descriptions={"class": "fe55, alpha, muon, other"}
                    ),
                    ("camera", "cluster"),
                    src,
                    "one row per cluster (per_cluster_metrics)",
                )
            )
        return out

    def finish_run(self, run: RunInfo) -> list[Output]:
        with self._lock:
            states = dict(self._states)
        out: list[Output] = []
        for _cam, st in sorted(states.items()):
            out += st.finish_run()
        return out

    def end_run(self, run: RunInfo) -> dict[str, Any]:
        with self._lock:
            states = dict(self._states)
        return {
            "pedestal_store": str(self.store.root) if self.store is not None else None,
            "pedestal_run": self._ctx.pedestal,
            "cameras": {cam: st.end_run(run) for cam, st in sorted(states.items())},
        }
