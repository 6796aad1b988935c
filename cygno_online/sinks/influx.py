"""The InfluxDB sink: metrics -> disk spool -> sender thread -> server.

:meth:`InfluxSink.submit` encodes metrics as line protocol and appends them
to the spool (:mod:`cygno_online.sinks.spool`); a point counts as accepted
once it is there. It never waits for the network and never raises because the
spool is full: the oldest points are dropped, counted and reported through
``on_drop(count, reason)``.

The sender thread drains the spool in order, in batches of ``batch_size``
lines, and commits each batch (checkpoint file) only after the server
acknowledged it: delivery is at-least-once, and replays are harmless because
the same measurement + tags + timestamp is the same point.

Server answers: 2xx -> commit; 429/503/5xx/network -> back off (exponential,
jittered, bounded; ``Retry-After`` honoured) and resend; 400/413/422 -> split
the batch until the bad lines are isolated, write them to
``quarantine/YYYYMMDD.lp`` (+ ``.jsonl`` with the server's reason) and let the
rest through; 401/403/404 -> keep spooling, retry every ``auth_retry_s``,
state ``auth_error``/``config_error`` in :meth:`stats` and an error log line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cygno_online.analysis.catalogue import FieldSpec, SeriesSpec
from cygno_online.analysis.outputs import Metric
from cygno_online.errors import ConfigError
from cygno_online.logs import RateLimitedLog
from cygno_online.params import Params
from cygno_online.sinks.lineprotocol import LineEncoder, TypeRegistry
from cygno_online.sinks.senders import AUTH, CONFIG, REJECT, SendError, V1Sender, V2Sender
from cygno_online.sinks.spool import FSYNC_POLICIES, Batch, Spool, SpoolLockedError

log = logging.getLogger(__name__)
_quarantine_log = RateLimitedLog(log, "quarantine")

DropCallback = Callable[[int, str], None]


@dataclass(slots=True)
class SpoolConfig:
    dir: Path
    max_bytes: int = 1 << 30
    max_age_s: float = 7 * 86400.0
    segment_bytes: int = 16 << 20
    fsync: str = "batch"


@dataclass(slots=True)
class InfluxConfig:
    """The validated ``influx`` section (secrets already read from file/env)."""

    url: str
    spool: SpoolConfig
    api: str = "v2"
    org: str | None = None
    bucket: str | None = None
    token: str | None = field(default=None, repr=False)
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_file: str | None = None
    batch_size: int = 5000
    timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    auth_retry_s: float = 60.0
    integer_fields: tuple[str, ...] = ()

    def target(self) -> str:
        """Where the points go, without secrets (for logs and stats)."""
        if self.api == "v1":
            rp = f"/{self.retention_policy}" if self.retention_policy else ""
            return f"{self.url} db={self.database}{rp} (v1)"
        return f"{self.url} bucket={self.bucket} org={self.org} (v2)"


def _read_secret(p: Params, file_key: str, env_key: str, what: str) -> str | None:
    """The secret named by ``<x>_file`` or ``<x>_env``; never a literal value."""
    path = p.string(file_key, None)
    env = p.string(env_key, None)
    if path is not None and env is not None:
        p.error(file_key, f"give either {file_key} or {env_key}, not both")
        return None
    if path is not None:
        try:
            text = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            p.error(file_key, f"cannot read the {what} file ({exc.strerror})", value=path)
            return None
        if not text:
            p.error(file_key, f"the {what} file is empty", value=path)
            return None
        return text
    if env is not None:
        value = os.environ.get(env)
        if not value:
            p.error(env_key, f"environment variable {env} (the {what}) is not set", value=env)
            return None
        return value
    return None


def parse_config(p: Params, *, state_dir: Path | None) -> InfluxConfig | None:
    """Read and validate the ``influx`` section; errors are collected in ``p``."""
    p.boolean("enabled", False)
    for literal, hint in (
        ("token", "token_file or token_env"),
        ("password", "password_file or password_env"),
    ):
        if p.has(literal):
            p.raw(literal)
            p.error(
                literal,
                f"secrets must not be written in the configuration: use {hint} "
                "(a file readable only by the service user, or an environment variable)",
            )
    api = p.choice("api", "v2", ["v2", "v1"])
    url = p.string("url", None)
    if url is None:
        p.error("url", "is required (e.g. http://localhost:8086)")
    elif not url.startswith(("http://", "https://")):
        p.error("url", "must start with http:// or https://", value=url)
    org = p.string("org", None)
    bucket = p.string("bucket", None)
    database = p.string("database", None)
    rp = p.string("retention_policy", None)
    username = p.string("username", None)
    token = password = None
    if api == "v2":
        if org is None:
            p.error("org", 'is required with api: v2 (InfluxDB 1.8 compatibility: "-")')
        if bucket is None:
            p.error("bucket", 'is required with api: v2 (InfluxDB 1.8 compatibility: "db/rp")')
        token = _read_secret(p, "token_file", "token_env", "token")
        for key in ("database", "retention_policy", "username", "password_file", "password_env"):
            if p.has(key):
                p.raw(key)
                p.error(key, "is only used with api: v1 (with v2 put user:password in the token)")
    else:
        if database is None:
            p.error("database", "is required with api: v1")
        if username is not None:
            password = _read_secret(p, "password_file", "password_env", "password")
            if password is None and not (p.has("password_file") or p.has("password_env")):
                p.error("username", "needs password_file or password_env")
        for key in ("org", "bucket", "token_file", "token_env"):
            if p.has(key):
                p.raw(key)
                p.error(key, "is only used with api: v2")
        for key in ("password_file", "password_env"):
            p.raw(key)
    verify_tls = p.boolean("verify_tls", True)
    ca_file = p.string("ca_file", None)
    if ca_file is not None and not Path(ca_file).expanduser().is_file():
        p.error("ca_file", "is not a readable file", value=ca_file)
    batch_size = p.integer("batch_size", 5000, minimum=1, maximum=100_000)
    timeout_s = p.number("timeout_s", 10.0, minimum=0, exclusive_minimum=True)
    b_init = p.number("backoff_initial_s", 0.5, minimum=0, exclusive_minimum=True)
    b_max = p.number("backoff_max_s", 30.0, minimum=0, exclusive_minimum=True)
    auth_retry = p.number("auth_retry_s", 60.0, minimum=0, exclusive_minimum=True)
    integer_fields = p.list_of("integer_fields", [], str)

    sp = p.section("spool")
    sdir = sp.string("dir", None)
    if sdir is None and state_dir is None:
        sp.error("dir", "is required when the daemon has no state_dir")
    spool_dir = Path(sdir).expanduser() if sdir else (Path(state_dir or ".") / "influx-spool")
    max_bytes = sp.integer("max_bytes", 1 << 30, minimum=1 << 16)
    max_age = sp.number("max_age_s", 7 * 86400.0, minimum=0, exclusive_minimum=True)
    # default: 16 MiB, but at least 8 segments within max_bytes
    seg_default = max(1 << 12, min(16 << 20, (max_bytes or 1 << 30) // 8))
    seg_bytes = sp.integer("segment_bytes", seg_default, minimum=1 << 12)
    fsync = sp.choice("fsync", "batch", FSYNC_POLICIES)
    if isinstance(max_bytes, int) and isinstance(seg_bytes, int) and seg_bytes * 4 > max_bytes:
        sp.error(
            "segment_bytes",
            "must be at most a quarter of max_bytes (the drop policy works on whole segments)",
            value=seg_bytes,
        )
    sp.check_unknown()
    if url is None:
        return None
    return InfluxConfig(
        url=url,
        spool=SpoolConfig(spool_dir, max_bytes, float(max_age), seg_bytes, fsync),
        api=api,
        org=org,
        bucket=bucket,
        token=token,
        database=database,
        retention_policy=rp,
        username=username,
        password=password,
        verify_tls=verify_tls,
        ca_file=ca_file,
        batch_size=batch_size,
        timeout_s=float(timeout_s),
        backoff_initial_s=float(b_init),
        backoff_max_s=float(b_max),
        auth_retry_s=float(auth_retry),
        integer_fields=tuple(integer_fields),
    )


def make_sender(cfg: InfluxConfig) -> V1Sender | V2Sender:
    if not cfg.verify_tls and cfg.url.startswith("https:"):
        # said once here instead of urllib3's warning on every request
        log.warning(
            "influx sink: TLS certificate of %s is NOT verified (verify_tls: false)", cfg.url
        )
        import warnings

        from urllib3.exceptions import InsecureRequestWarning

        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    if cfg.api == "v1":
        return V1Sender(
            cfg.url,
            cfg.database or "",
            retention_policy=cfg.retention_policy,
            username=cfg.username,
            password=cfg.password,
            verify_tls=cfg.verify_tls,
            ca_file=cfg.ca_file,
            timeout_s=cfg.timeout_s,
        )
    return V2Sender(
        cfg.url,
        cfg.org or "-",
        cfg.bucket or "",
        token=cfg.token,
        verify_tls=cfg.verify_tls,
        ca_file=cfg.ca_file,
        timeout_s=cfg.timeout_s,
    )


class _Abort(Exception):
    """The in-flight batch must be given up (stop requested or overtaken by a drop)."""


def _nothing() -> None:
    pass


class InfluxSink:
    """Durable InfluxDB writer; see the module docstring."""

    #: seconds of sender activity the send rate is averaged over
    RATE_WINDOW_S = 10.0

    def __init__(
        self,
        config: InfluxConfig,
        *,
        experiment: str,
        on_drop: DropCallback | None = None,
        sender: Any = None,
    ) -> None:
        self.config = config
        self.experiment = experiment
        self.on_drop = on_drop
        self._sender = sender
        self._own_sender = False
        self.spool = Spool(
            config.spool.dir,
            max_bytes=config.spool.max_bytes,
            max_age_s=config.spool.max_age_s,
            segment_bytes=config.spool.segment_bytes,
            fsync=config.spool.fsync,
            max_record_lines=config.batch_size,
            on_drop=self._dropped,
        )
        self._encoder: LineEncoder | None = None
        self._encode_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight = False
        self._last_run = 0
        self._sent_window: deque[tuple[float, int]] = deque()
        self._last_sync = 0.0
        self._last_loud = 0.0
        self._quarantine_lock = threading.Lock()
        self.counters = {
            "points_sent": 0,
            "batches": 0,
            "retries": 0,
            "quarantined": 0,
            "submit_errors": 0,
        }
        #: called on every loop of the sender thread (the daemon's watchdog)
        self.on_beat: Callable[[], None] = _nothing
        self.state = "idle"
        self.last_error = ""
        self._last_error_mono = 0.0

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_params(
        cls,
        params: Params,
        *,
        state_dir: Path | None,
        experiment: str,
        on_drop: DropCallback | None = None,
    ) -> InfluxSink:
        """Validate the ``influx`` section; raises ConfigError(s) naming key paths.

        Nothing is created on disk here (``check-config`` builds a sink too):
        the spool is opened by :meth:`start` (or the first :meth:`submit`).
        """
        cfg = parse_config(params, state_dir=Path(state_dir) if state_dir else None)
        params.finish()
        if cfg is None:  # pragma: no cover - finish() raised already
            raise ConfigError(params.key_path("url"), "is required")
        return cls(cfg, experiment=experiment, on_drop=on_drop)

    # -- lifecycle --------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if self.spool.opened:
            return
        with self._open_lock:
            if self.spool.opened:
                return
            self.spool.open()
            registry = TypeRegistry(self.config.spool.dir / "schema.json")
            with self._encode_lock:
                self._encoder = LineEncoder(
                    self.experiment,
                    integer_fields=self.config.integer_fields,
                    registry=registry,
                )

    def start(self) -> None:
        """Open the spool (replaying what is left from before) and start the sender."""
        if self._thread is not None:
            return
        try:
            self._ensure_open()
        except SpoolLockedError as exc:
            raise RuntimeError(f"influx sink: {exc}") from None
        if self._sender is None:
            self._sender = make_sender(self.config)
            self._own_sender = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="influx-sender", daemon=True)
        self._thread.start()
        log.info(
            "influx sink: writing to %s, spool %s (%d points pending)",
            self.config.target(),
            self.config.spool.dir,
            self.spool.pending_points,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the sender (what is not delivered stays in the spool) and close."""
        self._stop.set()
        with self.spool.changed:
            self.spool.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("influx sink: sender still busy after %.1f s (left running)", timeout)
                return
            self._thread = None
        if self._encoder is not None:
            with self._encode_lock, contextlib.suppress(OSError):
                self._encoder.registry.save()
        if self._sender is not None and self._own_sender:
            with contextlib.suppress(Exception):
                self._sender.close()
            self._sender = None  # a later start() makes a fresh one
        if self.spool.opened:
            self.spool.close()
        self.state = "stopped"

    def flush(self, timeout: float) -> bool:
        """Wait until every accepted point was delivered (or quarantined/dropped)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self.spool.changed:
            while True:
                if self.spool.pending_points <= 0 and not self._in_flight:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self.spool.changed.wait(min(left, 0.5))

    # -- producer side --------------------------------------------------------------------------
    def submit(self, metrics: Iterable[Metric]) -> int:
        """Encode and spool ``metrics``; returns how many points were accepted."""
        try:
            self._ensure_open()
        except (OSError, SpoolLockedError) as exc:
            metrics = list(metrics)
            self.counters["submit_errors"] += 1
            self._set_error("spool_error", f"cannot open spool: {exc}")
            self._dropped(len(metrics), "spool_io_error")
            return 0
        with self._encode_lock:
            assert self._encoder is not None
            lines = []
            for m in metrics:
                line = self._encoder.encode(m)
                if line is not None:
                    lines.append(line)
                    self._last_run = m.run
            conflicts = self._encoder.counters.conflicts
            if conflicts:
                for key, text in conflicts.items():
                    log.warning("influx sink: field %s left out: %s (first occurrence)", key, text)
                conflicts.clear()
        try:
            return self.spool.append(lines)
        except RuntimeError:
            # stop() closed the spool meanwhile: reopen; the points stay durable
            # and are sent by the next start()
            self._ensure_open()
            return self.spool.append(lines)

    def _dropped(self, count: int, reason: str) -> None:
        if self.on_drop is not None and count:
            try:
                self.on_drop(count, reason)
            except Exception:
                log.exception("influx sink: on_drop callback failed")

    # -- sender thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        self.state = "ok"
        while not self._stop.is_set():
            self.on_beat()
            self._housekeeping()
            batch = self.spool.read_batch(self.config.batch_size)
            if batch is None:
                # appends notify the condition; the timeout keeps housekeeping going
                with self.spool.changed:
                    if not self.spool.has_unread() and not self._stop.is_set():
                        self.spool.changed.wait(0.5)
                continue
            self._in_flight = True
            try:
                self._deliver(batch.lines, batch)
                self.spool.commit(batch)
            except _Abort:
                self.spool.rewind()
            except Exception as exc:  # never let the thread die: the spool keeps everything
                log.exception("influx sink: unexpected error in the sender")
                self._set_error("error", f"unexpected: {exc}")
                self.spool.rewind()
                self._stop.wait(1.0)
            finally:
                self._in_flight = False
                with self.spool.changed:
                    self.spool.changed.notify_all()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_sync >= 1.0:
            self._last_sync = now
            self.spool.sync()
            self.spool.enforce_age()
            if self._encoder is not None:
                # under the encode lock: submit() may be adding fields right now
                with self._encode_lock:
                    try:
                        self._encoder.registry.save()
                    except OSError as exc:
                        log.error("influx sink: cannot save schema registry: %s", exc)

    def _deliver(self, lines: list[bytes], batch: Batch) -> None:
        """Send ``lines``; split rejected batches down to the bad lines."""
        try:
            self._send_with_retry(lines, batch)
        except SendError as exc:  # only REJECT reaches here
            if len(lines) == 1:
                self._quarantine(lines[0], exc)
                return
            mid = len(lines) // 2
            self._deliver(lines[:mid], batch)
            self._deliver(lines[mid:], batch)

    def _send_with_retry(self, lines: list[bytes], batch: Batch) -> None:
        attempt = 0
        body = b"\n".join(lines)
        while True:
            if self._stop.is_set() or batch.generation != self.spool.generation:
                raise _Abort
            try:
                self._sender.send(body)
            except SendError as exc:
                if exc.kind == REJECT:
                    raise
                self.counters["retries"] += 1
                attempt += 1
                if exc.kind in (AUTH, CONFIG):
                    state = "auth_error" if exc.kind == AUTH else "config_error"
                    self._set_error(state, exc.message, loud=True)
                    delay = self.config.auth_retry_s
                else:
                    self._set_error("retrying", exc.message)
                    delay = self._backoff(attempt, exc.retry_after)
                self._wait(delay, batch)
                continue
            self.counters["batches"] += 1
            self.counters["points_sent"] += len(lines)
            self._sent_window.append((time.monotonic(), len(lines)))
            if self.state != "ok":
                log.info("influx sink: %s reachable again, sending", self.config.target())
                self.state = "ok"
            return

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # the server knows best, but a bogus header must not park us for hours
            return min(retry_after, max(300.0, self.config.backoff_max_s))
        base = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (attempt - 1))
        # "equal jitter": never less than half the step, so a herd of senders
        # spreads out but each still backs off
        return base / 2 + random.uniform(0, base / 2)

    def _wait(self, delay: float, batch: Batch) -> None:
        deadline = time.monotonic() + delay
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._stop.wait(min(left, 1.0)):
                raise _Abort
            self.on_beat()
            self._housekeeping()
            if batch.generation != self.spool.generation:
                raise _Abort

    def _set_error(self, state: str, message: str, *, loud: bool = False) -> None:
        first = self.state != state
        self.state = state
        self.last_error = message
        self._last_error_mono = time.monotonic()
        now = time.monotonic()
        if loud and (first or now - self._last_loud > 600):
            self._last_loud = now
            log.error(
                "influx sink: %s refused the writes (%s); points stay in the spool, "
                "retrying every %.0f s - fix the credentials/database",
                self.config.target(),
                message,
                self.config.auth_retry_s,
            )
        elif first:
            log.warning("influx sink: %s: %s (spooling, will retry)", self.config.target(), message)

    # -- quarantine -------------------------------------------------------------------------------
    def _quarantine(self, line: bytes, exc: SendError) -> None:
        qdir = self.config.spool.dir / "quarantine"
        now = dt.datetime.now(dt.UTC)
        day = now.strftime("%Y%m%d")
        with self._quarantine_lock:
            try:
                qdir.mkdir(parents=True, exist_ok=True)
                with open(qdir / f"{day}.lp", "ab") as f:
                    f.write(line + b"\n")
                with open(qdir / f"{day}.jsonl", "a") as f:
                    doc = {
                        "time": now.isoformat(timespec="milliseconds"),
                        "status": exc.status,
                        "reason": exc.message,
                        "target": self.config.target(),
                        "line": line.decode("utf-8", "replace"),
                    }
                    f.write(json.dumps(doc) + "\n")
            except OSError as err:
                log.error("influx sink: cannot write quarantine file in %s: %s", qdir, err)
        self.counters["quarantined"] += 1
        _quarantine_log.warning(
            "influx sink: server rejected a point (%s); quarantined in %s",
            exc.message,
            qdir,
            key=str(qdir),
        )

    # -- introspection ------------------------------------------------------------------------------
    def send_rate(self) -> float:
        now = time.monotonic()
        win = self._sent_window
        while win and now - win[0][0] > self.RATE_WINDOW_S:
            win.popleft()
        return sum(n for _, n in win) / self.RATE_WINDOW_S

    def stats(self) -> dict[str, Any]:
        oldest = self.spool.oldest_append_ns() if self.spool.opened else None
        enc = self._encoder.counters if self._encoder is not None else None
        return {
            "state": self.state,
            "target": self.config.target(),
            "spool_bytes": self.spool.pending_bytes() if self.spool.opened else 0,
            "points_pending": max(0, self.spool.pending_points),
            "oldest_age_s": max(0.0, (time.time_ns() - oldest) / 1e9) if oldest else 0.0,
            "send_rate": self.send_rate(),
            "points_sent": self.counters["points_sent"],
            "batches": self.counters["batches"],
            "retries": self.counters["retries"],
            "dropped": self.spool.stats["dropped"],
            "dropped_by_reason": dict(self.spool.stats["dropped_by_reason"]),
            "quarantined": self.counters["quarantined"],
            "corrupt_records": self.spool.stats["corrupt_records"],
            "corrupt_bytes": self.spool.stats["corrupt_bytes"],
            "invalid_points": enc.invalid_points if enc else 0,
            "fields_skipped": enc.fields_skipped if enc else 0,
            "last_error": self.last_error,
            "last_error_age_s": (
                time.monotonic() - self._last_error_mono if self._last_error_mono else None
            ),
        }

    def health_metrics(self, now_ns: int) -> list[Metric]:
        """The stats as one ``monitor`` point tagged ``component=influx``."""
        s = self.stats()
        fields: dict[str, float | int | bool | str] = {
            k: float(s[k])
            for k in (
                "spool_bytes",
                "points_pending",
                "oldest_age_s",
                "send_rate",
                "points_sent",
                "batches",
                "retries",
                "dropped",
                "quarantined",
                "corrupt_records",
                "invalid_points",
            )
        }
        fields["state"] = s["state"]
        fields["last_error"] = s["last_error"]
        units = {
            "spool_bytes": "B",
            "oldest_age_s": "s",
            "send_rate": "points/s",
        }
        return [
            Metric(
                "monitor",
                int(now_ns),
                self._last_run,
                0,
                fields,
                {"component": "influx"},
                units,
            )
        ]


#: the metric catalogue's declaration of :meth:`InfluxSink.health_metrics`
SINK_SERIES = SeriesSpec(
    "monitor",
    (
        FieldSpec("spool_bytes", "float", "B", "bytes waiting in the spool"),
        FieldSpec("points_pending", "float", "", "points waiting in the spool"),
        FieldSpec("oldest_age_s", "float", "s", "age of the oldest unsent point"),
        FieldSpec("send_rate", "float", "points/s"),
        FieldSpec("points_sent", "float", "", "(counter)"),
        FieldSpec("batches", "float", "", "(counter)"),
        FieldSpec("retries", "float", "", "(counter)"),
        FieldSpec("dropped", "float", "", "points the spool dropped, full or too old (counter)"),
        FieldSpec("quarantined", "float", "", "points the server rejected (counter)"),
        FieldSpec("corrupt_records", "float", "", "(counter)"),
        FieldSpec("invalid_points", "float", "", "(counter)"),
        FieldSpec("state", "string", "", "idle, ok, retrying, auth_error, config_error, stopped"),
        FieldSpec("last_error", "string"),
    ),
    ("component",),
    "sink influx",
    "the InfluxDB sink's own health (component=influx)",
)
