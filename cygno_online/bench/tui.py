"""``cygno-online bench tui``: terminal output and CPU of the TUI at LIME rates.

Headless: the real :class:`~cygno_online.tui.app.MonitorApp` with a driver
that counts every byte Textual would write to the terminal (escape sequences
included), fed by :class:`~cygno_online.testing.tui_feed.LimeFeed` (the
messages of a LIME data run, at LIME rates). Time is simulated: a fake clock
advances by the app's poll period, the feed publishes what is due, the app
polls and Textual renders; so a minute of shift is measured in a few seconds,
and every repaint the minute would cause is rendered and counted (the image
refresh cap and the clock tick follow the fake clock).

Rows per tab and terminal size: bytes per second of terminal output averaged
over the simulated minute (targets: 20 kB/s at 80x24, 50 kB/s at 200x60,
5 kB/s with ``--low-bandwidth``), the same with nothing changing (heartbeats
only; target 1 kB/s), and CPU seconds per simulated second (the TUI's work:
applying messages, building the views, rendering; target 5 % of a core). The
"floor" column is the size of one full screen of the tab: what a naive
repaint of every frame would cost per second at the poll rate. Figures on a
shared machine vary; reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from cygno_online.bench.harness import Report, Row

BENCH = "tui"
HELP = "TUI terminal output (bytes/s) and CPU per tab and size at LIME rates (headless)"

TAB_KEYS = {
    "overview": "1",
    "camera": "2",
    "clusters": "3",
    "pmt": "4",
    "slow": "5",
    "alarms": "6",
    "runs": "7",
    "log": "8",
}
SIZES = {"80x24": (80, 24), "200x60": (200, 60)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="simulated seconds per case (60)"
    )
    parser.add_argument(
        "--tabs",
        default="overview,camera,clusters,pmt,slow,alarms,runs,log",
        help="comma-separated tabs (default: all)",
    )
    parser.add_argument("--sizes", default="80x24,200x60", help="terminal sizes (80x24,200x60)")
    parser.add_argument(
        "--palette", default="256", help="palette of the measured terminal (256: tmux, SSH)"
    )


def _counting_app(source: Any, clock: Any, **kw: Any) -> Any:
    from textual.drivers.headless_driver import HeadlessDriver

    from cygno_online.tui.app import MonitorApp

    class CountingDriver(HeadlessDriver):
        """Headless, but the app renders for it as for a terminal."""

        written = 0

        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            CountingDriver.written += len(data.encode("utf-8"))

        def flush(self) -> None:
            pass

    class CountingApp(MonitorApp):
        def _build_driver(self, headless, inline, mouse, size):  # type: ignore[override]
            self.counting = CountingDriver
            driver = self._driver = CountingDriver(self, debug=False, mouse=mouse, size=size)
            return driver

    return CountingApp(source, clock=clock, poll_s=3600.0, user="bench", **kw)


async def measure(
    tab: str,
    size: tuple[int, int],
    seconds: float,
    *,
    idle: bool = False,
    low_bandwidth: bool = False,
    palette: str = "256",
) -> dict[str, float]:
    """Bytes/s and CPU s/s of one tab at one size over ``seconds`` simulated.

    CPU is the TUI's own: the process's CPU time minus what is not the
    viewer's work in this one-process set-up - making the messages (the
    feed) and encoding them (the daemon's side) - and minus the test
    driver's synchronisation (``pilot.pause``: a callback through every
    widget per step), measured on the same screen right after. Decoding the
    wire frames and applying them to the state (the client thread of a real
    viewer), polling, building the views and rendering are counted."""
    from cygno_online.publish.messages import decode, encode
    from cygno_online.testing.tui_feed import LimeFeed
    from cygno_online.tui.app import POLL_S

    t0 = 1_800_000_000.0
    now = [t0]
    feed = LimeFeed(t0)
    src = feed.source()
    feed.advance(src, t0 + 30)  # half a minute of history before measuring
    now[0] = t0 + 30
    # From here the feed's messages are captured, encoded, then decoded and
    # applied as the client does (only the last two count as the TUI's CPU).
    apply = src.apply
    pending: list[Any] = []
    src.apply = pending.append  # type: ignore[method-assign]
    app = _counting_app(src, lambda: now[0], low_bandwidth=low_bandwidth, palette=palette)
    messages = 0
    async with app.run_test(size=size) as pilot:
        await pilot.press(TAB_KEYS[tab])
        app.poll_now()
        await pilot.pause()
        await pilot.pause()
        full = app.counting.written  # first full paint of the tab
        app.counting.written = 0
        steps = max(1, round(seconds / POLL_S))
        excluded = 0.0
        cpu0 = time.process_time()
        for _ in range(steps):
            now[0] += POLL_S
            if idle:
                src.last_message_at = float("inf")  # heartbeats only: nothing to show
            else:
                c = time.process_time()
                feed.advance(src, now[0])
                frames = [encode(m) for m in pending]
                pending.clear()
                excluded += time.process_time() - c
                for f in frames:
                    apply(decode([bytes(x) for x in f]))
                messages += len(frames)
            app.poll()
            await pilot.pause()
        cpu = time.process_time() - cpu0 - excluded
        written = app.counting.written
        # the driver's own cost on the same screen: the same steps, nothing new
        c = time.process_time()
        for _ in range(steps):
            await pilot.pause()
        harness = time.process_time() - c
    sim = steps * POLL_S
    return {
        "bytes_per_s": written / sim,
        "cpu_fraction": max(0.0, cpu - harness) / sim,
        "cpu_with_driver_fraction": cpu / sim,
        "driver_fraction": harness / sim,
        "full_screen_bytes": float(full),
        "messages_per_s": messages / sim,
    }


def run(args: argparse.Namespace) -> Report:
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    rows: list[Row] = []
    for size_name in sizes:
        size = SIZES.get(size_name) or tuple(int(x) for x in size_name.split("x"))
        for tab in tabs:
            for mode in ("live", "idle", "low-bandwidth"):
                if mode != "live" and tab not in ("overview", "camera"):
                    continue
                got = asyncio.run(
                    measure(
                        tab,
                        size,  # type: ignore[arg-type]
                        args.seconds if mode != "idle" else min(args.seconds, 30.0),
                        idle=mode == "idle",
                        low_bandwidth=mode == "low-bandwidth",
                        palette=args.palette,
                    )
                )
                target = _target(size_name, mode)
                rows.append(
                    Row(
                        name=f"{tab} {size_name} {mode}",
                        median_ms=got["cpu_fraction"] * 1000.0,
                        p90_ms=got["cpu_fraction"] * 1000.0,
                        runs=1,
                        throughput=got["bytes_per_s"] / 1000.0,
                        unit_name="kB/s",
                        extra={
                            "kB_per_s": round(got["bytes_per_s"] / 1000.0, 2),
                            "target_kB_per_s": target,
                            "cpu_percent": round(100 * got["cpu_fraction"], 2),
                            "cpu_percent_with_test_driver": round(
                                100 * got["cpu_with_driver_fraction"], 2
                            ),
                            "test_driver_cpu_percent": round(100 * got["driver_fraction"], 2),
                            "full_screen_kB": round(got["full_screen_bytes"] / 1000.0, 1),
                            "floor_kB_per_s_repaint_every_poll": round(
                                got["full_screen_bytes"] / 1000.0 / 0.25, 1
                            ),
                            "messages_per_s": round(got["messages_per_s"], 1),
                        },
                    )
                )
    return Report(
        bench=BENCH,
        rows=rows,
        info={
            "what": "terminal bytes/s and the TUI's CPU per simulated second "
            "(median_ms = CPU ms per s): decoding and applying the messages, polling, "
            "views, rendering; without the feed, the encoding and the test driver's "
            "synchronisation (reported beside it)",
            "load_average": " ".join(f"{x:.2f}" for x in _loadavg()),
            "rates": "LIME: 1.7 images/s, displays at 2 Hz, slow control every 10 s",
            "simulated_seconds": args.seconds,
            "palette": args.palette,
            "targets": "80x24 <= 20 kB/s, 200x60 <= 50 kB/s, idle <= 1 kB/s, "
            "low-bandwidth <= 5 kB/s, CPU <= 5 % of a core",
            "machine": "figures from a shared machine vary; reported, never asserted",
        },
    )


def _loadavg() -> tuple[float, ...]:
    import os

    try:
        return os.getloadavg()
    except OSError:
        return ()


def _target(size: str, mode: str) -> float:
    if mode == "idle":
        return 1.0
    if mode == "low-bandwidth":
        return 5.0
    return 50.0 if size == "200x60" else 20.0


def print_table(report: Report) -> str:
    lines = [
        f"  {'case':<32} {'kB/s':>8} {'target':>7} {'CPU %':>7} {'driver %':>9}"
        f" {'screen kB':>10} {'msg/s':>6}"
    ]
    for r in report.rows:
        e = r.extra
        lines.append(
            f"  {r.name:<32} {e['kB_per_s']:8.2f} {e['target_kB_per_s']:7.0f}"
            f" {e['cpu_percent']:7.2f} {e['test_driver_cpu_percent']:9.2f}"
            f" {e['full_screen_kB']:10.1f} {e['messages_per_s']:6.1f}"
        )
    load = report.info.get("load_average")
    if load:
        lines.append(f"  load average at the start (1, 5, 15 min): {load}")
    return "\n".join(lines)
