"""What the viewers keep across a daemon restart: the last log lines and
the recent run summaries.

The daemon's :class:`~cygno_online.publish.state.MonitorState` starts empty
after a restart; without this the shifter's Log tab is wiped and the Runs tab
forgets the runs of the shift. The daemon saves both parts of its state to
``<state_dir>/viewers.json`` (atomically, at most every few seconds and at
shutdown) and loads them at start, so the first snapshot carries them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cygno_online.publish.state import LogRecord, MonitorState

log = logging.getLogger(__name__)

SCHEMA = 1


class ViewerMemory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._saved_key: tuple | None = None
        #: files that could not be read (bad JSON...): counted, never fatal
        self.errors = 0

    def load_into(self, state: MonitorState) -> int:
        """Put the remembered log lines and summaries into ``state``;
        returns how many items were restored (0 without a usable file)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.warning("%s: viewer memory not restored: %s", self.path, exc)
            return 0
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            self.errors += 1
            log.warning("%s: viewer memory of an unknown schema, not restored", self.path)
            return 0
        n = 0
        with state.lock:
            for r in doc.get("log") or []:
                try:
                    state.log.append(LogRecord(**r))
                    n += 1
                except TypeError:
                    self.errors += 1
            for d in doc.get("summaries") or []:
                if isinstance(d, dict):
                    state.add_summary(d)
                    n += 1
        return n

    def save(self, state: MonitorState, *, force: bool = False) -> bool:
        """Write the file when the log or the summaries changed (or ``force``)."""
        with state.lock:
            last_log = state.log[-1] if state.log else None
            key = (
                len(state.log),
                None if last_log is None else (last_log.time_ns, last_log.text),
                len(state.summaries),
                None if not state.summaries else state.summaries[-1].get("generated_ns"),
            )
            if key == self._saved_key and not force:
                return False
            doc: dict[str, Any] = {
                "schema": SCHEMA,
                "log": [asdict(r) for r in state.log],
                "summaries": list(state.summaries),
            }
        try:
            _write_atomic(self.path, json.dumps(doc, default=str))
        except OSError as exc:
            self.errors += 1
            log.warning("%s: viewer memory not saved: %s", self.path, exc)
            return False
        self._saved_key = key
        return True


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
