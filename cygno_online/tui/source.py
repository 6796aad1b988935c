"""Where the TUI gets its :class:`MonitorState` from.

The app only needs the small :class:`StateSource` interface. The real
:class:`~cygno_online.publish.client.MonitorClient` and the in-process
:class:`~cygno_online.publish.client.LocalClient` satisfy it as they are;
:class:`FakeSource` is the "fake publisher" of the tests and of development:
it applies :class:`~cygno_online.publish.messages.Message` objects to its own
state, with the same code path the daemon and the client use.

Alarm limits for the slow-control table come from the daemon's alarm rules,
asked once per connection through the control socket (``query("config")``)
on a worker thread, never from the UI thread.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.publish.messages import Message, display_message, metric_message
from cygno_online.publish.state import AlarmRecord, MonitorState, series_id


@runtime_checkable
class StateSource(Protocol):
    """What the TUI reads. ``state`` is written by another thread and read
    by the TUI under ``state.lock``."""

    state: MonitorState
    connected: bool
    disconnected_since: float | None

    def ack(self, alarm_id: str, user: str) -> dict[str, Any]: ...

    def shelve(
        self, alarm_id: str, user: str, duration_s: float, reason: str = ""
    ) -> dict[str, Any]: ...

    def unshelve(self, alarm_id: str, user: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Limit:
    """Alarm limits of one (family, tags, field) selection, from a rule."""

    rule_id: str
    family: str
    tags: dict[str, str]
    field: str
    low: float | None = None
    high: float | None = None
    severity: str = "warning"

    def matches(self, family: str, tags: dict[str, str], field: str) -> bool:
        return (
            family == self.family
            and field == self.field
            and all(tags.get(k) == v for k, v in self.tags.items())
        )

    def alarm_id(self, tags: dict[str, str]) -> str:
        # Same id the alarm engine gives the instance of this rule for a series.
        return series_id(self.rule_id, {k: v for k, v in tags.items() if k not in self.tags})

    def text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g}..{self.high:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        if self.high is not None:
            return f"<= {self.high:g}"
        return ""


def limits_from_rules(rules: list[dict[str, Any]]) -> list[Limit]:
    """Limits from alarm rules as written in the daemon's configuration."""
    out = []
    for r in rules or []:
        if not isinstance(r, dict) or not r.get("id") or not r.get("family") or not r.get("field"):
            continue
        low = high = None
        band = r.get("band")
        if isinstance(band, (list, tuple)) and len(band) == 2:
            low, high = _num(band[0]), _num(band[1])
        if r.get("above") is not None:
            high = _num(r["above"])
        if r.get("below") is not None:
            low = _num(r["below"])
        if low is None and high is None:
            continue
        out.append(
            Limit(
                str(r["id"]),
                str(r["family"]),
                {str(k): str(v) for k, v in (r.get("tags") or {}).items()},
                str(r["field"]),
                low,
                high,
                str(r.get("severity", "warning")),
            )
        )
    return out


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class Expectations:
    """What the Overview compares live numbers with, from the daemon's
    configuration (``summary.references`` and the run-quality rules)."""

    #: expected 55Fe peak (cluster integral, ADU): ``summary.references.fe55_peak``
    fe55_peak: float | None = None
    #: allowed relative shift: the ``fe55_peak_shifted`` quality rule (0.1 default)
    fe55_tolerance: float = 0.1
    #: a pedestal box is flagged when off the map by more than this many sigma
    pedestal_k_sigma: float = 3.0
    #: where ``fe55_peak`` comes from: "" the configuration, else the
    #: reference run of the live quality checks ("run 42880")
    fe55_from: str = ""

    def fe55_band(self) -> tuple[float, float] | None:
        if self.fe55_peak is None:
            return None
        return (
            self.fe55_peak * (1 - self.fe55_tolerance),
            self.fe55_peak * (1 + self.fe55_tolerance),
        )


def expectations_from_config(cfg: dict[str, Any]) -> Expectations:
    out = Expectations()
    summary = cfg.get("summary") if isinstance(cfg, dict) else None
    if not isinstance(summary, dict):
        return out
    refs = summary.get("references") or {}
    if isinstance(refs, dict):
        out.fe55_peak = _num(refs.get("fe55_peak"))
    for rule in summary.get("quality_rules") or []:
        if isinstance(rule, dict) and rule.get("flag") == "fe55_peak_shifted":
            tol = _num(rule.get("above"))
            if tol is not None and tol > 0:
                out.fe55_tolerance = tol
    return out


def fetch_view_config(
    source: Any, timeout_s: float = 2.0
) -> tuple[list[Limit], Expectations] | None:
    """Ask the daemon for its alarm rules and references; None when it cannot
    say. Blocks up to ``timeout_s``: call it from a worker thread."""
    given = getattr(source, "limits", None)
    if given is not None:
        return list(given), getattr(source, "expectations", None) or Expectations()
    query = getattr(source, "query", None)
    if query is None:
        return None
    try:
        reply = query("config", timeout_s=timeout_s)
    except Exception:
        return None
    if not isinstance(reply, dict) or "config" not in reply:
        return None
    cfg = reply.get("config") or {}
    rules = (cfg.get("alarms") or {}).get("rules") if isinstance(cfg, dict) else None
    return limits_from_rules(rules or []), expectations_from_config(cfg)


def fetch_limits(source: Any, timeout_s: float = 2.0) -> list[Limit] | None:
    """Ask the daemon for its alarm rules; None when it cannot say.

    Blocks up to ``timeout_s``: call it from a worker thread.
    """
    got = fetch_view_config(source, timeout_s)
    return None if got is None else got[0]


def track_units(source: Any) -> bool:
    """Remember every metric's units as messages arrive.

    The state keeps one record per series, and analyzers that publish one
    field per message (HV: demand, measured, current under one channel) leave
    only the last field's unit there. The client's ``on_update`` hook (kept
    chained) sees every message; recording a unit is a dict update, no UI
    work. Returns False when the source has no such hook."""
    from cygno_online.tui.keymetrics import remember_units

    if not hasattr(source, "on_update"):
        return False
    previous = source.on_update
    if getattr(previous, "_tracks_units", False):
        return True

    def hook(msg: Message) -> None:
        if msg.kind == "metric":
            b = msg.body
            units = b.get("units")
            if units:
                remember_units(series_id(b["family"], b.get("tags") or {}), units)
        if previous is not None:
            previous(msg)

    hook._tracks_units = True  # type: ignore[attr-defined]
    source.on_update = hook
    return True


class FakeSource:
    """A state you drive by hand: the tests' publisher.

    Every helper builds the same :class:`Message` the daemon publishes and
    applies it to :attr:`state`, numbering it like the publisher does.
    """

    def __init__(
        self, *, limits: list[Limit] | None = None, expectations: Expectations | None = None
    ) -> None:
        self.state = MonitorState()
        self.connected = True
        self.disconnected_since: float | None = None
        #: wall time of the last message; None: never connected. Set by
        #: :meth:`disconnect` / :meth:`never_connected` (live sources by every
        #: message); ``live`` means "the last message is recent"
        self.last_message_at: float | None = float("inf")
        self.limits = limits
        self.expectations = expectations
        self.acks: list[tuple[str, str]] = []
        self.shelves: list[tuple[str, str, float, str]] = []
        self.closed = False
        #: called with every applied message, like MonitorClient.on_update
        self.on_update: Any = None
        self._seq = 0

    # -- StateSource --------------------------------------------------------------
    def ack(self, alarm_id: str, user: str) -> dict[str, Any]:
        self.acks.append((alarm_id, user))
        return self._operate(alarm_id, user, "acknowledged")

    def shelve(
        self, alarm_id: str, user: str, duration_s: float, reason: str = ""
    ) -> dict[str, Any]:
        self.shelves.append((alarm_id, user, duration_s, reason))
        return self._operate(alarm_id, user, "shelved", duration_s, reason)

    def unshelve(self, alarm_id: str, user: str) -> dict[str, Any]:
        self.shelves.append((alarm_id, user, 0, "unshelve"))
        return self._operate(alarm_id, user, "unshelved")

    def _operate(
        self, alarm_id: str, user: str, what: str, duration_s: float = 0, reason: str = ""
    ) -> dict[str, Any]:
        """The daemon's answer to an operator action (the engine's transitions)."""
        with self.state.lock:
            rec = self.state.alarms.get(alarm_id)
        if rec is None:
            return {"ok": False, "error": f"unknown alarm {alarm_id!r}"}
        new = AlarmRecord(**asdict(rec))
        now = time.time_ns()
        if what == "acknowledged":
            if new.state == "active_unack":
                new.state = "active_ack"
            elif new.state == "cleared_unack":
                new.state = "normal"
            new.acked, new.acked_by, new.acked_ns = new.state == "active_ack", user, now
            new.latched = False
        elif what == "shelved":
            new.state, new.shelved_by, new.shelve_reason = "shelved", user, reason
            new.shelved_until_ns = now + int(duration_s * 1e9)
        else:
            if new.state != "shelved":
                return {"ok": False, "error": f"alarm {alarm_id!r} is not shelved"}
            new.state = "active_unack" if new.active else "normal"
            new.shelved_until_ns, new.shelved_by, new.shelve_reason = 0, "", ""
        new.since_ns = now
        new.transition = what
        self.apply(Message("alarm", asdict(new)))
        return {"ok": True, "alarm": asdict(new)}

    def close(self) -> None:
        self.closed = True

    # -- driving it -----------------------------------------------------------------
    def apply(self, msg: Message) -> Message:
        self._seq += 1
        msg.seq = self._seq
        self.state.apply(msg)
        if self.on_update is not None:
            self.on_update(msg)
        return msg

    def metric(
        self,
        family: str,
        fields: dict[str, Any],
        *,
        tags: dict[str, str] | None = None,
        units: dict[str, str] | None = None,
        time_ns: int | None = None,
        run: int = 0,
        serial: int = 0,
    ) -> Message:
        m = Metric(
            family,
            time.time_ns() if time_ns is None else time_ns,
            run,
            serial,
            dict(fields),
            dict(tags or {}),
            dict(units or {}),
        )
        return self.apply(metric_message(m))

    def display(
        self,
        kind: str,
        name: str,
        arrays: dict[str, Any],
        *,
        meta: dict[str, Any] | None = None,
        time_ns: int | None = None,
        run: int = 0,
        serial: int = 0,
    ) -> Message:
        d = Display(
            kind,
            name,
            run,
            serial,
            time.time_ns() if time_ns is None else time_ns,
            dict(arrays),
            dict(meta or {}),
        )
        return self.apply(display_message(d))

    def run(self, **body: Any) -> Message:
        base = {
            "experiment": "",
            "run": 0,
            "state": "running",
            "description": "",
            "start_time_ns": 0,
            "stop_time_ns": 0,
            "exposure_s": 0.0,
            "pedestal": False,
            "source": "",
        }
        base.update(body)
        return self.apply(Message("run", base))

    def alarm(self, **body: Any) -> Message:
        rec = AlarmRecord(**body)
        return self.apply(Message("alarm", asdict(rec)))

    def log(
        self, text: str, level: str = "info", *, origin: str = "daemon", time_ns: int | None = None
    ) -> Message:
        return self.apply(
            Message(
                "log",
                {
                    "time_ns": time.time_ns() if time_ns is None else time_ns,
                    "level": level,
                    "origin": origin,
                    "text": text,
                    "run": None,
                    "serial": None,
                },
            )
        )

    def apply_summary(self, doc: dict[str, Any]) -> Message:
        """A run summary as the daemon publishes it at the end of a run."""
        return self.apply(Message("summary", dict(doc)))

    def health(self, **body: Any) -> Message:
        return self.apply(Message("health", dict(body)))

    def disconnect(self, since: float | None = None) -> None:
        """The link is lost; ``since``: time of the last message."""
        self.connected = False
        self.disconnected_since = time.time() if since is None else since
        self.last_message_at = self.disconnected_since

    def never_connected(self) -> None:
        """Nothing ever came from the daemon."""
        self.connected = False
        self.disconnected_since = None
        self.last_message_at = None

    def reconnect(self) -> None:
        self.connected = True
        self.disconnected_since = None
        self.last_message_at = float("inf")


def read_server_key(path: str | Path) -> bytes:
    """The daemon's public CURVE key from a certificate file (``cygno-online
    keys``) or a file holding just the 40-character Z85 text. An unreadable
    or non-text file is the same one-line ConfigError as a file without a key."""
    from cygno_online.errors import ConfigError

    try:
        raw = Path(path).read_bytes()
        if len(raw) > 65536:
            raise ConfigError("--server-key", f"{path}: {len(raw)} bytes, not a key file")
        text = raw.decode("ascii")
    except OSError as exc:
        raise ConfigError("--server-key", f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "--server-key",
            f"{path}: byte 0x{raw[exc.start]:02x} at offset {exc.start}, not a CURVE key file",
        ) from None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("public-key"):
            return line.split("=", 1)[1].strip().strip('"').encode()
    key = text.strip()
    if len(key) == 40:
        return key.encode()
    raise ConfigError("--server-key", f"{path}: no CURVE public key found")


def connect(
    endpoint: str = "tcp://127.0.0.1:5556",
    snapshot_endpoint: str | None = None,
    control_endpoint: str | None = None,
    server_key_file: str | None = None,
    *,
    client_key_file: str | None = None,
) -> StateSource:
    """A :class:`MonitorClient` to a daemon (it reconnects by itself)."""
    from cygno_online.publish.client import MonitorClient

    key = read_server_key(server_key_file) if server_key_file else None
    return MonitorClient(
        endpoint, snapshot_endpoint, control_endpoint, key, client_key_file=client_key_file
    )
