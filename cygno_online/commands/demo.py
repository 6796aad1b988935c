"""``cygno-online demo``: the daemon on the simulator with a live view in the
same terminal. No MIDAS, no servers, no configuration."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator

NAME = "demo"
HELP = "run the monitor on simulated LIME data with a live view (no setup needed)"
ORDER = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--no-tui", action="store_true", help="print a text summary every second instead of the TUI"
    )
    parser.add_argument(
        "--layout", default=None, help="simulated detector: lime (default), cygno04, crop:N"
    )


def demo_config(layout: str | None = None) -> dict:
    """The shipped demo configuration (package data), publishing disabled."""
    from importlib import resources

    import yaml

    text = resources.files("cygno_online.daemon").joinpath("demo.yaml").read_text()
    data = yaml.safe_load(text)
    if layout:
        data["source"]["simulator"]["layout"] = layout
    return data


def text_view(state: object, daemon: object) -> str:
    s = state
    with s.lock:
        run = s.run.get("run", "-")
        run_state = s.run.get("state", "waiting")
        h = s.health
        rate_in = h.get("rate_in_hz", 0.0) or 0.0
        rate_out = h.get("rate_processed_hz", 0.0) or 0.0
        clusters = [
            r.fields.get("n_clusters", r.fields.get("clusters"))
            for r in s.series.values()
            if r.family == "camera"
        ]
        clusters = [c for c in clusters if isinstance(c, (int, float))]
        counts = s.alarm_counts()
        n_series = len(s.series)
    c = daemon.health.counters()
    alarms = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
    ncl = f"{clusters[-1]:g}" if clusters else "-"
    return (
        f"run {run} ({run_state}) | events {c['events_processed']}/{c['events_in']} "
        f"(dropped {c['events_dropped']}) | {rate_in:.1f} ev/s in, {rate_out:.1f} ev/s analysed"
        f" | clusters {ncl} | series {n_series} | alarms: {alarms}"
    )


@contextlib.contextmanager
def logs_to_viewers(daemon: object) -> Iterator[None]:
    """While the TUI owns the terminal, log lines written to stderr would be
    painted over the screen: send them to the TUI's Log tab instead."""
    import logging

    main_logger = "cygno_online.daemon.main"  # publishes its own lines already

    class ToViewers(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == main_logger:
                return
            try:
                daemon._publish_log(
                    record.levelname.lower(), f"{record.name}: {record.getMessage()}"
                )
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [ToViewers()]
    try:
        yield
    finally:
        root.handlers[:] = saved


def run(args: argparse.Namespace) -> int:
    import tempfile

    from cygno_online.daemon.config import parse_config
    from cygno_online.daemon.main import Daemon
    from cygno_online.publish.client import LocalClient

    with tempfile.TemporaryDirectory(prefix="cygno-demo-") as tmp:
        data = demo_config(args.layout)
        data["state_dir"] = tmp
        data["summary_dir"] = f"{tmp}/summaries"
        cfg, chain = parse_config(data, source="<demo>")
        if args.log_level == "INFO":
            # the demo's own level (WARNING) unless --log-level was given
            import logging

            logging.getLogger().setLevel(cfg.log_level)
        daemon = Daemon(cfg, chain)
        daemon.signals.install()
        print("cygno-online demo: warming up the analyzers...", file=sys.stderr)
        daemon.start()
        client = LocalClient(daemon.publisher)
        try:
            use_tui = not args.no_tui and sys.stdout.isatty()
            tui = None
            if use_tui:
                try:
                    from cygno_online.tui.app import run_tui as tui
                except ImportError:
                    tui = None
            if tui is not None:
                with logs_to_viewers(daemon):
                    tui(client, title="CYGNO online demo")
            else:
                deadline = None if args.duration is None else time.monotonic() + args.duration
                while not daemon.signals.stop:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    daemon.signals.wake.wait(1.0)
                    print(text_view(client.state, daemon), flush=True)
        finally:
            client.close()
            daemon.shutdown()
            daemon.signals.restore()
        print(f"demo finished: {len(daemon.pipeline.summaries)} run summaries", file=sys.stderr)
    return 0
