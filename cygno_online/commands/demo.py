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


#: said before the first start's compilation (measured on a shared 2-core machine)
FIRST_START = (
    "cygno-online demo: preparing the analyzers. The first start compiles the numba "
    "kernels (about 25 s on an idle 2-core machine, minutes on a busy one); later starts "
    "load them from the cache (about 4 s to the first numbers on screen)."
)


class CompileProgress:
    """Prints each numba kernel while it compiles (``numba:compile`` events),
    so the first start is not 25 silent seconds. Loads from the cache
    compile nothing and print nothing."""

    def __init__(self, out: object) -> None:
        self.out = out
        self.compiled = 0
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._t0: dict[int, float] = {}
        self._listener: object = None

    def __enter__(self) -> CompileProgress:
        from numba.core import event

        progress = self

        class Listener(event.Listener):
            def on_start(self, ev: event.Event) -> None:
                progress._t0[id(ev.data.get("dispatcher"))] = time.perf_counter()
                if progress.tty:  # one line, rewritten: kernel count and name
                    text = f"  compiling kernel {progress.compiled + 1}: {_kernel_name(ev)}"
                    progress._say("\r" + text[:78].ljust(78), end="")

            def on_end(self, ev: event.Event) -> None:
                t0 = progress._t0.pop(id(ev.data.get("dispatcher")), time.perf_counter())
                progress.compiled += 1
                if not progress.tty:
                    took = time.perf_counter() - t0
                    progress._say(f"  compiled {_kernel_name(ev)} in {took:.1f} s")

        self._listener = Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc: object) -> None:
        from numba.core import event

        event.unregister("numba:compile", self._listener)

    def _say(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.out, flush=True)  # type: ignore[call-overload]


def _kernel_name(ev: object) -> str:
    disp = getattr(ev, "data", {}).get("dispatcher")
    fn = getattr(disp, "py_func", None)
    if fn is None:
        return "a kernel"
    mod = fn.__module__.replace("cygno_online.", "")
    return f"{mod}.{fn.__name__}"


def warm_up_with_progress(
    daemon: object, client: object, out: object, timeout_s: float = 180.0
) -> float:
    """Compile (or load) every analyzer's kernels, start the daemon and wait
    for its first camera numbers, saying what happens; returns the seconds
    from here to the first numbers."""
    t0 = time.perf_counter()
    print(FIRST_START, file=out, flush=True)  # type: ignore[call-overload]
    with CompileProgress(out) as progress:
        analyzers = list(daemon.chain.analyzers)  # type: ignore[attr-defined]
        for i, a in enumerate(analyzers, 1):
            t = time.perf_counter()
            print(f"[{i}/{len(analyzers)}] analyzer {a.name}", file=out, flush=True)  # type: ignore[call-overload]
            a.warm_up()
            if progress.tty and progress.compiled:
                print("\r" + " " * 78 + "\r", end="", file=out)  # type: ignore[call-overload]
            print(f"      {a.name} ready in {time.perf_counter() - t:.1f} s", file=out, flush=True)  # type: ignore[call-overload]
        print(
            "starting the simulator and the daemon; waiting for the first image ...",
            file=out,
            flush=True,
        )  # type: ignore[call-overload]
        daemon.start()  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout_s
        state = client.state  # type: ignore[attr-defined]
        while time.monotonic() < deadline and not daemon.signals.stop:  # type: ignore[attr-defined]
            with state.lock:
                if any(r.family == "camera" for r in state.series.values()):
                    break
            daemon.signals.wake.wait(0.2)  # type: ignore[attr-defined]
    took = time.perf_counter() - t0
    what = (
        f"{progress.compiled} kernels compiled"
        if progress.compiled
        else "all kernels from the cache"
    )
    print(f"first numbers after {took:.1f} s ({what}); starting the viewer", file=out, flush=True)  # type: ignore[call-overload]
    return took


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
        client = LocalClient(daemon.publisher)
        try:
            warm_up_with_progress(daemon, client, sys.stderr)
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
