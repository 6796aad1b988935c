"""systemd integration without libsystemd: the sd_notify protocol and the
daemon's signal handling.

sd_notify: datagrams ``KEY=VALUE\\n...`` to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace).
Outside systemd (no variable) every call is a no-op.

Watchdog rule (``WATCHDOG=1`` every ``WatchdogSec/2``): sent only while every
component registered with the daemon's progress watchdog
(:mod:`cygno_online.daemon.watchdog`: source, analysis, publisher, InfluxDB
sender, the MIDAS reader process) beat within its ``stall_s`` and none died.
Every loop wakes at least every 0.5 s even without events, so an idle but
healthy daemon (no run, MIDAS retrying its connection) keeps the watchdog fed;
an analysis thread stuck in one event, a source thread hung in a C call or a
dead publisher thread does not, and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        self.watchdog_s: float | None = None
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, **fields: str | int) -> bool:
        """``notify(READY=1, STATUS="...")``; True when sent."""
        if not self.address:
            return False
        text = "\n".join(f"{k}={v}" for k, v in fields.items())
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._sock.sendto(text.encode(), addr)
                return True
            except OSError as exc:
                log.debug("sd_notify failed: %s", exc)
                return False

    def ready(self, status: str = "") -> None:
        self.notify(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> None:
        self.notify(STATUS=text)

    def reloading(self) -> None:
        self.notify(RELOADING=1)

    def stopping(self) -> None:
        self.notify(STOPPING=1)

    def watchdog(self) -> None:
        self.notify(WATCHDOG=1)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class SignalFlags:
    """SIGTERM/SIGINT request a stop, SIGHUP a reload; the handlers only set
    flags and wake the main loop (nothing else is safe in a handler)."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stop = False
        self.reload = False
        self._old: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # in-process tests drive the daemon through its methods
        for sig, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_reload),
        ):
            self._old[sig] = signal.signal(sig, handler)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop = True
        self.wake.set()

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reload = True
        self.wake.set()

    def request_stop(self) -> None:
        self._on_stop(0, None)

    def request_reload(self) -> None:
        self._on_reload(0, None)


def every(interval_s: float) -> Callable[[float], bool]:
    """A tiny rate limiter: ``due(now)`` is true at most once per interval."""
    last = [-1e18]

    def due(now: float) -> bool:
        if now - last[0] >= interval_s:
            last[0] = now
            return True
        return False

    return due
