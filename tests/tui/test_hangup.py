"""A dropped terminal (SIGHUP) or SIGTERM ends the TUI instead of leaving it
running against a dead terminal."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from cygno_online.tui.app import _exit_on_hangup


class FakeApp:
    def __init__(self) -> None:
        self.exited = asyncio.Event()

    def exit(self) -> None:
        self.exited.set()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_signal_exits_the_app_and_handlers_are_restored(sig):
    before = signal.getsignal(sig)
    app = FakeApp()

    async def main() -> None:
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(app.exited.wait(), timeout=10)

    with _exit_on_hangup(app):
        asyncio.run(main())
    assert app.exited.is_set()
    assert signal.getsignal(sig) == before
