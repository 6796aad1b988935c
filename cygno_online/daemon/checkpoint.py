"""Checkpoint of the open run's state, so that a run survives a daemon restart.

The pipeline writes one file in the state directory (periodically and when
the daemon stops in mid-run): the run's identity (experiment, number, start
time from the ODB), the pipeline's run counters and every analyzer's
run-scoped state as exported by :meth:`Analyzer.export_run_state`. When the
daemon starts again and the SAME run is still running (same experiment,
number and ODB start time, seen with the run's first event), the state is
imported and the run's summary covers every event seen by either daemon.

Anything else - a checkpoint of another run, of another experiment, a file
cut short or not a checkpoint at all - is one log line and a fresh start.

Format: a magic line, then a pickle (protocol 5) read back by a restricted
unpickler that only builds plain containers, numpy arrays and classes defined
in the project's or the plugins' own modules: a file planted in the state
directory cannot make the daemon run arbitrary code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

from cygno_online.decode.items import RunInfo

log = logging.getLogger(__name__)

MAGIC = b"cygno-online run checkpoint v1\n"

#: builtins a checkpoint may name (no callables that evaluate or import)
_BUILTINS = frozenset(
    {"set", "frozenset", "complex", "bytearray", "slice", "range", "list", "dict", "tuple"}
)
_COLLECTIONS = frozenset({"OrderedDict", "Counter", "defaultdict", "deque"})
#: numpy's own reconstruction helpers (numpy 1 and 2 module names)
_NUMPY = frozenset({"_reconstruct", "_frombuffer", "ndarray", "dtype", "scalar"})
#: modules whose classes a checkpoint may instantiate
_OWN = ("cygno_online.", "cygno_online_user_plugins.")


class CheckpointError(Exception):
    """A checkpoint file that cannot be used (corrupt, foreign, unsafe)."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        ok = (
            (module == "builtins" and name in _BUILTINS)
            or (module == "collections" and name in _COLLECTIONS)
            or (module == "copyreg" and name == "_reconstructor")
            or (module.split(".")[0] == "numpy" and (name in _NUMPY or name.endswith("DType")))
            or module.startswith(_OWN)
        )
        if not ok:
            raise CheckpointError(f"refers to {module}.{name}, which a checkpoint may not")
        obj = super().find_class(module, name)
        if module.startswith(_OWN) and not isinstance(obj, type):
            raise CheckpointError(f"refers to {module}.{name}, which is not a class")
        return obj


def run_key(run: RunInfo) -> dict[str, Any]:
    """What identifies a run across daemon restarts."""
    return {
        "experiment": run.experiment or "",
        "run": int(run.run),
        "start_time_ns": int(run.start_time_ns),
    }


def _describe(key: dict[str, Any]) -> str:
    start = key.get("start_time_ns") or 0
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start / 1e9)) if start else "?"
    return f"run {key.get('run')} of {key.get('experiment') or '?'} started {when} UTC"


class RunCheckpoint:
    """One checkpoint file (the daemon has at most one open run)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: checkpoints written and failures to write (health, tests)
        self.written = 0
        self.write_errors = 0
        self._ok = True

    # -- writing -----------------------------------------------------------------
    def save(self, run: RunInfo, payload: dict[str, Any]) -> bool:
        """Write atomically (temp file, fsync, rename). Returns False (one
        ERROR line) when it cannot be written; the run goes on."""
        doc = {"key": run_key(run), "saved_ns": time.time_ns(), **payload}
        try:
            data = MAGIC + pickle.dumps(doc, protocol=5)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        except Exception as exc:
            # one line when it starts failing (not one per period), one when it works again
            if self.write_errors == 0 or self._ok:
                log.error(
                    "run %s: cannot write the run checkpoint %s: %s (the run would not "
                    "survive a restart; retried every period)",
                    run.run,
                    self.path,
                    exc,
                )
            self.write_errors += 1
            self._ok = False
            return False
        if not self._ok:
            log.info("run %s: the run checkpoint %s is written again", run.run, self.path)
        self._ok = True
        self.written += 1
        return True

    def stats(self) -> dict[str, Any]:
        """For the health report: checkpoints written, failed writes, and
        whether the last write worked."""
        return {"written": self.written, "write_errors": self.write_errors, "ok": self._ok}

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- reading -----------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        """The checkpoint document, None when there is none; raises
        CheckpointError naming the file for anything unusable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"{self.path}: unreadable: {exc}") from exc
        if not data.startswith(MAGIC):
            raise CheckpointError(f"{self.path}: not a run checkpoint (bad magic line)")
        try:
            doc = _Unpickler(io.BytesIO(data[len(MAGIC) :])).load()
        except CheckpointError as exc:
            raise CheckpointError(f"{self.path}: {exc}") from None
        except Exception as exc:
            raise CheckpointError(
                f"{self.path}: corrupt ({len(data)} bytes): {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), dict):
            raise CheckpointError(f"{self.path}: corrupt (no run key)")
        return doc

    def load_for(self, run: RunInfo) -> dict[str, Any] | None:
        """The checkpoint of ``run`` if the file holds exactly that run, else
        None. A stale/foreign or corrupt file is one log line and is removed
        (it can never be resumed later either)."""
        try:
            doc = self.read()
        except CheckpointError as exc:
            log.error("run %s: ignoring the run checkpoint: %s; starting fresh", run.run, exc)
            self.discard()
            return None
        if doc is None:
            return None
        if doc["key"] != run_key(run):
            log.warning(
                "run %s: ignoring the run checkpoint %s of %s (the current run is %s)",
                run.run,
                self.path,
                _describe(doc["key"]),
                _describe(run_key(run)),
            )
            self.discard()
            return None
        return doc


def restricted_loads(data: bytes) -> Any:
    """Unpickle with the checkpoint's restrictions (raises CheckpointError)."""
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"corrupt: {type(exc).__name__}: {exc}") from None


#: (run, analyzer) whose export failure was logged: one line per run, not
#: one per periodic checkpoint (bounded: cleared when it grows)
_export_failures: set[tuple[int, str]] = set()


def export_analyzers(analyzers: list[Any], run: int) -> dict[str, dict[str, Any]]:
    """Every analyzer's run state, pickled one by one (one analyzer that
    cannot export never costs the others their checkpoint; it resumes fresh)."""
    out: dict[str, dict[str, Any]] = {}
    for a in analyzers:
        try:
            state = a.export_run_state()
            if state is None:
                continue
            blob = pickle.dumps(state, protocol=5)
        except Exception as exc:
            if (run, a.instance_name) in _export_failures:
                continue
            if len(_export_failures) > 1000:
                _export_failures.clear()
            _export_failures.add((run, a.instance_name))
            log.error(
                "run %s: analyzer %s: cannot export its run state (logged once per run): %s: %s",
                run,
                a.instance_name,
                type(exc).__name__,
                exc,
            )
            continue
        out[a.instance_name] = {
            "plugin": a.name,
            "version": int(getattr(a, "run_state_version", 1)),
            "state": blob,
        }
    return out


def import_analyzers(
    analyzers: list[Any], states: dict[str, dict[str, Any]], run: RunInfo
) -> tuple[list[str], list[str]]:
    """Restore each analyzer's state (called right after ``begin_run``).
    Returns (resumed instance names, fresh instance names); an analyzer whose
    state is missing, of another plugin or version, or fails to import
    starts this run afresh (``begin_run`` again) and is named in the log."""
    resumed: list[str] = []
    fresh: list[str] = []
    for a in analyzers:
        entry = states.get(a.instance_name)
        why = None
        if entry is None:
            why = "no state in the checkpoint"
        elif entry.get("plugin") != a.name:
            why = f"the checkpoint holds plugin {entry.get('plugin')!r}"
        elif entry.get("version") != int(getattr(a, "run_state_version", 1)):
            why = f"run state version {entry.get('version')} in the checkpoint"
        else:
            try:
                a.import_run_state(restricted_loads(entry["state"]))
                resumed.append(a.instance_name)
                continue
            except Exception as exc:
                why = f"import failed: {type(exc).__name__}: {exc}"
                try:
                    a.begin_run(run)
                except Exception:
                    log.exception("analyzer %s: begin_run failed", a.instance_name)
        fresh.append(a.instance_name)
        log.warning(
            "run %s: analyzer %s starts the resumed run fresh (%s)", run.run, a.instance_name, why
        )
    return resumed, fresh


#: file name of the open run's checkpoint in the state directory
CHECKPOINT_NAME = "run-checkpoint.bin"


def run_checkpoint(state_dir: str | Path | None) -> RunCheckpoint | None:
    """The daemon's checkpoint (None without a state directory: then a run
    does not survive a restart, its parts are kept and their counters summed)."""
    return RunCheckpoint(Path(state_dir) / CHECKPOINT_NAME) if state_dir else None
