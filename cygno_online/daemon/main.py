"""The daemon: wires source, pipeline, publisher, alarms and sinks together
and runs the main loop (signals, reload, sd_notify, watchdog, status).

Threads: main (signals, reload, systemd), ``source`` (owns the MIDAS client),
``analysis`` (the chain; its worker pool), ``publisher`` (owns every ZeroMQ
socket), plus the InfluxDB sink's own thread when enabled.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cygno_online.alarms.engine import AlarmEngine, alarm_metric
from cygno_online.analysis.outputs import Metric
from cygno_online.daemon.checkpoint import run_checkpoint
from cygno_online.daemon.config import DaemonConfig, load_config
from cygno_online.daemon.health import Health, health_metric
from cygno_online.daemon.pipeline import Pipeline
from cygno_online.daemon.service import Notifier, SignalFlags, every
from cygno_online.daemon.watchdog import Watchdog
from cygno_online.decode.items import RunInfo
from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.logs import flush_summaries
from cygno_online.publish.messages import Message
from cygno_online.publish.publisher import Publisher
from cygno_online.publish.state import AlarmRecord
from cygno_online.sources.base import Source

log = logging.getLogger("cygno_online.daemon")

#: configuration sections read only at start (a reload keeps their running values)
RESTART_ONLY = ("source", "publish", "pipeline", "decode", "influx", "state_dir", "registry",
                "quality")  # fmt: skip

#: maximum log messages about bad data published per health interval
LOG_BUDGET = 20


def build_source(cfg: DaemonConfig) -> Source:
    s = cfg.source
    if s.type == "replay":
        from cygno_online.sources.replay import ReplaySource

        return ReplaySource(
            s.replay.files,
            speed=s.replay.speed,
            follow=s.replay.follow,
            poll_s=s.replay.poll_s,
            experiment=cfg.experiment,
        )
    if s.type == "simulator":
        from cygno_online.sources.simulated import SimulatorSource

        return SimulatorSource.from_config(s.simulator, experiment=cfg.experiment)
    from cygno_online.sources.midas_live import MidasLiveSource

    return MidasLiveSource.from_config(s.midas, experiment=cfg.experiment)


def build_publisher(cfg: DaemonConfig, **kw: Any) -> Publisher:
    p = cfg.publish
    return Publisher(
        enabled=p.enabled,
        bind=p.bind,
        snapshot_bind=p.snapshot_bind,
        control_bind=p.control_bind,
        hwm=p.hwm,
        heartbeat_s=p.heartbeat_s,
        display_hz=cfg.pipeline.display_hz,
        display_max_side=p.display_max_side,
        queue_size=cfg.pipeline.output_queue,
        curve_secret_key_file=p.curve_secret_key_file,
        curve_authorized_keys_dir=p.curve_authorized_keys_dir,
        **kw,
    )


def run_body(run: RunInfo, state: str, stop_time_ns: int = 0) -> dict[str, Any]:
    return {
        "experiment": run.experiment,
        "run": run.run,
        "state": state,
        "description": run.description,
        "start_time_ns": run.start_time_ns,
        "stop_time_ns": stop_time_ns,
        "exposure_s": run.exposure_s,
        "pedestal": run.pedestal,
        "source": run.source,
    }


def run_end_text(run: int, summary: Any) -> str:
    """The viewers' log line of a run end: duration, events, quality."""
    if not isinstance(summary, dict):
        return f"run {run} stopped"
    parts = []
    dur = summary.get("duration_s")
    if isinstance(dur, (int, float)):
        parts.append(f"{dur:.0f} s")
    seen = (summary.get("counters") or {}).get("events_seen")
    if isinstance(seen, int):
        parts.append(f"{seen} events")
    quality = summary.get("quality")
    if quality:
        flags = summary.get("quality_flags") or []
        names = ", ".join(str(f.get("flag")) for f in flags[:3] if isinstance(f, dict))
        parts.append(f"quality {quality}" + (f" ({names})" if names else ""))
    return f"run {run} stopped" + (": " + ", ".join(parts) if parts else "")


class Daemon:
    """One monitor instance. ``run()`` is the whole life of the process;
    tests and the demo use ``start()``/``shutdown()``."""

    def __init__(
        self,
        cfg: DaemonConfig,
        chain: Any,
        *,
        source: Source | None = None,
        notifier: Notifier | None = None,
        overrides: dict[str, Any] | None = None,
        exit_at_end: bool = False,
    ) -> None:
        self.cfg = cfg
        self.chain = chain
        self.overrides = overrides
        self.exit_at_end = exit_at_end
        #: build a throw-away chain to validate a reloaded file (tests with
        #: fake chains turn it off)
        self.validate_reload_chain = True
        self.source = source or build_source(cfg)
        self.notifier = notifier or Notifier()
        self.signals = SignalFlags()
        self.health = Health()
        #: every thread (and issue 10's reader process) reports progress here
        self.watchdog = Watchdog(on_change=self._watchdog_change)
        self.health.watchdog = self.watchdog
        self.exit_code = 0
        self._source_error: BaseException | None = None
        self._log_budget = LOG_BUDGET
        self._run_number = 0
        self._stopped = False
        self.publisher = build_publisher(
            cfg,
            control_handlers={
                "ack": self._cmd_ack,
                "status": self._cmd_status,
                "alarms": self._cmd_alarms,
                "shelve": self._cmd_shelve,
                "unshelve": self._cmd_unshelve,
                "disable": self._cmd_disable,
                "enable": self._cmd_enable,
                "config": self._cmd_config,
                "reference": self._cmd_reference,
            },
            on_drop=lambda reason, n: self.health.drop(reason, n=n),
        )
        if cfg.state_dir:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
        # the viewers' Log and Runs tabs survive a restart (see publish.memory)
        self.viewer_memory: Any = None
        if cfg.state_dir:
            from cygno_online.publish.memory import ViewerMemory

            self.viewer_memory = ViewerMemory(cfg.state_dir / "viewers.json")
            self.viewer_memory.load_into(self.publisher.state)
        self._memory_due = every(5.0)
        self.alarms = AlarmEngine(
            cfg.alarm_rules,
            state_path=(cfg.state_dir / "alarms.json") if cfg.state_dir else None,
            on_transition=self._alarm_transition,
        )
        self.sink: Any = None
        self.registry: Any = None
        if cfg.registry_url:
            from cygno_online.sinks.registry import RunRegistry

            self.registry = RunRegistry(cfg.registry_url)  # connects at the first run end
        # the viewers' Runs tab: a run's reference run (off the publisher thread)
        from cygno_online.daemon.runlookup import ReferenceLookup

        self.reference_lookup = ReferenceLookup(self.registry)
        #: summaries not yet in the registry (its database was unreachable)
        self._unrecorded: list[dict[str, Any]] = []
        self.quality: Any = None
        qcfg = getattr(cfg, "quality_config", None)
        if qcfg is not None and qcfg.enabled:
            from cygno_online.quality.monitor import RunQuality

            self.quality = RunQuality(qcfg, self.registry)
        self.pipeline = Pipeline(
            chain,
            self.source,
            self,
            self.health,
            queue_events=cfg.pipeline.queue_events,
            summary_dir=cfg.summary_dir,
            experiment=cfg.experiment,
            summary_config=cfg.summary_config,
            stall_s=cfg.watchdog_stall_s,
            checkpoint=run_checkpoint(cfg.state_dir),
            checkpoint_every_s=cfg.pipeline.checkpoint_every_s,
            quality=self.quality,
        )
        self.health.extra = self._health_extra
        self._health_due = every(cfg.pipeline.health_every_s)
        self._alarms_due = every(cfg.alarms_resend_s)

    @classmethod
    def from_file(
        cls, path: str | Path, *, overrides: dict[str, Any] | None = None, **kw: Any
    ) -> Daemon:
        cfg, chain = load_config(path, overrides=overrides)
        return cls(cfg, chain, overrides=overrides, **kw)

    # -- start / stop ----------------------------------------------------------------
    def start(self) -> None:
        t0 = time.perf_counter()
        # Sockets first: an address that cannot be bound (in use, no such
        # interface) stops the daemon with one clear error before anything runs.
        self.publisher.start()
        self.notifier.status("warming up analyzers")
        warm = self.chain.warm_up()
        log.info("analyzers warmed up in %.2f s", warm)
        if self.publisher._thread is not None:
            pub = self.watchdog.register(
                "publisher", stall_s=self.cfg.watchdog_stall_s, thread=self.publisher._thread
            )
            self.publisher.on_beat = pub.beat
        if self.cfg.publish.enabled:
            log.info(
                "publishing on %s (snapshot %s, control %s)",
                self.publisher.endpoints.get("pub"),
                self.publisher.endpoints.get("snapshot"),
                self.publisher.endpoints.get("control"),
            )
        if self.cfg.influx_enabled:
            self._start_sink()
        self._publish_alarms(with_history=True)
        attach = getattr(self.source, "attach_watchdog", None)
        if attach is not None:
            # the MIDAS reader process (sources/midas_live.py)
            attach(self.watchdog, self.cfg.watchdog_stall_s)
        self.pipeline.start()
        log.info(
            "daemon started in %.2f s: source %s (%s sampling), %d analyzers",
            time.perf_counter() - t0,
            self.source.name,
            self.source.sampling,
            len(self.chain.analyzers),
        )
        self.notifier.ready(f"running, source {self.source.name}")

    def _start_sink(self) -> None:
        from cygno_online.params import Params
        from cygno_online.sinks.influx import InfluxSink

        self.sink = InfluxSink.from_params(
            Params(self.cfg.data.get("influx"), "influx"),
            state_dir=self.cfg.state_dir,
            experiment=self.cfg.experiment,
            on_drop=lambda n, reason: self.health.drop(f"sink_{reason}", n=int(n)),
        )
        self.sink.start()
        if getattr(self.sink, "_thread", None) is not None:
            # a send may block for the HTTP timeout (and retries wake each second)
            stall = max(self.cfg.watchdog_stall_s, 3 * float(self.sink.config.timeout_s))
            comp = self.watchdog.register("sink", stall_s=stall, thread=self.sink._thread)
            self.sink.on_beat = comp.beat

    def shutdown(self) -> None:
        """Stop the source, analyse what is queued, write the summary of the
        open run, flush the sinks, close the sockets. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        # threads ending from here on are stopping, not failing
        self.watchdog.done_all()
        self.notifier.stopping()
        t0 = time.monotonic()
        self.pipeline.stop(timeout=6.0)
        if self.viewer_memory is not None:
            self.viewer_memory.save(self.publisher.state, force=True)
        if self.sink is not None:
            try:
                self.sink.flush(1.5)
                self.sink.stop(1.0)
            except Exception:
                log.exception("sink did not stop cleanly")
        self.publisher.stop(timeout=1.0)
        if self.registry is not None:
            self.registry.close()
        self.chain.close()
        flush_summaries(force=True)
        log.info("daemon stopped in %.2f s", time.monotonic() - t0)

    # -- main loop -------------------------------------------------------------------
    def run(self) -> int:
        self.signals.install()
        try:
            self.start()
            self._loop()
        finally:
            self.shutdown()
            self.signals.restore()
        return self.exit_code

    def _loop(self) -> None:
        wd = self.notifier.watchdog_s
        wd_due = every(wd / 2) if wd else None
        status_due = every(5.0)
        summaries_due = every(1.0)
        last = (time.monotonic(), 0, 0)
        while not self.signals.stop:
            self.signals.wake.wait(0.25 if wd is None else min(0.25, wd / 4))
            self.signals.wake.clear()
            if self.signals.reload:
                self.signals.reload = False
                self.reload()
            if self._source_error is not None:
                self.exit_code = 1
                break
            if self.exit_at_end and self.pipeline.finished:
                break
            now = time.monotonic()
            self.watchdog.check()
            if summaries_due(now):
                flush_summaries()
            if wd_due is not None and wd_due(now) and self.alive():
                self.notifier.watchdog()
            if status_due(now):
                c = self.health.counters()
                dt = max(now - last[0], 1e-6)
                text = (
                    f"run {self._run_number or '-'}, "
                    f"{(c['events_in'] - last[1]) / dt:.1f} ev/s in, "
                    f"{(c['events_processed'] - last[2]) / dt:.1f} ev/s analysed, "
                    f"{c['events_dropped']} dropped, source {self.health.source_state}"
                )
                self.notifier.status(text)
                last = (now, c["events_in"], c["events_processed"])

    def alive(self) -> bool:
        """The systemd watchdog rule: every registered component (threads,
        reader process) progressed within its ``stall_s`` and none died
        (see ``watchdog.py``)."""
        return self.watchdog.healthy()

    def _watchdog_change(self, comp: Any, old: str) -> None:
        # main thread; the publisher may be the failed one (then this is lost,
        # the log line and the missing systemd feed remain)
        if comp.state in ("stalled", "dead"):
            self._publish_log(
                "error",
                f"watchdog: {comp.name} {'died' if comp.state == 'dead' else 'stalled'}; "
                "the service will be restarted by systemd",
            )
        elif comp.state == "ok":
            self._publish_log("info", f"watchdog: {comp.name} progressing again")

    def request_stop(self) -> None:
        self.signals.request_stop()

    # -- SIGHUP ----------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the file; apply analyzer parameters and alarm rules between
        events. An invalid file changes nothing. Returns True when applied."""
        if not self.cfg.path:
            log.warning("reload requested but the configuration did not come from a file")
            return False
        self.notifier.reloading()
        try:
            # Full validation (analyzers included) on fresh objects first, so
            # every error of the new file is reported at once.
            new, fresh = load_config(
                self.cfg.path, overrides=self.overrides, build_chain=self.validate_reload_chain
            )
            if fresh is not None:
                fresh.close()
            self.pipeline.call(lambda: self._apply(new))
        except (ConfigError, ConfigErrors) as exc:
            log.error(
                "reload of %s rejected, keeping the running configuration:\n%s", self.cfg.path, exc
            )
            self._publish_log("error", f"configuration reload rejected: {exc}")
            return False
        except TimeoutError as exc:
            log.error("reload of %s not applied: %s", self.cfg.path, exc)
            return False
        except Exception as exc:
            # whatever the file holds, SIGHUP never ends the daemon
            log.error(
                "reload of %s rejected (%s: %s), keeping the running configuration",
                self.cfg.path,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self._publish_log("error", f"configuration reload rejected: {exc}")
            return False
        finally:
            self.notifier.ready("running")
        for section in RESTART_ONLY:
            if self.cfg.data.get(section) != new.data.get(section):
                log.warning("reload: changes in %r take effect at the next restart", section)
        log.info("configuration %s reloaded", self.cfg.path)
        self._publish_log("info", "configuration reloaded")
        return True

    def _apply(self, new: DaemonConfig) -> None:
        # Analysis thread, between events. The chain validates everything
        # before changing anything; rules were validated by load_config.
        self.chain.reconfigure(new.chain_params())
        self.alarms.set_rules(new.alarm_rules)
        self.cfg.alarm_rules = new.alarm_rules
        # Viewers see new rules (and no longer see removed ones after their
        # next snapshot) at once.
        self._publish_alarms()
        # Sections read only at start keep their running values.
        data = dict(new.data)
        for key in RESTART_ONLY:
            data.pop(key, None)
            if key in self.cfg.data:
                data[key] = self.cfg.data[key]
        self.cfg.data = data

    # -- Dispatcher (analysis thread) -------------------------------------------------------
    def run_started(self, run: RunInfo, outputs: list) -> None:
        if run.extra.get("synthetic"):
            # events outside a run: no run is in progress
            self.publisher.submit(Message("run", run_body(run, "idle")))
            self.alarms.set_running(False)
            self._outputs(outputs)
            return
        self._run_number = run.run
        log.info(
            "run %s started (%s%s)",
            run.run,
            run.description or "no description",
            ", pedestal" if run.pedestal else "",
        )
        self.publisher.submit(Message("run", run_body(run, "running")))
        # the viewers' log shows where each run begins and ends
        self._publish_log(
            "info",
            f"run {run.run} started: {run.description or 'no description'}"
            + (" (pedestal)" if run.pedestal else ""),
            run=run.run,
        )
        self.alarms.set_running(True)
        self._outputs(outputs)

    def event_done(self, result: Any, event: Any, run: RunInfo) -> None:
        self._outputs(result.outputs)
        for err in result.errors:
            self._publish_log("warning", str(err), run=run.run, serial=event.header.serial_number)
        for name, text in result.analyzer_errors:
            self._publish_log(
                "error", f"analyzer {name}: {text}", run=run.run, serial=event.header.serial_number
            )

    def run_outputs(self, run: RunInfo, outputs: list) -> None:
        """The analyzers' outputs at the end of a run (frames analysed once
        their pedestal came in): published and stored like an event's."""
        self._outputs(outputs)

    def run_finished(self, run: RunInfo, summary: dict[str, Any]) -> None:
        stop_ns = (
            int(summary.get("stop_time_ns") or time.time_ns()) if isinstance(summary, dict) else 0
        )
        log.info("run %s finished", run.run)
        self._publish_log("info", run_end_text(run.run, summary), run=run.run)
        self.publisher.submit(Message("summary", summary))
        self.publisher.submit(Message("run", run_body(run, "stopped", stop_ns)))
        self.alarms.set_running(False)
        if isinstance(summary, dict):
            self._record_run(summary)

    def _record_run(self, summary: dict[str, Any]) -> None:
        """The run's ``run_summary`` point and its registry row. A registry that
        cannot be reached keeps the rows (bounded) for the next run end; the
        summary JSON file has them anyway (``summary --registry`` refills)."""
        from cygno_online.sinks.registry import RegistryError, run_summary_metric

        try:
            # to InfluxDB, viewers and alarm rules: the run's point and its checks
            metrics = [run_summary_metric(summary)]
            if self.quality is not None and summary.get("checks") is not None:
                metrics += self.quality.metrics(
                    summary["checks"],
                    int(summary.get("stop_time_ns") or time.time_ns()),
                    int(summary.get("run") or 0),
                )
            self._outputs(metrics)
        except Exception:
            log.exception("run %s: run_summary point failed", summary.get("run"))
        if self.registry is None:
            return
        self._unrecorded.append(summary)
        over = len(self._unrecorded) - 50
        if over > 0:
            del self._unrecorded[:over]
            self.health.drop("registry_rows_lost", n=over)  # counted, in the health report
        while self._unrecorded:
            doc = self._unrecorded[0]
            try:
                self.registry.record(doc)
            except RegistryError as exc:
                log.error(
                    "run %s: not recorded in the run registry (%d pending, retried at the "
                    "next run end): %s", doc.get("run"), len(self._unrecorded), exc,
                )  # fmt: skip
                return
            except Exception:
                log.exception("run %s: run registry failed", doc.get("run"))
                self._unrecorded.pop(0)
                continue
            log.info("run %s: recorded in %s", doc.get("run"), self.registry.url.display())
            self._unrecorded.pop(0)

    def periodic(self) -> None:
        self.alarms.tick()
        if self.quality is not None:
            try:
                # live reference checks every quality.live_every_s of the run
                self._outputs(self.quality.live())
            except Exception:
                log.exception("live reference checks failed")
        now = time.monotonic()
        if self.viewer_memory is not None and self._memory_due(now):
            self.viewer_memory.save(self.publisher.state)
        if self._health_due(now):
            self._log_budget = LOG_BUDGET
            body = self.health.report()
            self.publisher.submit(Message("health", body))
            metrics = [health_metric(body, self._run_number)]
            if self.sink is not None:
                try:
                    metrics.extend(self.sink.health_metrics(time.time_ns()))
                except Exception:
                    log.exception("sink health failed")
            self._outputs(metrics)
        if self._alarms_due(now):
            # Full alarm state periodically: a viewer never believes "OK"
            # because it missed a transition.
            self._publish_alarms()

    def source_state(self, state: str, detail: str) -> None:
        text = f"source {self.source.name}: {state}" + (f" ({detail})" if detail else "")
        log.info("%s", text)
        self._publish_log("info", text)

    def source_failed(self, exc: BaseException) -> None:
        self._source_error = exc
        self._publish_log("error", f"source failed: {exc}")
        self.signals.wake.set()

    def shutdown_requested(self) -> None:
        self.request_stop()

    # -- helpers ---------------------------------------------------------------------
    def _outputs(self, outputs: list) -> None:
        if not outputs:
            return
        self.publisher.submit_outputs(outputs)
        metrics = [o for o in outputs if isinstance(o, Metric)]
        for m in metrics:
            self.alarms.observe(m)
        if self.sink is not None and metrics:
            accepted = self.sink.submit(metrics)
            if accepted < len(metrics):
                self.health.drop("sink", n=len(metrics) - int(accepted))

    def _publish_log(
        self, level: str, text: str, *, run: int | None = None, serial: int | None = None
    ) -> None:
        if level in ("warning", "error") and self._log_budget <= 0:
            return
        self._log_budget -= 1
        self.publisher.submit(
            Message(
                "log",
                {
                    "time_ns": time.time_ns(),
                    "level": level,
                    "origin": "daemon",
                    "text": text,
                    "run": run,
                    "serial": serial,
                },
            )
        )

    def _publish_alarms(self, with_history: bool = False) -> None:
        """Every instance, then the list of ids: a viewer drops any alarm the
        daemon does not have (no ghosts after a restart or a missed message)."""
        for rec in self.alarms.records():
            self.publisher.submit(Message("alarm", asdict(rec)))
        self.publisher.submit(Message("alarm", self.alarms.sync_body(with_history)))

    def _alarm_transition(self, rec: AlarmRecord) -> None:
        self.publisher.submit(Message("alarm", asdict(rec)))
        if self.sink is not None and rec.transition != "removed":
            self.sink.submit([alarm_metric(rec, self.cfg.experiment, self._run_number)])
        if not rec.notify:
            return  # rate-limited (notify_interval_s): state published, no line
        line = f"alarm {rec.id} {rec.transition} [{rec.severity}]: {rec.message}"
        if rec.transition == "acknowledged":
            line += f" by {rec.acked_by}"
        elif rec.transition == "shelved":
            line += f" by {rec.shelved_by} ({rec.shelve_reason or 'no reason given'})"
        (log.warning if rec.transition == "raised" else log.info)("%s", line)
        if rec.transition in ("raised", "cleared") and self.cfg.source.midas.messages_to_midas:
            self.source.send_message(
                f"cygno-online: {line}",
                is_error=rec.transition == "raised" and rec.severity in ("error", "critical"),
            )

    def _health_extra(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher.stats(),
            "sink": self.sink.stats() if self.sink is not None else None,
            "run": self._run_number,
            "source": self.source.describe(),
            "alarms_active": sum(1 for r in self.alarms.records() if r.active),
            "checkpoint": ckpt.stats() if (ckpt := self.pipeline.checkpoint) else None,
        }

    # -- control commands (publisher thread) ---------------------------------------------
    def _cmd_ack(self, req: dict[str, Any]) -> dict[str, Any]:
        alarm = req.get("alarm")
        user = req.get("user")
        if not isinstance(alarm, str) or not isinstance(user, str) or not user:
            raise ValueError('ack needs "alarm" (id) and "user" (non-empty name)')
        rec = self.alarms.acknowledge(alarm, user)
        return {"alarm": asdict(rec)}

    @staticmethod
    def _alarm_user(req: dict[str, Any]) -> tuple[str, str]:
        alarm = req.get("alarm")
        user = req.get("user")
        if not isinstance(alarm, str) or not isinstance(user, str) or not user:
            raise ValueError('needs "alarm" (id) and "user" (non-empty name)')
        return alarm, user

    def _cmd_shelve(self, req: dict[str, Any]) -> dict[str, Any]:
        alarm, user = self._alarm_user(req)
        duration = req.get("duration_s")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise ValueError('shelve needs "duration_s" (seconds)')
        reason = req.get("reason") or ""
        rec = self.alarms.shelve(alarm, user, float(duration), str(reason))
        return {"alarm": asdict(rec)}

    def _cmd_unshelve(self, req: dict[str, Any]) -> dict[str, Any]:
        alarm, user = self._alarm_user(req)
        return {"alarm": asdict(self.alarms.unshelve(alarm, user))}

    def _cmd_disable(self, req: dict[str, Any]) -> dict[str, Any]:
        alarm, user = self._alarm_user(req)
        return {"alarm": asdict(self.alarms.disable(alarm, user))}

    def _cmd_enable(self, req: dict[str, Any]) -> dict[str, Any]:
        alarm, user = self._alarm_user(req)
        return {"alarm": asdict(self.alarms.enable(alarm, user))}

    def _cmd_status(self, req: dict[str, Any]) -> dict[str, Any]:
        with self.publisher.state.lock:
            run = dict(self.publisher.state.run)
            health = dict(self.publisher.state.health)
        return {
            "status": {
                "run": run,
                "health": health,
                "counters": self.health.counters(),
                "source": self.source.describe(),
                "source_state": self.health.source_state,
                "publisher": self.publisher.stats(),
                "config": self.cfg.path,
            }
        }

    def _cmd_alarms(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"alarms": [asdict(r) for r in self.alarms.records()]}

    def _cmd_config(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"config": self.cfg.data, "path": self.cfg.path}

    def _cmd_reference(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.reference_lookup.command(req)


def run_in_thread(daemon: Daemon) -> threading.Thread:
    """Start ``daemon`` and run its loop on a background thread (tests)."""
    daemon.start()
    t = threading.Thread(target=daemon._loop, name="daemon-main", daemon=True)
    t.start()
    return t
