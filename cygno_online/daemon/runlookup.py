"""The viewers' ``reference`` control command: a run's reference run, from the registry.

The TUI's Runs tab compares a selected run with the previous run (in the
snapshot: the last summaries) and with its reference run - the run its
quality checks used (``reference_run`` of its summary) or, when it has none,
the registry's automatic reference: the latest good run before it with the
same run type and exposure (:meth:`RunRegistry.latest_good`). That run is
usually older than the summaries a viewer holds, so the daemon looks it up::

    {"cmd": "reference", "run": 42901, "reference_run": 42890}          # known
    {"cmd": "reference", "run": 42901, "run_type": "DATA:Fe", "exposure_s": 0.3}
    -> {"ok": true, "pending": true}                                    # asked: retry
    -> {"ok": true, "reference": {...registry row...} | null, "how": "..."}

Control requests are answered on the publisher's thread, which must never
wait for a database: a lookup runs on one worker thread, the request is
answered ``pending`` at once, and the viewer asks again (the answer is then
in a small cache: 32 lookups, 60 s). At most 4 lookups wait at a time
(more: an error reply). The row is bounded: without the ``histograms`` and
``checks`` columns, the ``extra`` column only when the whole row stays
under 16 kB.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENTRIES = 32
CACHE_S = 60.0
MAX_PENDING = 4
MAX_ROW_BYTES = 16_000


def compact_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The registry row a viewer needs: no histograms or checks, bounded."""
    if row is None:
        return None
    out = {k: v for k, v in row.items() if k not in ("histograms", "checks")}
    if len(json.dumps(out, default=str)) > MAX_ROW_BYTES:
        out.pop("extra", None)
        out["reasons"] = str(out.get("reasons") or "")[:2000]
    return out


def parse_request(req: dict[str, Any]) -> tuple[int, int | None, str | None, float | None]:
    """(run, reference_run, run_type, exposure_s) of a request; ValueError names the key."""

    def integer(key: str, required: bool) -> int | None:
        v = req.get(key)
        if v is None and not required:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**53:
            raise ValueError(f"'{key}' must be a run number, got {v!r:.40}")
        return v

    run = integer("run", True)
    assert run is not None
    ref = integer("reference_run", False)
    kind = req.get("run_type")
    if kind is not None and (not isinstance(kind, str) or not 0 < len(kind) <= 64):
        raise ValueError(f"'run_type' must be a short text, got {kind!r:.40}")
    exp = req.get("exposure_s")
    if exp is not None and (
        isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp)
    ):
        raise ValueError(f"'exposure_s' must be a number, got {exp!r:.40}")
    if ref is None and kind is None:
        raise ValueError("give 'reference_run' or 'run_type' (and 'exposure_s')")
    return run, ref, kind, None if exp is None else float(exp)


class ReferenceLookup:
    """Serves ``reference`` requests from ``registry`` (a
    :class:`~cygno_online.sinks.registry.RunRegistry` or None).
    ``submit(fn)`` runs a lookup (default: a worker thread per lookup, at
    most :data:`MAX_PENDING` at once); tests pass ``lambda fn: fn()``."""

    def __init__(
        self,
        registry: Any,
        *,
        submit: Callable[[Callable[[], None]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self._submit = submit or self._thread
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, tuple[float, dict[str, Any]]] = OrderedDict()
        self._pending: set[tuple] = set()
        #: lookups made, and those that failed (counted, in the answer's text)
        self.lookups = 0
        self.failures = 0

    def command(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            run, ref, kind, exp = parse_request(req)
        except ValueError as exc:
            return {"ok": False, "error": f"reference: {exc}", "code": "bad_request"}
        if self.registry is None:
            return {"reference": None, "how": "no run registry configured (registry: false)"}
        key = (run, ref, kind, exp)
        with self._lock:
            got = self._cached(key)
            if got is not None:
                return got
            if key not in self._pending:
                if len(self._pending) >= MAX_PENDING:
                    return {"ok": False, "error": "reference: too many lookups at once, retry"}
                self._pending.add(key)
                start = True
            else:
                start = False
        if start:
            self._submit(lambda: self._lookup(key))
        with self._lock:
            got = self._cached(key)  # a synchronous submit has answered already
        return got if got is not None else {"pending": True}

    def _cached(self, key: tuple) -> dict[str, Any] | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        at, answer = hit
        if self.clock() - at > CACHE_S:
            del self._cache[key]
            return None
        return answer

    def _lookup(self, key: tuple) -> None:
        from cygno_online.sinks.registry import RegistryError

        run, ref, kind, exp = key
        self.lookups += 1
        try:
            if ref is not None:
                row = self.registry.get(ref)
                how = f"the run the quality checks of run {run} used"
                if row is None:
                    how = f"reference run {ref} is not in the run registry"
            else:
                row = self.registry.latest_good(run_type=kind, exposure_s=exp, before_run=run)
                what = f"{kind} run" + (f" with exposure {exp:g} s" if exp is not None else "")
                how = f"the latest good {what} before run {run}"
                if row is None:
                    how = f"no good {what} before run {run} in the run registry"
            answer: dict[str, Any] = {"reference": compact_row(row), "how": how}
        except RegistryError as exc:
            self.failures += 1
            log.warning("reference lookup for run %s failed: %s", run, exc)
            answer = {"reference": None, "how": f"run registry not available: {exc}"}
        except Exception as exc:  # a lookup must never end the worker or the daemon
            self.failures += 1
            log.exception("reference lookup for run %s failed", run)
            answer = {"reference": None, "how": f"lookup failed: {exc}"}
        with self._lock:
            self._pending.discard(key)
            self._cache[key] = (self.clock(), answer)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)

    @staticmethod
    def _thread(fn: Callable[[], None]) -> None:
        threading.Thread(target=fn, name="reference-lookup", daemon=True).start()
