"""First contact: the demo says what it compiles and how long it took."""

from __future__ import annotations

import io
import threading
import types

import numba
import numpy as np

from cygno_online.commands.demo import FIRST_START, CompileProgress, warm_up_with_progress
from cygno_online.publish.state import MonitorState, SeriesRecord


def test_each_compiled_kernel_is_named():
    @numba.njit(cache=False)
    def tiny_kernel(a):  # compiled here, never cached
        return a.sum() + 1

    out = io.StringIO()
    with CompileProgress(out) as progress:
        tiny_kernel(np.arange(3.0))
    assert progress.compiled >= 1
    assert "compiled" in out.getvalue() and "tiny_kernel" in out.getvalue()


def test_warm_up_says_each_analyzer_and_the_time_to_the_first_numbers():
    state = MonitorState()

    class Analyzer:
        def __init__(self, name):
            self.name = name
            self.warmed = False

        def warm_up(self):
            self.warmed = True

    analyzers = [Analyzer("camera"), Analyzer("pmt")]

    def start():
        # the daemon's first camera metric arrives
        with state.lock:
            state.series["camera{camera=cam0}"] = SeriesRecord(
                "camera", {"camera": "cam0"}, {"raw_mean": 100.0}, {}, 1, 1, 1
            )

    daemon = types.SimpleNamespace(
        chain=types.SimpleNamespace(analyzers=analyzers),
        start=start,
        signals=types.SimpleNamespace(stop=False, wake=threading.Event()),
    )
    out = io.StringIO()
    took = warm_up_with_progress(daemon, types.SimpleNamespace(state=state), out, timeout_s=5)
    text = out.getvalue()
    assert text.startswith(FIRST_START) and "about 25 s" in FIRST_START
    assert "[1/2] analyzer camera" in text and "[2/2] analyzer pmt" in text
    assert "first numbers after" in text and "all kernels from the cache" in text
    assert all(a.warmed for a in analyzers) and took < 5
