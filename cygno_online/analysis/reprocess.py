"""Campaign reprocessing: the offline summary of many files as tasks on a Dask
distributed cluster (``cygno-online reprocess``).

One task per file, :func:`summarize_file`, runs exactly what ``cygno-online
summary FILE`` runs (:func:`cygno_online.commands.summary.summarize`) and
returns the summaries; everything that counts or writes happens here, on the
client, once per *finished* task:

* A worker lost mid-file: the scheduler gives the task to another worker (up
  to ``distributed.scheduler.allowed-failures`` times, default 3, then the file
  is reported as failed with ``KilledWorker``). The lost attempt's partial
  progress is forgotten: events are counted from finished results only, and
  the progress line counts a running file's events for its current attempt
  only, so nothing is counted twice.
* A bad file (missing, unreadable, no run in it): reported with its error;
  the other files go on.
* Progress (stderr): files done/failed/total, events, files/s and the time
  left (from the bytes still to do at the rate so far). Workers send a
  progress event (a Dask structured event, topic :data:`TOPIC`) after the
  first event of a file and then at most every :data:`PROGRESS_EVERY_S`.

Workers need cygno-online installed and the files at the same paths (a shared
file system: /nfs, CVMFS, a mounted bucket); the configuration travels with
the task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)

#: Dask structured-event topic of the workers' progress messages
TOPIC = "cygno-reprocess"
#: at most one progress message per file and per this many seconds
PROGRESS_EVERY_S = 0.5


class BadFileError(ValueError):
    """A file the summary cannot use (no run in it)."""


# -- the task (runs on a worker) -----------------------------------------------------------
def _worker_name() -> tuple[Any, str]:
    try:
        from distributed import get_worker

        w = get_worker()
        return w, str(w.address)
    except (ImportError, ValueError):
        return None, "local"


def summarize_file(index: int, path: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The summaries of one file, as ``cygno-online summary PATH`` computes them.

    ``spec``: ``cfg`` (see :func:`~cygno_online.commands.summary.load_config`),
    ``config_path``, ``pedestal``. Raises on a file that cannot be read or has
    no run in it."""
    from cygno_online.analysis.offline import OfflineRunner
    from cygno_online.commands.summary import summarize

    worker, name = _worker_name()
    attempt = uuid.uuid4().hex[:8]
    state: dict[str, Any] = {"events": 0, "last": 0.0, "runner": None}

    def report() -> None:
        if worker is not None:
            msg = {"index": index, "attempt": attempt, "worker": name, "events": state["events"]}
            worker.log_event(TOPIC, msg)

    class ProgressRunner(OfflineRunner):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            state["runner"] = self

        def _process(self, event: Any, source: str) -> None:
            super()._process(event, source)
            state["events"] += 1
            now = time.monotonic()
            if state["events"] == 1 or now - state["last"] >= PROGRESS_EVERY_S:
                state["last"] = now
                report()

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file on worker {name}")
    t0 = time.perf_counter()
    summaries = summarize(
        [path],
        spec.get("cfg") or {},
        config_path=spec.get("config_path"),
        pedestal=spec.get("pedestal"),
        runner_class=ProgressRunner,
    )
    if not summaries:
        reader = state["runner"]._reader if state["runner"] is not None else None
        detail = ""
        if reader is not None and reader.problems:
            detail = f"; {reader.problems_total} format problems, first: {reader.problems[0]}"
        elif reader is not None and reader.skipped_bytes:
            detail = f"; {reader.skipped_bytes} bytes skipped as not MIDAS"
        raise BadFileError(f"{path}: no run in this file (no MIDAS event of a run){detail}")
    return {
        "index": index,
        "file": path,
        "summaries": summaries,
        "events": sum(int((d.get("counters") or {}).get("events_seen", 0)) for d in summaries),
        "seconds": time.perf_counter() - t0,
        "worker": name,
        "attempt": attempt,
    }


# -- the client ----------------------------------------------------------------------------
@dataclass(slots=True)
class FileResult:
    index: int
    file: str
    status: str  # "ok" or "error"
    summaries: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0
    worker: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "runs": [d.get("run") for d in self.summaries],
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "worker": self.worker,
            "error": self.error,
        }


class Progress:
    """Counts and the progress line; fed from the Dask client's event thread
    (worker progress) and from the main thread (finished files)."""

    def __init__(
        self,
        files: Sequence[str],
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = len(files)
        self.sizes = [_size(f) for f in files]
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.failed = 0
        self.events_done = 0
        self.bytes_done = 0
        #: file index -> (attempt, events so far, worker) of files being processed
        self.running: dict[int, tuple[str, int, str]] = {}
        self._finished: set[int] = set()
        self.lock = threading.Lock()
        self._last_line = 0.0

    # from workers (client event thread)
    def worker_message(self, msg: dict[str, Any]) -> None:
        with self.lock:
            if msg["index"] in self._finished:
                return
            # a new attempt (after a lost worker) replaces the old one's count
            self.running[msg["index"]] = (msg["attempt"], int(msg["events"]), msg["worker"])
        self.render()

    def forget_workers(self, alive: set[str]) -> None:
        """Drop the running counts of attempts whose worker is gone."""
        with self.lock:
            for i, (_a, _n, w) in list(self.running.items()):
                if w not in alive:
                    del self.running[i]

    def finished(self, result: FileResult) -> None:
        with self.lock:
            self._finished.add(result.index)
            self.running.pop(result.index, None)
            self.done += 1
            self.bytes_done += self.sizes[result.index]
            if result.status == "ok":
                self.events_done += result.events
            else:
                self.failed += 1
        self.render(force=True)

    def events(self) -> int:
        with self.lock:
            return self.events_done + sum(n for _a, n, _w in self.running.values())

    def eta_s(self) -> float | None:
        elapsed = self.clock() - self.started
        if self.done == 0 or elapsed <= 0:
            return None
        remaining = sum(self.sizes) - self.bytes_done
        if self.bytes_done > 0:
            return remaining / (self.bytes_done / elapsed)
        return (self.total - self.done) * elapsed / self.done

    def line(self) -> str:
        elapsed = self.clock() - self.started
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        eta = self.eta_s()
        eta_text = "--:--" if eta is None else _hms(eta)
        failed = f" ({self.failed} failed)" if self.failed else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] files {self.done}/{self.total}{failed}"
            f" | events {self.events():,} | {rate:.2f} files/s | elapsed {_hms(elapsed)}"
            f" | left {eta_text}"
        )

    def render(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        # A terminal gets a live line; a log file a line every 10 s and per file.
        if not force and now - self._last_line < (0.2 if self.tty else 10.0):
            return
        self._last_line = now
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def open_client(scheduler: str | None, workers: int | None = None) -> tuple[Any, Any]:
    """``(client, cluster)``: a client of ``scheduler``, or of a local cluster of
    ``workers`` single-threaded worker processes (default: one per core)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s"), None
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    return Client(cluster), cluster


def describe_error(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return "its workers died while processing it, too many times (KilledWorker)"
    return f"{name}: {exc}"


def reprocess(
    files: Sequence[str],
    spec: dict[str, Any],
    client: Any,
    *,
    progress: Progress | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[FileResult]:
    """Run :func:`summarize_file` for every file on ``client``'s cluster; the
    results in the order of ``files``. ``on_result`` is called once per file
    as it finishes (in completion order)."""
    from distributed import as_completed

    files = [str(Path(f).absolute()) for f in files]
    progress = progress or Progress(files, enabled=False)

    def handler(event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        if on_progress is not None:
            on_progress(msg)
        progress.worker_message(msg)

    client.subscribe_topic(TOPIC, handler)
    run_id = uuid.uuid4().hex[:8]
    futures = {
        client.submit(summarize_file, i, f, spec, key=f"cygno-summary-{run_id}-{i}", pure=False): i
        for i, f in enumerate(files)
    }
    results: list[FileResult | None] = [None] * len(files)
    stop_watch = threading.Event()

    def watch_workers() -> None:
        # A lost worker's running count goes (its file restarts elsewhere).
        while not stop_watch.wait(1.0):
            try:
                info = client.scheduler_info(n_workers=-1)
            except Exception:
                continue
            progress.forget_workers(set(info["workers"]))
            progress.render()

    watcher = threading.Thread(target=watch_workers, name="reprocess-watch", daemon=True)
    watcher.start()
    try:
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                out = fut.result()
                res = FileResult(
                    i,
                    files[i],
                    "ok",
                    out["summaries"],
                    out["events"],
                    out["seconds"],
                    out["worker"],
                )
            except Exception as exc:
                res = FileResult(i, files[i], "error", error=describe_error(exc))
                log.error("reprocess: %s: %s", files[i], res.error)
            results[i] = res
            progress.finished(res)
            if on_result is not None:
                on_result(res)
            fut.release()
    finally:
        stop_watch.set()
        watcher.join(2)
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(TOPIC)
        progress.close()
    return [r for r in results if r is not None]
