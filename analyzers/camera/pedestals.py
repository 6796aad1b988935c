"""Pedestal maps: online accumulation, robust estimation and the on-disk store.

Store layout (one directory, default ``<state_dir>/pedestals``)::

    cam0_2304x2304_exp300ms_run012345.npz    mean (float32), sigma (float32), n
    cam0_2304x2304_exp300ms_run012345.json   summary (see PedestalMaps.summary)

``expNNNms`` is ``expunknown`` when the run did not tell the exposure. A
physics run uses the newest map (by the time it was taken, then run number)
with the same camera and shape and the same exposure; maps of unknown
exposure, or any exposure when the run's is unknown, are the fallback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cygno_online.analyzers.camera import kernels as kn

log = logging.getLogger(__name__)

_NAME = re.compile(
    r"^(?P<cam>[A-Za-z0-9_-]+?)_(?P<rows>\d+)x(?P<cols>\d+)_exp(?P<exp>\d+ms|unknown)_run(?P<run>\d+)\.npz$"
)


def threshold_map(sigma: np.ndarray, nsigma: float) -> np.ndarray:
    """The zero-suppression threshold per pixel, ``float32(nsigma * sigma)``
    (the one definition shared by kernels and reference)."""
    return (sigma.astype(np.float64) * float(nsigma)).astype(np.float32)


def exposure_tag(exposure_s: float | None) -> str:
    return "unknown" if exposure_s is None else f"{round(exposure_s * 1000)}ms"


@dataclass(slots=True)
class PedestalMaps:
    """A per-pixel pedestal: ``mean`` and ``sigma`` float32 (rows, cols)."""

    camera: str
    mean: np.ndarray
    sigma: np.ndarray
    n_frames: int
    run: int
    #: when the pedestal was taken (Unix ns)
    time_ns: int
    exposure_s: float | None = None
    #: "store" (a pedestal run), "estimated" (first frames of this run), "accumulated"
    source: str = "store"
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: maps derived from this one by the chain (the integer cuts), keyed by
    #: the thresholds: derived once per map object, reused across runs
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mean.shape)  # type: ignore[return-value]

    def age_days(self, now_ns: int) -> float:
        return (now_ns - self.time_ns) / 86400e9

    def summary(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "rows": int(self.mean.shape[0]),
            "cols": int(self.mean.shape[1]),
            "exposure_s": self.exposure_s,
            "run": int(self.run),
            "time_ns": int(self.time_ns),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time_ns / 1e9)),
            "n_frames": int(self.n_frames),
            "mean_of_means": float(np.mean(self.mean, dtype=np.float64)),
            "mean_sigma": float(np.mean(self.sigma, dtype=np.float64)),
            "median_sigma": float(np.median(self.sigma)),
            "source": self.source,
        }


class PedestalAccumulator:
    """Per-pixel mean and standard deviation (ddof=0) of a pedestal run in one
    pass: exact int64 sums of ``raw - first_frame`` and their squares, so there
    is no cancellation however many frames."""

    def __init__(self) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None

    def add(self, raw: np.ndarray) -> None:
        if self.shift is None:
            self.shift = np.array(raw, dtype=np.uint16, copy=True)
            self.s1 = np.zeros(raw.shape, np.int64)
            self.s2 = np.zeros(raw.shape, np.int64)
        elif raw.shape != self.shift.shape:
            raise ValueError(f"frame shape {raw.shape} differs from {self.shift.shape}")
        kn.pedestal_accumulate(raw, self.shift, self.s1, self.s2)
        self.n += 1

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n == 0 or self.shift is None:
            raise ValueError("no frames accumulated")
        m1 = self.s1 / self.n
        var = np.maximum(self.s2 / self.n - m1 * m1, 0.0)
        return (self.shift + m1).astype(np.float32), np.sqrt(var).astype(np.float32)


class PedestalEstimator:
    """Collects the first ``n_frames`` frames of a run without a stored map
    (into one preallocated stack) and estimates a robust pedestal from them
    (:func:`kernels.pedestal_estimate`) on a background thread: the kernel is
    ``nogil``, so the analysis of live frames goes on meanwhile (a LIME
    estimate takes a few hundred ms to seconds on a busy core).

    Life cycle: ``add`` until it returns True, then ``start``; ``ready``
    polls without blocking, ``wait`` blocks (end of run only), ``result``
    gives ``(mean, sigma)`` or raises what the estimate raised."""

    def __init__(self, n_frames: int, clip_nsigma: float = 3.0, min_spread: float = 3.0) -> None:
        self.n_frames = n_frames
        self.clip_nsigma = clip_nsigma
        self.min_spread = min_spread
        self.stack: np.ndarray | None = None
        self.n = 0
        self.seconds: float | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._result: tuple[np.ndarray, np.ndarray] | None = None
        self._error: BaseException | None = None

    @property
    def frames(self) -> list[np.ndarray]:
        """The frames collected so far (views into the stack)."""
        return [] if self.stack is None else [self.stack[k] for k in range(self.n)]

    @property
    def started(self) -> bool:
        return self._thread is not None

    def add(self, raw: np.ndarray) -> bool:
        """Keep a copy of the frame; True when enough frames are collected."""
        if self.started:
            raise RuntimeError("estimate already started")
        if self.stack is None or raw.shape != self.stack.shape[1:]:
            self.stack = np.empty((self.n_frames, *raw.shape), np.uint16)
            self.n = 0
        self.stack[self.n] = raw
        self.n += 1
        return self.n >= self.n_frames

    def start(self) -> None:
        """Run the estimate on a daemon thread (the kernel releases the GIL)."""
        if self.stack is None or self.n < 2:
            raise ValueError("a pedestal estimate needs at least 2 frames")
        stack = self.stack[: self.n]

        def job() -> None:
            t0 = time.perf_counter()
            try:
                self._result = kn.pedestal_estimate(stack, self.clip_nsigma, self.min_spread)
            except BaseException as exc:  # handed to the analysis thread by result()
                self._error = exc
            finally:
                self.seconds = time.perf_counter() - t0
                self._done.set()

        self._thread = threading.Thread(target=job, name="pedestal-estimate", daemon=True)
        self._thread.start()

    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._done.is_set():
            raise RuntimeError("pedestal estimate not finished")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Synchronous estimate (tests, tools): start, wait, result."""
        self.start()
        self.wait()
        return self.result()


class PedestalLoader:
    """Loads a stored map and derives what the chain needs from it
    (``prepare(maps)``) on a daemon thread, so that no frame waits for the
    decompression (seconds for a Quest map on a busy core) or the cuts.
    ``ready`` polls, ``wait`` blocks (end of run only), ``result`` gives the
    maps or raises what loading raised."""

    def __init__(
        self,
        store: PedestalStore,
        entry: dict[str, Any],
        prepare: Callable[[PedestalMaps], Any] | None = None,
    ) -> None:
        self.entry = entry
        self.seconds: float | None = None
        self._done = threading.Event()
        self._result: PedestalMaps | None = None
        self._error: BaseException | None = None

        def job() -> None:
            t0 = time.perf_counter()
            try:
                maps = store.load(entry)
                if prepare is not None:
                    prepare(maps)
                self._result = maps
            except BaseException as exc:  # handed to the analysis thread by result()
                self._error = exc
            finally:
                self.seconds = time.perf_counter() - t0
                self._done.set()

        self._thread = threading.Thread(target=job, name="pedestal-load", daemon=True)
        self._thread.start()

    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self) -> PedestalMaps:
        if not self._done.is_set():
            raise RuntimeError("pedestal load not finished")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class PedestalStore:
    """Directory of compressed pedestal maps; safe to share between threads."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    def path_for(
        self, camera: str, shape: tuple[int, int], exposure_s: float | None, run: int
    ) -> Path:
        return (
            self.root
            / f"{camera}_{shape[0]}x{shape[1]}_exp{exposure_tag(exposure_s)}_run{run:06d}.npz"
        )

    def save(self, maps: PedestalMaps) -> Path:
        path = self.path_for(maps.camera, maps.shape, maps.exposure_s, maps.run)
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            # write to temporaries then rename: a reader never sees half a map
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez_compressed(tmp, mean=maps.mean, sigma=maps.sigma, n=np.int64(maps.n_frames))
            os.replace(tmp, path)
            meta = maps.summary()
            jtmp = path.with_suffix(".json.tmp")
            jtmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
            os.replace(jtmp, path.with_suffix(".json"))
        maps.path = str(path)
        return path

    def entries(self) -> list[dict[str, Any]]:
        """Summaries of every stored map (the JSON next to each file)."""
        out = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.glob("*.npz")):
            if not _NAME.match(p.name):
                continue
            j = p.with_suffix(".json")
            try:
                meta = json.loads(j.read_text())
            except (OSError, ValueError) as exc:
                log.warning("pedestal store: ignoring %s (%s)", p, exc)
                continue
            meta["path"] = str(p)
            out.append(meta)
        return out

    def find(
        self, camera: str, shape: tuple[int, int], exposure_s: float | None
    ) -> dict[str, Any] | None:
        """Summary of the newest map matching camera, shape and exposure."""
        exact, fallback = [], []
        for e in self.entries():
            if e.get("camera") != camera or (e.get("rows"), e.get("cols")) != tuple(shape):
                continue
            exp = e.get("exposure_s")
            if exposure_s is not None and exp is not None:
                if abs(exp - exposure_s) < 5e-4:
                    exact.append(e)
            else:
                fallback.append(e)
        pool = exact or fallback
        if not pool:
            return None
        return max(pool, key=lambda e: (e.get("time_ns", 0), e.get("run", 0)))

    def load(self, entry: dict[str, Any] | str | Path) -> PedestalMaps:
        if isinstance(entry, (str, Path)):
            path = Path(entry)
            meta = json.loads(path.with_suffix(".json").read_text())
        else:
            meta = entry
            path = Path(entry["path"])
        with np.load(path) as z:
            mean = z["mean"].astype(np.float32)
            sigma = z["sigma"].astype(np.float32)
            n = int(z["n"])
        if mean.shape != (meta["rows"], meta["cols"]) or sigma.shape != mean.shape:
            raise ValueError(f"{path}: map shape {mean.shape} does not match its summary")
        return PedestalMaps(
            camera=meta["camera"],
            mean=mean,
            sigma=sigma,
            n_frames=n,
            run=int(meta["run"]),
            time_ns=int(meta["time_ns"]),
            exposure_s=meta.get("exposure_s"),
            source="store",
            path=str(path),
        )
