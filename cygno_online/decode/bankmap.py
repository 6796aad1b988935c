"""The bank map: which decoder handles which (event id, bank name).

A declarative list of rules, read from the ``decode`` section of the
configuration, so that any MIDAS experiment can map its own banks::

    decode:
      preset: none                 # or "lime": the LIME/CYGNO rules after yours
      time_base: auto              # or {default: auto, 1: cygno04_ms, 5: seconds}
      banks:
        - {event_id: 1, bank: "CAM*", decoder: camera, shape: [2304, 4096]}
        - {event_id: 1, bank: "DGH*", decoder: digitizer, data_bank: "DIG{n}"}
        - {event_id: 1, bank: TIME, decoder: time}
        - event_id: 5
          bank: INPT
          decoder: slow_control
          equipment: environment
          quantity: input
          odb_equipment: Environment
          odb_variable: Input
          builtin: lime_environment
        - {bank: "XTRA", decoder: raw}          # any event id
        - {event_id: 9, bank: "*", decoder: ignore}

Rules are tried in order; the first one whose ``event_id`` (an int, a list of
ints, or omitted for any) and ``bank`` (a glob, case-sensitive like MIDAS
names) match takes the bank. Banks matching no rule are only listed in
:class:`EventSeen`. :func:`default_bank_map` is the LIME/CYGNO map as plain
data (``config/lime.yaml`` embeds it); ``README.md`` documents every option.

:meth:`EventDecoder.decode` never raises for bad data: one bad bank gives one
:class:`~cygno_online.errors.DecodeError` and the other banks still decode.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cygno_online.decode.camera import CameraDecoder
from cygno_online.decode.common import (
    TID_INT32,
    TID_UINT32,
    BankError,
    bank_array,
    trailing_digits,
)
from cygno_online.decode.digitizer import DigitizerDecoder
from cygno_online.decode.formula import Formula, FormulaError
from cygno_online.decode.items import (
    EventContext,
    EventSeen,
    MessageItem,
    RawBank,
    RunInfo,
)
from cygno_online.decode.slowcontrol import (
    BUILTINS,
    SlowControlDecoder,
    SlowControlSpec,
    odb_history_formulas,
)
from cygno_online.decode.timebase import MODES as TIME_MODES
from cygno_online.decode.timebase import TimeBase
from cygno_online.errors import DecodeError
from cygno_online.params import Params, raise_if_errors

log = logging.getLogger(__name__)

DECODERS = (
    "camera",
    "digitizer",
    "slow_control",
    "camera_temperature",
    "trigger_module",
    "time",
    "raw",
    "ignore",
)
PRESETS = ("none", "lime")

EVENT_BOR = 0x8000
EVENT_EOR = 0x8001
EVENT_MESSAGE = 0x8002

#: defaults of the slow-control presets (any of them can be overridden per rule)
_SC_DEFAULTS: dict[str, dict[str, Any]] = {
    "slow_control": {"quantity": "value", "unit": "", "name_format": "{bank}[{i}]"},
    "camera_temperature": {
        "equipment": "camera",
        "quantity": "temperature",
        "unit": "degC",
        "name_format": "cam{i}",
        "odb_equipment": "CameraStatus",
    },
    "trigger_module": {
        "equipment": "trigger_module",
        "quantity": "rate",
        "unit": "Hz",
        "name_format": "rate{i}",
        "odb_equipment": "TriggerModule",
    },
}


def _hv(event_id: int, equipment: str, odb: str, bank: str, qty: str, unit: str, var: str):
    return {
        "event_id": event_id,
        "bank": bank,
        "decoder": "slow_control",
        "equipment": equipment,
        "quantity": qty,
        "unit": unit,
        "odb_equipment": odb,
        "odb_variable": var,
        "name_format": "ch{i:02d}",
    }


def default_bank_map() -> dict[str, Any]:
    """The LIME/CYGNO bank map (lime.md) as plain YAML-able data."""
    banks: list[dict[str, Any]] = [
        # trigger events: cameras (LIME CAM0, CYGNO-04 CAM0..CAMn, shapes inferred
        # from the size when unambiguous), PMT digitizers, CYGNO-04 time zero
        {"event_id": 1, "bank": "CAM*", "decoder": "camera"},
        {"event_id": 1, "bank": "DGH*", "decoder": "digitizer", "data_bank": "DIG{n}"},
        {"event_id": 1, "bank": "TIME", "decoder": "time"},
    ]
    for bank, qty, unit, var in (
        ("DMND", "demand", "V", "Demand"),
        ("MSRD", "measured", "V", "Measured"),
        ("CRNT", "current", "uA", "Current"),
        ("STAT", "status", "", "ChStatus"),
        ("TPTR", "temperature", "degC", "Temperature"),
    ):
        banks.append(_hv(3, "hv", "HV", bank, qty, unit, var))
    for bank, qty, unit, var in (
        ("DMND", "demand", "V", "Demand"),
        ("MSRD", "measured", "V", "Measured"),
        ("CRNT", "current", "uA", "Current"),
    ):
        banks.append(_hv(4, "cathode", "CATHODE", bank, qty, unit, var))
    banks += [
        {
            "event_id": 5,
            "bank": "INPT",
            "decoder": "slow_control",
            "equipment": "environment",
            "quantity": "input",
            "odb_equipment": "Environment",
            "odb_variable": "Input",
            "length": 24,
            "builtin": "lime_environment",
        },
        {
            "event_id": 5,
            "bank": "OUTP",
            "decoder": "slow_control",
            "equipment": "environment",
            "quantity": "output",
            "odb_equipment": "Environment",
            "odb_variable": "Output",
            "name_format": "out{i}",
        },
    ]
    for bank, qty, var in (("DMND", "demand", "Demand"), ("MSRD", "measured", "Measured")):
        banks.append(
            {
                "event_id": 6,
                "bank": bank,
                "decoder": "slow_control",
                "equipment": "gas",
                "quantity": qty,
                "odb_equipment": "GasSystem",
                "odb_variable": var,
                "name_format": "gas_{i:03d}",
            }
        )
    banks += [
        {"event_id": 7, "bank": "TCAM", "decoder": "camera_temperature"},
        {"event_id": 8, "bank": "TMOD", "decoder": "trigger_module"},
    ]
    return {"time_base": "auto", "banks": banks}


@dataclass(slots=True)
class DecodeResult:
    """What one event decoded into. ``items[0]`` is always ``seen``."""

    items: list[Any]
    errors: list[DecodeError]
    seen: EventSeen


@dataclass(slots=True)
class Rule:
    index: int
    event_ids: frozenset[int] | None
    bank: str
    decoder: str
    impl: Any = None
    #: digitizer: data bank name template (``{n}`` = header's trailing digits)
    data_bank: str | None = None
    data_glob: str | None = None

    def matches_event(self, event_id: int) -> bool:
        return self.event_ids is None or event_id in self.event_ids

    def data_name(self, header: str) -> str:
        return (self.data_bank or "").replace("{n}", trailing_digits(header))


@dataclass(frozen=True, slots=True)
class DeclaredReadings:
    """What one slow-control rule of the bank map can produce (for the
    metric catalogue): reading names are either fixed (``names``: configured
    or built in) or follow ``pattern`` (``name_format`` with ``<i>`` for the
    index); ``units`` by name where known, else ``unit``."""

    equipment: str
    quantity: str
    names: tuple[str, ...]
    pattern: str
    unit: str
    units: dict[str, str]
    #: the ODB may rename the readings (``/Equipment/<eq>/Settings/Names <var>``)
    odb_names: bool


def _name_pattern(name_format: str, bank: str) -> str:
    out = name_format.replace("{bank}", bank)
    return re.sub(r"\{i[^}]*\}", "<i>", out)


class EventDecoder:
    """Decodes MIDAS events into typed items according to a bank map."""

    def __init__(self, rules: list[Rule], time_base: TimeBase) -> None:
        self.rules = rules
        self.time_base = time_base
        #: warnings of the current run (name mismatches, conflicting ODB formulas)
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._cache: dict[tuple[int, str], tuple[Rule | None, str]] = {}
        self.run: RunInfo | None = None
        for r in rules:
            if isinstance(r.impl, SlowControlDecoder):
                r.impl._warn = self._warn

    # -- construction ------------------------------------------------------
    @classmethod
    def from_params(cls, params: Params) -> EventDecoder:
        """Build from the ``decode`` section. Problems are appended to
        ``params.errors`` (with key paths such as ``decode.banks[3].decoder``)
        like every other component's configuration; the caller raises them
        together (:func:`~cygno_online.params.raise_if_errors`). Use
        :meth:`from_config` to raise at once."""
        preset = params.choice("preset", "none", PRESETS)
        time_base = _parse_time_base(params)
        if preset == "none" and not params.has("banks"):
            params.error("banks", "is required (or use preset: lime)")
        entries = params.list_of("banks", None, Mapping)
        rules: list[Rule] = []
        for i, entry in enumerate(entries or []):
            sub = Params(entry, params.key_path(f"banks[{i}]"), params.errors, params.source)
            rule = _parse_rule(sub, len(rules))
            sub.check_unknown()
            if rule is not None:
                rules.append(rule)
        params.check_unknown()
        if preset == "lime":
            lime = default_bank_map()
            errors: list = []
            for entry in lime["banks"]:
                sub = Params(entry, "preset lime", errors)
                rule = _parse_rule(sub, len(rules))
                if rule is not None:
                    rules.append(rule)
            raise_if_errors(errors)  # the built-in map is always valid
        return cls(rules, time_base)

    @classmethod
    def from_config(
        cls, data: Mapping[str, Any] | None, path: str = "decode", source: str | None = None
    ) -> EventDecoder:
        """Build from a plain mapping; raises ConfigError(s)."""
        params = Params(data, path, source=source)
        decoder = cls.from_params(params)
        raise_if_errors(params.errors)
        return decoder

    @classmethod
    def lime(cls) -> EventDecoder:
        """The LIME/CYGNO map (:func:`default_bank_map`)."""
        return cls.from_config(default_bank_map())

    def declared_readings(self) -> list[DeclaredReadings]:
        """What the slow-control rules of this map can produce."""
        from cygno_online.decode.slowcontrol import BUILTINS

        out = []
        for r in self.rules:
            impl = r.impl
            if not isinstance(impl, SlowControlDecoder):
                continue
            spec = impl.spec
            units: dict[str, str] = {}
            names: tuple[str, ...] = tuple(spec.names or ())
            if spec.builtin and not names:
                b = BUILTINS[spec.builtin]
                names = b.names
                units = {n: f[1] for n, f in b.formulas.items()}
            units.update(spec.units)
            out.append(
                DeclaredReadings(
                    spec.equipment,
                    spec.quantity,
                    names,
                    _name_pattern(spec.name_format, r.bank),
                    spec.unit,
                    units,
                    bool(spec.odb_equipment and spec.odb_variable and not spec.builtin),
                )
            )
        return out

    # -- run life cycle ------------------------------------------------------
    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)
            log.warning("%s", message)

    def begin_run(self, run: RunInfo) -> None:
        """Take names, shapes and formulas from ``run.odb``; reset the
        CYGNO-04 time zero."""
        self.run = run
        self.warnings = []
        self._warned = set()
        odb = run.odb
        history = odb_history_formulas(odb, self._warn)
        for r in self.rules:
            if isinstance(r.impl, SlowControlDecoder):
                r.impl.begin_run(odb, history)
            elif isinstance(r.impl, CameraDecoder):
                r.impl.begin_run(odb)
        self.time_base.begin_run(run.start_time_ns)

    # -- per event -------------------------------------------------------------
    def rule_for(self, event_id: int, bank: str) -> tuple[Rule | None, str]:
        """The rule taking ``bank`` in events ``event_id`` and its role:
        ``"bank"``, or ``"data"`` for a digitizer's data bank."""
        key = (event_id, bank)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 4096:  # garbage bank names must not grow it forever
                self._cache.clear()
            hit = (None, "")
            for r in self.rules:
                if not r.matches_event(event_id):
                    continue
                if fnmatch.fnmatchcase(bank, r.bank):
                    hit = (r, "bank")
                    break
                if r.data_glob is not None and fnmatch.fnmatchcase(bank, r.data_glob):
                    hit = (r, "data")
                    break
            self._cache[key] = hit
        return hit

    def decode(
        self, event: Any, *, run: int, source: str = "", received_ns: int = 0
    ) -> DecodeResult:
        """Decode one event. Never raises for bad data."""
        header = event.header
        event_id = int(header.event_id)
        serial = int(header.serial_number)
        items: list[Any] = []
        errors: list[DecodeError] = []
        try:
            banks: Mapping[str, Any] = getattr(event, "banks", None) or {}
            names = tuple(banks)
        except Exception as exc:  # a bank area that cannot be parsed
            banks, names = {}, ()
            err = DecodeError(
                f"bank area unreadable: {exc}",
                bank="",
                event_id=event_id,
                serial=serial,
                run=run,
                source=source,
            )
            err.kind = getattr(exc, "kind", "format")
            errors.append(err)

        def fail(bank: str, kind: str, message: str) -> None:
            err = DecodeError(
                message, bank=bank, event_id=event_id, serial=serial, run=run, source=source
            )
            err.kind = kind
            errors.append(err)

        def guarded(bank: str, fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except BankError as exc:
                fail(exc.bank or bank, exc.kind, exc.message)
            except Exception as exc:  # a decoder bug must not stop the event
                log.debug("decoding bank %s failed", bank, exc_info=True)
                fail(bank, "internal", f"{type(exc).__name__}: {exc}")
            return None

        plan: list[tuple[str, Rule, str]] = []
        if event_id not in (EVENT_BOR, EVENT_EOR, EVENT_MESSAGE):
            for name in names:
                rule, role = self.rule_for(event_id, name)
                if rule is not None and rule.decoder != "ignore":
                    plan.append((name, rule, role))
            # the time zero must be known before this event's context is built
            for name, rule, _ in plan:
                if rule.decoder == "time":
                    guarded(name, self._time_zero, event_id, banks[name])

        try:
            time_ns = self.time_base.time_ns(event_id, int(header.time_stamp))
            point_ns = self.time_base.point_ns(event_id, int(header.time_stamp), serial)
        except Exception:  # pragma: no cover - defensive: time stamps are ints
            time_ns = point_ns = 0
        ctx = EventContext(
            run=run,
            serial=serial,
            event_id=event_id,
            trigger_mask=int(header.trigger_mask),
            time_ns=time_ns,
            source=source,
            point_ns=point_ns,
        )

        if event_id == EVENT_MESSAGE:
            text = guarded("", _message_text, getattr(event, "payload", b""))
            if text is not None:
                items.append(MessageItem(ctx=ctx, text=text))

        done_data: set[str] = set()
        for name, rule, role in plan:
            dec = rule.decoder
            if dec == "time":
                continue
            if dec == "digitizer":
                if role == "data":
                    continue
                data_name = rule.data_name(name)
                done_data.add(data_name)
                boards = guarded(name, rule.impl.decode, banks[name], banks.get(data_name), ctx)
                if boards:
                    items.extend(boards)
            elif dec == "camera":
                item = guarded(name, rule.impl.decode, banks[name], ctx)
                if item is not None:
                    items.append(item)
            elif dec == "raw":
                bank = banks[name]
                items.append(RawBank(ctx=ctx, bank=name, type_id=int(bank.type_id), data=bank.data))
            else:  # the slow-control family
                item = guarded(name, rule.impl.decode, banks[name], ctx)
                if item is not None:
                    items.append(item)
        # data banks whose header bank is missing: empty ones are normal
        for name, rule, role in plan:
            if role == "data" and name not in done_data:
                guarded(name, rule.impl.decode, None, banks[name], ctx)

        size = int(getattr(header, "data_size", 0)) + 16
        seen = EventSeen(
            ctx=ctx,
            size_bytes=size,
            bank_names=names,
            errors=tuple((e.bank, e.kind, e.reason) for e in errors),
            received_ns=int(received_ns),
        )
        items.insert(0, seen)
        return DecodeResult(items=items, errors=errors, seen=seen)

    def _time_zero(self, event_id: int, bank: Any) -> None:
        words = bank_array(bank, (TID_UINT32, TID_INT32), as_dtype="<u4")
        if words.size < 1:
            raise BankError("length", "TIME bank is empty", bank.name)
        self.time_base.set_time_zero(event_id, int(words[0]))


def _message_text(payload: Any) -> str:
    if payload is None:
        return ""
    if isinstance(payload, np.ndarray):
        payload = payload.tobytes()
    raw = bytes(payload)
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


# -- configuration parsing -------------------------------------------------


def _parse_time_base(params: Params) -> TimeBase:
    value = params.raw("time_base", "auto")
    if value is None or isinstance(value, str):
        mode = value or "auto"
        if mode not in TIME_MODES:
            params.error("time_base", "is not an allowed value", value=mode, allowed=TIME_MODES)
            mode = "auto"
        return TimeBase({}, mode)
    if not isinstance(value, Mapping):
        params.error(
            "time_base",
            "must be a mode or a mapping {default: mode, <event id>: mode}",
            value=value,
            allowed=TIME_MODES,
        )
        return TimeBase()
    modes: dict[int, str] = {}
    default = "auto"
    for key, mode in value.items():
        path = f"time_base.{key}"
        if mode not in TIME_MODES:
            params.error(path, "is not an allowed value", value=mode, allowed=TIME_MODES)
            continue
        if key == "default":
            default = mode
            continue
        eid = _event_id_value(key)
        if eid is None:
            params.error(path, "key must be 'default' or an event id 0..65535", value=key)
            continue
        modes[eid] = mode
    return TimeBase(modes, default)


def _event_id_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value <= 0xFFFF:
        return value
    return None


def _parse_event_ids(p: Params) -> frozenset[int] | None:
    value = p.raw("event_id", None)
    if value is None or value == "*":
        return None
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    ids = set()
    for v in values:
        eid = _event_id_value(v)
        if eid is None:
            p.error(
                "event_id",
                "must be an event id 0..65535, a list of them, or omitted for any",
                value=value,
            )
            return None
        ids.add(eid)
    return frozenset(ids)


def _shape(p: Params, key: str) -> tuple[int, int] | None:
    value = p.raw(key, None)
    if value is None:
        return None
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (int(value[0]), int(value[1]))
    p.error(key, "must be [rows, cols] with two positive integers", value=value)
    return None


def _str_map(p: Params, key: str) -> dict[str, str]:
    value = p.raw(key, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.error(key, "must be a mapping of channel name to text", value=value)
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, str):
            p.error(f"{key}.{k}", "must be a string", value=v)
            continue
        out[str(k)] = v
    return out


def _parse_rule(p: Params, index: int) -> Rule | None:
    event_ids = _parse_event_ids(p)
    for key in ("bank", "decoder"):
        if not p.has(key):
            p.error(key, "is required")
    bank = p.string("bank", None)
    decoder = p.choice("decoder", None, DECODERS)
    if bank is None or decoder is None:
        return None
    rule = Rule(index, event_ids, bank, decoder)
    if decoder == "camera":
        shape = _shape(p, "shape")
        cameras: dict[int, tuple[int, int]] = {}
        cams = p.raw("cameras", None)
        if cams is not None:
            if not isinstance(cams, Mapping):
                p.error(
                    "cameras",
                    "must be a mapping {camera number: {shape: [rows, cols]}}",
                    value=cams,
                )
            else:
                for k, v in cams.items():
                    n = _event_id_value(k)
                    sub = Params(v, p.key_path(f"cameras.{k}"), p.errors, p.source)
                    if n is None:
                        p.error(f"cameras.{k}", "key must be a camera number", value=k)
                    s = _shape(sub, "shape")
                    if s is None and not sub.has("shape"):
                        sub.error("shape", "is required")
                    sub.check_unknown()
                    if n is not None and s is not None:
                        cameras[n] = s
        odb_shape = p.string("odb_shape", None)
        infer = p.boolean("infer_shape", True)
        rule.impl = CameraDecoder(shape, cameras, odb_shape, infer)
    elif decoder == "digitizer":
        data = p.string("data_bank", "DIG{n}")
        rule.data_bank = data
        rule.data_glob = data.replace("{n}", "*")
        rule.impl = DigitizerDecoder()
    elif decoder in _SC_DEFAULTS:
        d = _SC_DEFAULTS[decoder]
        if "equipment" not in d and not p.has("equipment"):
            p.error("equipment", "is required")
        equipment = p.string("equipment", d.get("equipment", ""))
        name_format = p.string("name_format", d["name_format"])
        try:
            name_format.format(i=0, bank="BANK")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            p.error(
                "name_format",
                f"must be a format using only {{i}} and {{bank}} ({exc})",
                value=name_format,
            )
            name_format = d["name_format"]
        formulas = _str_map(p, "formulas")
        for k, text in list(formulas.items()):
            try:
                Formula(text)
            except FormulaError as exc:
                p.error(f"formulas.{k}", exc.reason, value=text)
                del formulas[k]
        builtin = p.choice("builtin", None, list(BUILTINS))
        names = p.list_of("names", None, str)
        spec = SlowControlSpec(
            equipment=equipment,
            quantity=p.string("quantity", d["quantity"]),
            unit=p.string("unit", d["unit"], nonempty=False),
            odb_equipment=p.string("odb_equipment", d.get("odb_equipment", ""), nonempty=False),
            odb_variable=p.string("odb_variable", "", nonempty=False),
            names=names,
            names_odb=p.string("names_odb", None),
            name_format=name_format,
            length=p.integer("length", None, minimum=1),
            formulas=formulas,
            units=_str_map(p, "units"),
            builtin=builtin,
            odb_formulas=p.boolean("odb_formulas", True),
        )
        rule.impl = SlowControlDecoder(spec)
    # time, raw, ignore: no options
    return rule
