"""The daemon's configuration file: load, validate completely, describe.

Everything is validated before anything starts: the daemon's own sections here,
``decode``/``analyzers``/``plugin_paths`` by building the analysis chain,
``alarms`` by the rule parser and ``influx`` by the sink (when enabled).
Unknown keys are errors and all errors are reported in one pass, each with its
key path, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cygno_online.errors import ConfigError, ConfigErrors
from cygno_online.params import Params, raise_if_errors

SOURCE_TYPES = ("midas", "replay", "simulator")
SAMPLING = ("nonblocking", "all", "recent")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LAYOUTS_HELP = "lime, cygno04, crop:<N>"

#: room for the digitizer banks, slow control and headers beside the images
EVENT_SIZE_MARGIN = 4 * 1024 * 1024
LIME_SHAPE = (2304, 2304)


@dataclass(slots=True)
class MidasRequest:
    event_id: int = -1
    trigger_mask: int = -1
    sampling: str = "nonblocking"


@dataclass(slots=True)
class MidasConfig:
    buffer: str = "SYSTEM"
    client_name: str = "cygno-online"
    host: str | None = None
    experiment: str | None = None
    requests: list[MidasRequest] = field(default_factory=lambda: [MidasRequest()])
    max_event_size: int = 0
    receive_timeout_ms: int = 100
    communicate_ms: int = 10
    retry_initial_s: float = 0.5
    retry_max_s: float = 2.0
    messages_to_midas: bool = True
    #: shared-memory hand-off slots between the reader process and the daemon
    slots: int = 8
    #: the reader's longest stretch of receiving between two yields to MIDAS
    budget_ms: int = 20


@dataclass(slots=True)
class ReplayConfig:
    files: list[str] = field(default_factory=list)
    #: "recorded", "max" or a float factor
    speed: str | float = "max"
    follow: bool = False
    poll_s: float = 0.2


@dataclass(slots=True)
class SimulatorConfig:
    layout: str = "lime"
    seed: int = 1
    run_events: int = 400
    runs: int = 0
    first_run: int = 1
    gap_s: float = 5.0
    pedestal_every: int = 0
    pedestal_events: int = 100
    exposure_s: float = 0.3
    #: "exposure" (live-like) or "max" (benches)
    pace: str = "exposure"
    #: slow-control events every N images (None: their real periods)
    slow_control_every: int | None = None


@dataclass(slots=True)
class SourceConfig:
    type: str = "simulator"
    midas: MidasConfig = field(default_factory=MidasConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


@dataclass(slots=True)
class PipelineConfig:
    queue_events: int = 4
    workers: int = 2
    display_hz: float = 2.0
    output_queue: int = 20000
    health_every_s: float = 5.0
    #: how often the open run's state is checkpointed in state_dir (a run
    #: survives a daemon restart; also written when the daemon stops)
    checkpoint_every_s: float = 60.0


@dataclass(slots=True)
class PublishConfig:
    enabled: bool = True
    bind: str = "tcp://127.0.0.1:5556"
    snapshot_bind: str = "tcp://127.0.0.1:5557"
    control_bind: str = "tcp://127.0.0.1:5558"
    hwm: int = 1000
    heartbeat_s: float = 1.0
    #: largest side of a published image; bigger ones are block-averaged
    display_max_side: int = 1024
    curve_secret_key_file: str | None = None
    curve_authorized_keys_dir: str | None = None


@dataclass(slots=True)
class DaemonConfig:
    experiment: str = "LIME"
    source: SourceConfig = field(default_factory=SourceConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    alarm_rules: list = field(default_factory=list)
    alarms_resend_s: float = 60.0
    summary_dir: Path | None = None
    state_dir: Path | None = None
    log_level: str = "INFO"
    influx_enabled: bool = False
    #: watchdog: a thread (or the reader process) without progress for this
    #: long is stalled (``watchdog.stall_s``)
    watchdog_stall_s: float = 15.0
    #: end-of-run summary rules (``summary`` section), SummaryConfig
    summary_config: Any = None
    #: run registry URL (``registry``; default SQLite in state_dir; None = off)
    registry_url: str | None = None
    #: reference checks (``quality`` section), cygno_online.quality.monitor.QualityConfig
    quality_config: Any = None
    #: the whole file as read (chain sections are re-read on SIGHUP)
    data: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def chain_params(self) -> Params:
        return Params(self.data, "", source=self.path)


ENDPOINT_HELP = "tcp://HOST:PORT (PORT 1..65535, or * for any), ipc://PATH"


def endpoint_problem(value: str) -> str | None:
    """Why ``value`` is not a bindable ZeroMQ endpoint for the publisher
    (scheme, host, port range, ipc directory), None when it is fine. Whether
    the port is free is known only when binding: the daemon binds its sockets
    first thing at start and stops with a clear error if it cannot."""
    if "://" not in value:
        return "must be a ZeroMQ endpoint"
    scheme, rest = value.split("://", 1)
    if scheme == "ipc":
        if not rest:
            return "needs a path (ipc://PATH)"
        parent = Path(rest).parent
        if rest.startswith("@"):  # Linux abstract namespace
            return None
        if not parent.is_dir():
            return f"ipc directory {parent} does not exist"
        return None
    if scheme != "tcp":
        return f"scheme {scheme!r} cannot be bound by the publisher (tcp or ipc)"
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        return "needs HOST:PORT"
    if port != "*":
        if not port.isdigit():
            return f"port {port!r} is not a number"
        if not 1 <= int(port) <= 65535:
            return f"port {port} is outside 1..65535"
    if host.startswith("["):
        if not host.endswith("]"):
            return "an IPv6 host goes in brackets: tcp://[::1]:PORT"
    elif any(c.isspace() for c in host) or "/" in host:
        return f"host {host!r} is not a host name or address"
    return None


def _endpoint(p: Params, key: str, default: str) -> str:
    value = p.string(key, default)
    if value is None:
        return value
    problem = endpoint_problem(value)
    if problem:
        p.error(key, problem, value=value, allowed=ENDPOINT_HELP)
        return default
    return value


def _layout(p: Params, key: str, default: str) -> str:
    value = p.string(key, default)
    if value in ("lime", "cygno04"):
        return value
    if isinstance(value, str) and value.startswith("crop:") and value[5:].isdigit():
        return value
    p.error(key, "is not a known layout", value=value, allowed=LAYOUTS_HELP)
    return default


def _parse_midas(p: Params, shapes_bytes: int) -> MidasConfig:
    c = MidasConfig()
    c.buffer = p.string("buffer", c.buffer)
    c.client_name = p.string("client_name", c.client_name)
    c.host = p.string("host", None)
    c.experiment = p.string("experiment", None)
    reqs = p.raw("requests", None)
    if reqs is not None:
        if not isinstance(reqs, list) or not reqs:
            p.error(
                "requests",
                "must be a non-empty list of {event_id, trigger_mask, sampling}",
                value=reqs,
            )
        else:
            c.requests = []
            for i, r in enumerate(reqs):
                rp = Params(r, p.key_path(f"requests[{i}]"), p.errors, p.source)
                c.requests.append(
                    MidasRequest(
                        rp.integer("event_id", -1, minimum=-1, maximum=65535),
                        rp.integer("trigger_mask", -1, minimum=-1, maximum=65535),
                        rp.choice("sampling", "nonblocking", SAMPLING),
                    )
                )
                rp.check_unknown()
    c.max_event_size = p.integer("max_event_size", shapes_bytes + EVENT_SIZE_MARGIN, minimum=1024)
    if c.max_event_size < shapes_bytes:
        p.error(
            "max_event_size",
            "is smaller than the configured camera images",
            value=c.max_event_size,
            allowed=f">= {shapes_bytes}",
        )
    c.receive_timeout_ms = p.integer("receive_timeout_ms", 100, minimum=2, maximum=10000)
    # communicate(0) does nothing in libmidas: the reader always yields > 0 ms
    c.communicate_ms = p.integer("communicate_ms", 10, minimum=1, maximum=1000)
    c.slots = p.integer("slots", 8, minimum=1, maximum=64)
    c.budget_ms = p.integer("budget_ms", 20, minimum=1, maximum=80)
    retry = p.section("retry")
    c.retry_initial_s = retry.number("initial_s", 0.5, minimum=0.01)
    c.retry_max_s = retry.number("max_s", 2.0, minimum=0.01)
    retry.check_unknown()
    if c.retry_max_s < c.retry_initial_s:
        retry.error("max_s", "must be >= initial_s", value=c.retry_max_s)
    c.messages_to_midas = p.boolean("messages_to_midas", True)
    p.check_unknown()
    return c


def _parse_speed(p: Params, key: str, default: str | float) -> str | float:
    value = p.raw(key, default)
    if value in ("recorded", "max"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            f = float(value.rstrip("x"))
            if f > 0:
                return f
        except ValueError:
            pass
    p.error(key, "is not a valid speed", value=value, allowed="recorded, max, a factor > 0")
    return default


def parse_speed_text(text: str) -> str | float:
    p = Params({"speed": text}, "--speed")
    value = _parse_speed(p, "speed", "max")
    raise_if_errors(p.errors)
    return value


def _parse_source(p: Params, shapes_bytes: int) -> SourceConfig:
    s = SourceConfig()
    s.type = p.choice("type", "simulator", SOURCE_TYPES)
    s.midas = _parse_midas(p.section("midas"), shapes_bytes)
    r = p.section("replay")
    s.replay = ReplayConfig(
        files=r.list_of("files", [], str),
        speed=_parse_speed(r, "speed", "max"),
        follow=r.boolean("follow", False),
        poll_s=r.number("poll_s", 0.2, minimum=0.01, maximum=10),
    )
    r.check_unknown()
    sp = p.section("simulator")
    s.simulator = SimulatorConfig(
        layout=_layout(sp, "layout", "lime"),
        seed=sp.integer("seed", 1, minimum=0),
        run_events=sp.integer("run_events", 400, minimum=1),
        runs=sp.integer("runs", 0, minimum=0),
        first_run=sp.integer("first_run", 1, minimum=0),
        gap_s=sp.number("gap_s", 5.0, minimum=0),
        pedestal_every=sp.integer("pedestal_every", 0, minimum=0),
        pedestal_events=sp.integer("pedestal_events", 100, minimum=1),
        exposure_s=sp.number("exposure_s", 0.3, minimum=0.001),
        pace=sp.choice("pace", "exposure", ("exposure", "max")),
        slow_control_every=sp.integer("slow_control_every", None, minimum=1),
    )
    sp.check_unknown()
    p.check_unknown()
    return s


def camera_bytes(decode: Any, simulator_layout: str | None = None) -> int:
    """Bytes of all camera images of one event as configured: every ``shape``
    (or ``rows``/``cols``) found in the ``decode`` section; the LIME camera
    when the section names none."""
    shapes: list[tuple[int, int]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            shape = node.get("shape")
            if (
                isinstance(shape, (list, tuple))
                and len(shape) == 2
                and all(isinstance(v, int) for v in shape)
            ):
                shapes.append((shape[0], shape[1]))
            elif isinstance(node.get("rows"), int) and isinstance(node.get("cols"), int):
                shapes.append((node["rows"], node["cols"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(decode)
    if not shapes:
        if simulator_layout == "cygno04":
            return 4 * 2304 * 4096 * 2
        shapes = [LIME_SHAPE]
    return sum(r * c * 2 for r, c in shapes)


def parse_config(
    data: Any,
    *,
    source: str | None = None,
    build_chain: bool = True,
    overrides: dict[str, Any] | None = None,
) -> tuple[DaemonConfig, Any]:
    """Validate a whole configuration tree.

    Returns ``(config, chain)``; ``chain`` is the built
    :class:`~cygno_online.analysis.chain.AnalysisChain` (``None`` when
    ``build_chain`` is false). Raises ConfigError(s) with every problem.
    ``overrides`` (from the command line) replace ``source`` values before
    validation, e.g. ``{"type": "replay", "replay": {...}}``.
    """
    if data is None:
        data = {}
    if overrides:
        data = dict(data)
        src = dict(data.get("source") or {})
        for k, v in overrides.items():
            if isinstance(v, dict):
                merged = dict(src.get(k) or {})
                merged.update(v)
                src[k] = merged
            else:
                src[k] = v
        data["source"] = src
    root = Params(data, "", source=source)
    cfg = DaemonConfig(data=data if isinstance(data, dict) else {}, path=source)
    cfg.experiment = root.string("experiment", "LIME")
    cfg.log_level = root.choice("log_level", "INFO", LOG_LEVELS)
    state_dir = root.string("state_dir", None)
    summary_dir = root.string("summary_dir", None)
    cfg.state_dir = Path(state_dir) if state_dir else default_state_dir()
    cfg.summary_dir = Path(summary_dir) if summary_dir else cfg.state_dir / "summaries"

    sim_layout = (
        ((data.get("source") or {}).get("simulator") or {}).get("layout")
        if isinstance(data, dict)
        and isinstance(data.get("source"), dict)
        and isinstance((data.get("source") or {}).get("simulator"), dict)
        else None
    )
    shapes = camera_bytes(data.get("decode") if isinstance(data, dict) else None, sim_layout)
    cfg.source = _parse_source(root.section("source"), shapes)
    if cfg.source.type == "replay" and not cfg.source.replay.files:
        root.error("source.replay.files", "is required for a replay source (or use --replay FILES)")

    pp = root.section("pipeline")
    cfg.pipeline = PipelineConfig(
        queue_events=pp.integer("queue_events", 4, minimum=1, maximum=1000),
        workers=pp.integer("workers", 2, minimum=1, maximum=64),
        display_hz=pp.number("display_hz", 2.0, minimum=0, exclusive_minimum=True, maximum=50),
        output_queue=pp.integer("output_queue", 20000, minimum=10),
        health_every_s=pp.number("health_every_s", 5.0, minimum=0.1, maximum=3600),
        checkpoint_every_s=pp.number("checkpoint_every_s", 60.0, minimum=0.1, maximum=86400),
    )
    pp.check_unknown()

    pub = root.section("publish")
    curve = pub.section("curve")
    cfg.publish = PublishConfig(
        enabled=pub.boolean("enabled", True),
        bind=_endpoint(pub, "bind", "tcp://127.0.0.1:5556"),
        snapshot_bind=_endpoint(pub, "snapshot_bind", "tcp://127.0.0.1:5557"),
        control_bind=_endpoint(pub, "control_bind", "tcp://127.0.0.1:5558"),
        hwm=pub.integer("hwm", 1000, minimum=1),
        heartbeat_s=pub.number("heartbeat_s", 1.0, minimum=0.05, maximum=60),
        display_max_side=pub.integer("display_max_side", 1024, minimum=16),
        curve_secret_key_file=curve.string("server_secret_key_file", None),
        curve_authorized_keys_dir=curve.string("authorized_keys_dir", None),
    )
    curve.check_unknown()
    binds = [(k, getattr(cfg.publish, k)) for k in ("bind", "snapshot_bind", "control_bind")]
    for i, (key, ep) in enumerate(binds):
        for other, ep2 in binds[:i]:
            if ep == ep2 and not ep.endswith(":*"):
                pub.error(key, f"is the same endpoint as publish.{other}", value=ep)
    if bool(cfg.publish.curve_secret_key_file) != bool(cfg.publish.curve_authorized_keys_dir):
        curve.error(
            "", "needs both server_secret_key_file and authorized_keys_dir", value=curve.data
        )
    if cfg.publish.curve_secret_key_file and not Path(cfg.publish.curve_secret_key_file).is_file():
        curve.error(
            "server_secret_key_file", "does not exist", value=cfg.publish.curve_secret_key_file
        )
    if (
        cfg.publish.curve_authorized_keys_dir
        and not Path(cfg.publish.curve_authorized_keys_dir).is_dir()
    ):
        curve.error(
            "authorized_keys_dir", "is not a directory", value=cfg.publish.curve_authorized_keys_dir
        )
    if cfg.publish.enabled and not cfg.publish.curve_secret_key_file:
        for key in ("bind", "snapshot_bind", "control_bind"):
            ep = getattr(cfg.publish, key)
            if ep.startswith("tcp://") and not _is_loopback(ep):
                pub.error(
                    key,
                    "binds a non-loopback address without CURVE; configure publish.curve "
                    "or use an SSH tunnel",
                    value=ep,
                )
    pub.check_unknown()

    from cygno_online.alarms.rules import parse_rules

    al = root.section("alarms")
    cfg.alarm_rules = parse_rules(al)
    _check_alarm_messages(al, cfg.alarm_rules)
    cfg.alarms_resend_s = al.number("resend_every_s", 60.0, minimum=1)
    al.check_unknown()

    cfg.influx_enabled = _check_influx(root, cfg)

    wd = root.section("watchdog")
    cfg.watchdog_stall_s = wd.number("stall_s", 15.0, minimum=1, maximum=3600)
    wd.check_unknown()

    from cygno_online.analysis.summary import SummaryConfig

    sm = root.section("summary")
    cfg.summary_config = SummaryConfig.from_params(sm)
    sm.check_unknown()
    cfg.registry_url = _registry_url(root, cfg)
    from cygno_online.quality.monitor import QualityConfig

    qp = root.section("quality")
    cfg.quality_config = QualityConfig.from_params(qp)
    qp.check_unknown()

    chain = None
    if build_chain:
        chain = _build_chain(root, cfg)
    if chain is not None:
        # Every rule must watch something the configured analyzers emit.
        from cygno_online.alarms.rules import check_rules
        from cygno_online.analysis.catalogue import catalogue_of_chain

        check_rules(cfg.alarm_rules, catalogue_of_chain(chain), al)
    else:
        for key in ("decode", "analyzers", "plugin_paths"):
            root.raw(key)
    root.check_unknown()
    if chain is not None and root.errors:
        chain.close()
    raise_if_errors(root.errors)
    return cfg, chain


#: what ``alarms.rules.format_message`` passes to a rule's message template
_MESSAGE_NAMES = ("value", "low", "high", "above", "below", "name")


def message_template_problem(rule: Any) -> str | None:
    """Why ``rule.message`` cannot be formatted when the alarm fires (None if
    it can): a syntax error, an unknown name, a format spec that does not fit
    the value, or a band/threshold the rule does not have."""
    import string

    text = getattr(rule, "message", "") or ""
    if not text:
        return None
    low, high = rule.band if getattr(rule, "band", None) else (None, None)
    values: dict[str, Any] = {
        "value": 1.5,
        "low": low,
        "high": high,
        "above": getattr(rule, "above", None),
        "below": getattr(rule, "below", None),
        "name": getattr(rule, "name", "") or "",
    }
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return f"is not a valid template: {exc}"
    for f in fields:
        top = f.split(".", 1)[0].split("[", 1)[0]
        if top == "" or top.isdigit():
            return "uses a positional field {}; name it (value, low, high, above, below, name, tag_<key>)"
        if top not in _MESSAGE_NAMES and not top.startswith("tag_"):
            return (
                f"uses an unknown name {{{top}}}; allowed: "
                + ", ".join(_MESSAGE_NAMES)
                + ", tag_<key>"
            )
        if top in _MESSAGE_NAMES and values[top] is None:
            return (
                f"uses {{{top}}} but the rule has no {top if top in ('above', 'below') else 'band'}"
            )
        if top.startswith("tag_"):
            values[top] = "tag"
    try:
        text.format_map(values)
    except (KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
        return f"cannot be formatted: {type(exc).__name__}: {exc}"
    return None


def _check_alarm_messages(al: Params, rules: list) -> None:
    entries = al.raw("rules", []) or []
    index = {
        e.get("id"): i
        for i, e in enumerate(entries if isinstance(entries, list) else [])
        if isinstance(e, dict)
    }
    for rule in rules:
        problem = message_template_problem(rule)
        if problem:
            i = index.get(rule.id, "?")
            al.error(
                f"rules[{i}].message", f"rule {rule.id!r}: message {problem}", value=rule.message
            )


def _registry_url(root: Params, cfg: DaemonConfig) -> str | None:
    """``registry: URL`` (sqlite:///PATH, mysql://..., postgresql://...),
    ``registry: false`` for none; default the SQLite file in state_dir."""
    from cygno_online.sinks.registry import default_url, parse_url

    value = root.raw("registry", None)
    if value is False:
        return None
    if value is None:
        return default_url(cfg.state_dir)
    if not isinstance(value, str):
        root.error("registry", "must be a URL (sqlite:///PATH, mysql://USER@HOST/DB) or false",
                   value=value)  # fmt: skip
        return None
    try:
        parse_url(value, key=root.key_path("registry"))
    except ConfigError as exc:
        root.errors.append(exc)
        return None
    return value


def _check_influx(root: Params, cfg: DaemonConfig) -> bool:
    section = root.raw("influx", None)
    if section is None:
        return False
    if not isinstance(section, dict):
        root.error("influx", "must be a mapping", value=section)
        return False
    enabled = section.get("enabled", False)
    if not isinstance(enabled, bool):
        root.error("influx.enabled", "must be true or false", value=enabled, allowed=[True, False])
        return False
    if not enabled:
        return False
    try:
        from cygno_online.sinks.influx import InfluxSink
    except ImportError as exc:
        root.error("influx", f"the InfluxDB sink is not available ({exc})")
        return False
    try:
        InfluxSink.from_params(
            Params(section, "influx", root.errors, root.source),
            state_dir=cfg.state_dir,
            experiment=cfg.experiment,
        )
    except ConfigErrors as exc:
        _merge(root, exc.errors)
    except ConfigError as exc:
        _merge(root, [exc])
    return True


def _merge(root: Params, errors: list[ConfigError]) -> None:
    known = {id(e) for e in root.errors}
    root.errors.extend(e for e in errors if id(e) not in known)


def _build_chain(root: Params, cfg: DaemonConfig) -> Any:
    from cygno_online.analysis.chain import AnalysisChain

    env = analyzer_env(cfg)
    try:
        return AnalysisChain.from_params(root, env, workers=cfg.pipeline.workers)
    except ConfigErrors as exc:
        _merge(root, exc.errors)
    except ConfigError as exc:
        _merge(root, [exc])
    return None


def analyzer_env(cfg: DaemonConfig) -> Any:
    from cygno_online.analysis.plugin import AnalyzerEnv

    return AnalyzerEnv(
        experiment=cfg.experiment,
        state_dir=cfg.state_dir,
        options={"workers": cfg.pipeline.workers, "sampling": sampling_mode(cfg)},
    )


def sampling_mode(cfg: DaemonConfig) -> str:
    """How the monitor sees the event stream: ``nonblocking``/``all``/``recent``
    (live MIDAS, the request of trigger events), ``file`` (replay: every
    event), ``simulator``. A serial gap means a DAQ loss only with ``all``
    and ``file``; with the others it is (also) monitor sampling."""
    s = cfg.source
    if s.type == "replay":
        return "file"
    if s.type == "simulator":
        return "simulator"
    for r in s.midas.requests:
        if r.event_id in (-1, 1):
            return r.sampling
    return s.midas.requests[0].sampling


def _is_loopback(endpoint: str) -> bool:
    host = endpoint.split("://", 1)[1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def default_state_dir() -> Path:
    # systemd's StateDirectory= sets STATE_DIRECTORY; interactive runs keep
    # their state per user.
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cygno-online"


#: a configuration file is a few kB; anything bigger is refused before it is read
MAX_CONFIG_BYTES = 1024 * 1024
#: values in the loaded tree (aliases counted each time they are used)
MAX_CONFIG_NODES = 200_000
MAX_CONFIG_DEPTH = 32


def _position(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"offset {offset} (line {line}, column {column})"


def read_yaml(path: str | Path) -> Any:
    """The YAML document of a configuration file. Whatever the bytes, the
    only error is a :class:`ConfigError` naming the file and the position
    (byte offset, line, column) or the key path."""
    import yaml

    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(str(p), "is a directory, not a configuration file")
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                str(p),
                f"is {size} bytes; a configuration file is at most {MAX_CONFIG_BYTES} bytes",
            )
        with p.open("rb") as fh:
            # bounded even for files whose size stat does not tell (pipes, /dev/*)
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            str(p), f"is more than {MAX_CONFIG_BYTES} bytes; a configuration file is at most that"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(p),
            f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} at {_position(raw, exc.start)}",
        ) from None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(str(p), "is empty (no configuration at all)")
    depth = _flow_depth(text)
    if depth > MAX_CONFIG_DEPTH:
        raise ConfigError(
            str(p), f"is not valid YAML: brackets nest {depth} deep (at most {MAX_CONFIG_DEPTH})"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif getattr(exc, "position", None) is not None:  # ReaderError
            where = f" at character {exc.position}"
        else:
            where = ""
        raise ConfigError(
            str(p), f"is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        ) from None
    except RecursionError:
        raise ConfigError(str(p), "is not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # the YAML constructors' own checks (e.g. a date like 2024-13-45)
        raise ConfigError(str(p), f"is not valid YAML: {type(exc).__name__}: {exc}") from None
    if data is None:
        raise ConfigError(str(p), "is empty (no configuration at all)")
    _check_tree(data, str(p))
    return data


_QUOTED_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"|#[^\n]*")
_BRACKET = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """Deepest nesting of YAML flow brackets outside quotes and comments
    (the YAML parser takes seconds to refuse thousands of them)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_QUOTED_OR_COMMENT.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def _check_tree(data: Any, source: str) -> None:
    """Bounded size and depth, string keys (iterative; YAML aliases can make a
    small file a huge tree)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    nodes = 0
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_CONFIG_NODES:
            raise ConfigError(
                source,
                f"expands to more than {MAX_CONFIG_NODES} values (YAML aliases?); "
                "a configuration is much smaller",
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(
                path or source, f"nests deeper than {MAX_CONFIG_DEPTH} levels", source=source
            )
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise ConfigError(
                        f"{path}.{k}" if path else str(k),
                        "keys must be strings",
                        value=k,
                        source=source,
                    )
                stack.append((v, f"{path}.{k}" if path else k, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


def load_config(
    path: str | Path,
    *,
    build_chain: bool = True,
    overrides: dict[str, Any] | None = None,
) -> tuple[DaemonConfig, Any]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "must be a YAML mapping of sections", value=type(data).__name__
        )
    return parse_config(data, source=str(path), build_chain=build_chain, overrides=overrides)


def summary_text(cfg: DaemonConfig, chain: Any) -> str:
    s = cfg.source
    if s.type == "midas":
        reqs = ", ".join(
            f"id {r.event_id} mask {r.trigger_mask} {r.sampling}" for r in s.midas.requests
        )
        src = f"midas buffer {s.midas.buffer} ({reqs}), max event {s.midas.max_event_size} B"
    elif s.type == "replay":
        src = f"replay {len(s.replay.files)} file(s), speed {s.replay.speed}" + (
            ", follow" if s.replay.follow else ""
        )
    else:
        src = f"simulator {s.simulator.layout}, {s.simulator.run_events} events/run"
    analyzers = (
        ", ".join(a.instance_name for a in chain.analyzers) if chain is not None else "(not built)"
    )
    pub = (
        f"{cfg.publish.bind} (snapshot {cfg.publish.snapshot_bind}, control {cfg.publish.control_bind})"
        if cfg.publish.enabled
        else "disabled"
    )
    return "\n".join(
        [
            f"experiment: {cfg.experiment}",
            f"source:     {src}",
            f"analyzers:  {analyzers}",
            f"pipeline:   queue {cfg.pipeline.queue_events} events, {cfg.pipeline.workers} workers",
            f"publish:    {pub}",
            f"alarms:     {len(cfg.alarm_rules)} rule(s)",
            f"influx:     {'enabled' if cfg.influx_enabled else 'disabled'}",
            f"state_dir:  {cfg.state_dir}",
            f"summaries:  {cfg.summary_dir}",
            f"registry:   {_registry_text(cfg.registry_url)}",
            f"quality:    {_quality_text(cfg.quality_config)}",
        ]
    )


def _registry_text(url: str | None) -> str:
    if not url:
        return "none"
    from cygno_online.sinks.registry import parse_url

    return parse_url(url).display()  # never the password


def _quality_text(q: Any) -> str:
    if q is None or not q.enabled:
        return "reference checks off"
    ref = {"run": f"run {q.reference_run}", "by_type": f"per run type {q.reference_runs}",
           "auto": "latest good run of the same type and exposure",
           "none": "none"}.get(q.mode, q.mode)  # fmt: skip
    live = f"live every {q.live_every_s:g} s" if q.live_every_s else "end of run only"
    return f"{len(q.checks)} checks on {len(q.histograms)} histograms, reference {ref}, {live}"
