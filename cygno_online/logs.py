"""Logging set-up for operators.

One line per event of interest. Under systemd (``JOURNAL_STREAM`` set) each
line starts with a ``<N>`` syslog priority prefix so journald files warnings
and errors at the right level, and the timestamp is left to the journal.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # numba's own debug output is for numba developers, not shifters.
    logging.getLogger("numba").setLevel(logging.WARNING)


#: distinct keys remembered by one RateLimitedLog
MAX_KEYS = 1000


class RateLimitedLog:
    """Repeated problems: the first occurrence is logged in full, later ones
    are counted and summarised once per ``interval_s`` in one line
    (``... (N more in the last 60 s)``), never a line each.

    Occurrences are grouped by ``key`` (default: the format string). The
    summary is written at the next occurrence after the interval or by
    :func:`flush_summaries`, which the daemon's main loop calls every second
    (and once at exit) so a burst that stopped is still reported. After an
    interval without occurrences the next one is logged in full again.
    Thread-safe; ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        name: str = "",
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.name = name
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        # key -> [window start, suppressed count, level, last message text]
        self._windows: dict[str, list[Any]] = {}
        #: occurrences seen in total (logged or summarised)
        self.total = 0
        _REGISTRY.add(self)

    def log(
        self, level: int, msg: str, *args: Any, key: str | None = None, exc_info: Any = None
    ) -> bool:
        """Log or count one occurrence; True when a line was written for it."""
        key = key if key is not None else msg
        now = self.clock()
        summary = None
        with self._lock:
            self.total += 1
            w = self._windows.get(key)
            if w is not None and now - w[0] < self.interval_s:
                w[1] += 1
                w[2] = level
                w[3] = (msg, args)
                return False
            if w is not None and w[1]:
                summary = (w[2], w[3], w[1], now - w[0])
            if w is None and len(self._windows) >= MAX_KEYS:
                # bounded: forget the quiet keys (their counts are lost, not logged twice)
                self._windows = {
                    k: v for k, v in self._windows.items() if now - v[0] < self.interval_s
                }
            self._windows[key] = [now, 0, level, (msg, args)]
        if summary is not None:
            self._summarise(*summary)
            # this occurrence is part of the next window's count
            with self._lock:
                self._windows[key][1] = 1
            return False
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def warning(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.WARNING, msg, *args, **kw)

    def error(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.ERROR, msg, *args, **kw)

    def info(self, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.INFO, msg, *args, **kw)

    def flush(self, force: bool = False) -> int:
        """Write the summaries of the windows that are over (all with
        ``force``); returns how many lines were written."""
        now = self.clock()
        due = []
        with self._lock:
            for key, w in list(self._windows.items()):
                if now - w[0] >= self.interval_s or force:
                    if w[1]:
                        due.append((w[2], w[3], w[1], now - w[0]))
                    del self._windows[key]
        for item in due:
            self._summarise(*item)
        return len(due)

    def _summarise(self, level: int, last: tuple[str, tuple], count: int, span: float) -> None:
        msg, args = last
        try:
            text = msg % args if args else msg
        except (TypeError, ValueError):
            text = msg
        self.logger.log(
            level, "%s (%d more in the last %.0f s; repeats are summarised)", text, count, span
        )


_REGISTRY: weakref.WeakSet[RateLimitedLog] = weakref.WeakSet()
_KEYS = itertools.count(1)


def log_key() -> int:
    """A number unique in this process, for an object's own rate-limit keys
    (``id()`` is reused after an object is freed: a new reader would then
    share the previous one's window and lose its first line)."""
    return next(_KEYS)


def flush_summaries(force: bool = False) -> int:
    """Flush every :class:`RateLimitedLog` (the daemon calls this each second)."""
    return sum(r.flush(force) for r in list(_REGISTRY))
