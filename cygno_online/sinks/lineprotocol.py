"""InfluxDB line protocol encoding of :class:`~cygno_online.analysis.outputs.Metric`.

One metric becomes one line::

    measurement,experiment=LIME,run=42901,camera=cam0 mean=101.5,serial=17i 1732512345000000000

The type rule (why no field ever changes type on the server): the *wire* type
of a field depends only on ``(measurement, field)``, never on the Python type
of one value:

* every numeric field (``int`` or ``float``) is written as a float, except the
  fields in the integer set (``serial`` always, plus ``integer_fields`` from
  the configuration), which are written as integers (``17i``);
* booleans stay booleans and strings stay strings; the first kind seen for a
  ``(measurement, field)`` is recorded in the :class:`TypeRegistry` (persisted
  next to the spool so a restart keeps it). A later value of another kind is
  coerced when that is lossless (bool -> 0.0/1.0 in a float field, an integral
  float in an integer field) and otherwise left out of the line and counted.

NaN and infinities cannot be written in line protocol: such fields are left
out and counted. A metric with no writable field is not written at all.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cygno_online.analysis.outputs import Metric

#: field kinds on the wire
FLOAT, INTEGER, BOOLEAN, STRING = "float", "integer", "boolean", "string"

#: fields written as integers in every measurement
DEFAULT_INTEGER_FIELDS = frozenset({"serial"})

_MEAS_ESC = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_KEY_ESC = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
# The server's scanner treats a backslash as "skip the next character" but
# only unescapes the special characters: a backslash is doubled only where it
# would otherwise swallow a separator (before a special character or at the end).
_MEAS_BS = re.compile(r"\\(?=[, ]|$)")
_KEY_BS = re.compile(r"\\(?=[,= ]|$)")


@functools.lru_cache(maxsize=256)
def escape_measurement(name: str) -> str:
    if "\\" in name:
        name = _MEAS_BS.sub(r"\\\\", name)
    return name.translate(_MEAS_ESC)


@functools.lru_cache(maxsize=8192)
def escape_key(name: str) -> str:
    """Tag keys, tag values and field keys share one escaping rule."""
    if "\\" in name:
        name = _KEY_BS.sub(r"\\\\", name)
    return name.translate(_KEY_ESC)


def escape_string_field(value: str) -> str:
    # Newlines would end the line: they are stored as the two characters "\n".
    return '"' + value.translate(_STR_ESC) + '"'


def format_float(value: float) -> str:
    # repr() is the shortest string that round-trips, and never uses a locale.
    text = repr(float(value))
    return text


@dataclass(slots=True)
class EncodeCounters:
    #: fields left out: NaN/inf, or a kind that cannot be coerced to the registered one
    fields_skipped: int = 0
    #: values converted to the registered kind (int -> float is the rule, not counted)
    coercions: int = 0
    #: metrics not written at all (no writable field, bad time)
    invalid_points: int = 0
    #: first message for each (measurement, field) conflict, for one log line each
    conflicts: dict[str, str] = field(default_factory=dict)


class TypeRegistry:
    """The wire kind of every ``(measurement, field)`` seen so far, and its unit.

    Persisted as JSON (``schema.json`` in the spool directory) whenever a new
    field appears, so the registry, and with it the field types, survive
    restarts. The same file documents the live schema with units.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._kinds: dict[str, dict[str, str]] = {}
        self._units: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            # A damaged schema file only loses the memory of earlier kinds;
            # the server still rejects a real conflict (quarantine).
            return
        for meas, fields in (doc.get("measurements") or {}).items():
            for name, info in fields.items():
                if isinstance(info, dict) and info.get("type") in (FLOAT, INTEGER, BOOLEAN, STRING):
                    self._kinds.setdefault(meas, {})[name] = info["type"]
                    if info.get("unit"):
                        self._units.setdefault(meas, {})[name] = str(info["unit"])

    def kind(self, measurement: str, name: str) -> str | None:
        return self._kinds.get(measurement, {}).get(name)

    def declare(self, measurement: str, name: str, kind: str, unit: str | None) -> None:
        self._kinds.setdefault(measurement, {})[name] = kind
        if unit:
            self._units.setdefault(measurement, {})[name] = unit
        self._dirty = True

    def note_unit(self, measurement: str, name: str, unit: str) -> None:
        units = self._units.setdefault(measurement, {})
        if units.get(name) != unit:
            units[name] = unit
            self._dirty = True

    def as_dict(self) -> dict:
        return {
            "measurements": {
                meas: {
                    name: {"type": kind, "unit": self._units.get(meas, {}).get(name, "")}
                    for name, kind in sorted(fields.items())
                }
                for meas, fields in sorted(self._kinds.items())
            }
        }

    def save(self) -> None:
        """Write the registry atomically if it changed."""
        with self._lock:
            if not self._dirty or self.path is None:
                return
            self._dirty = False
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.as_dict(), indent=1, sort_keys=True))
            os.replace(tmp, self.path)


class LineEncoder:
    """Metric -> one line-protocol line (bytes), with the type rule above.

    ``experiment`` and ``run`` become tags (the encoder's values win over a
    metric tag of the same name), ``serial`` an integer field. Tags are sorted
    by key (the server's preferred order); empty tag values are left out (line
    protocol cannot carry them). Not thread-safe: the sink serialises calls.
    """

    def __init__(
        self,
        experiment: str,
        *,
        integer_fields: Iterable[str] = (),
        registry: TypeRegistry | None = None,
    ) -> None:
        self.experiment = experiment
        self.integer_fields = frozenset(DEFAULT_INTEGER_FIELDS | set(integer_fields))
        self.registry = registry if registry is not None else TypeRegistry()
        self.counters = EncodeCounters()
        # (measurement, field, python type, unit) -> ("escaped_name=", kind) for
        # fields whose registered kind needs no conversion: the hot path is
        # one dict lookup per field instead of the full rule
        self._plans: dict[tuple, tuple[str, str]] = {}

    def _integer_field(self, measurement: str, name: str) -> bool:
        return name in self.integer_fields or f"{measurement}.{name}" in self.integer_fields

    def _wire_kind(self, measurement: str, name: str, value: object) -> str | None:
        if isinstance(value, bool):
            return BOOLEAN
        if isinstance(value, (int, float)):
            return INTEGER if self._integer_field(measurement, name) else FLOAT
        if isinstance(value, str):
            return STRING
        # numpy scalars and the like: numbers by duck typing
        if hasattr(value, "__float__"):
            return INTEGER if self._integer_field(measurement, name) else FLOAT
        return None

    def _field_text(
        self, measurement: str, name: str, value: object, unit: str | None
    ) -> str | None:
        if value is None:
            # "no value this time" (e.g. a rate before the second event): not an error
            self.counters.fields_skipped += 1
            return None
        kind = self._wire_kind(measurement, name, value)
        if kind is None:
            self._conflict(measurement, name, f"unsupported value type {type(value).__name__}")
            return None
        reg = self.registry.kind(measurement, name)
        if reg is None:
            self.registry.declare(measurement, name, kind, unit)
            reg = kind
        elif unit:
            self.registry.note_unit(measurement, name, unit)
        if reg != kind:
            value = self._coerce(measurement, name, value, kind, reg)
            if value is None:
                return None
            kind = reg
        if kind == BOOLEAN:
            return "true" if value else "false"
        if kind == STRING:
            return escape_string_field(str(value))
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            self.counters.fields_skipped += 1
            return None
        if kind == INTEGER:
            if not number.is_integer():
                self._conflict(measurement, name, f"non-integral value {number!r} in integer field")
                return None
            return f"{int(value) if isinstance(value, int) else int(number)}i"  # type: ignore[arg-type]
        return format_float(number)

    def _coerce(self, measurement: str, name: str, value: object, have: str, want: str) -> object:
        if want == FLOAT and have in (INTEGER, BOOLEAN):
            self.counters.coercions += 1
            return float(value)  # type: ignore[arg-type]
        if want == INTEGER and have == BOOLEAN:
            self.counters.coercions += 1
            return int(bool(value))
        if want == INTEGER and have == FLOAT and float(value).is_integer():  # type: ignore[arg-type]
            self.counters.coercions += 1
            return value
        self._conflict(measurement, name, f"{have} value in a {want} field")
        return None

    def _conflict(self, measurement: str, name: str, text: str) -> None:
        self.counters.fields_skipped += 1
        key = f"{measurement}.{name}"
        self.counters.conflicts.setdefault(key, text)

    def encode(self, metric: Metric) -> bytes | None:
        """The line of ``metric`` (no trailing newline), or None if nothing is writable."""
        measurement = metric.family
        try:
            time_ns = int(metric.time_ns)
        except (TypeError, ValueError):
            self.counters.invalid_points += 1
            return None
        if not measurement:
            self.counters.invalid_points += 1
            return None
        tags = {str(k): str(v) for k, v in metric.tags.items()}
        tags["experiment"] = self.experiment
        tags["run"] = str(int(metric.run))
        parts = [escape_measurement(measurement)]
        for k in sorted(tags):
            v = tags[k]
            if k and v:
                parts.append(f"{escape_key(k)}={escape_key(v)}")
        units = metric.units
        fields = []
        plans = self._plans
        for name, value in metric.fields.items():
            if name == "serial":
                continue  # the metric's own serial wins
            unit = units.get(name)
            key = (measurement, name, type(value), unit)
            plan = plans.get(key)
            if plan is not None:
                prefix, kind = plan
                if kind == FLOAT:
                    number = float(value)  # type: ignore[arg-type]
                    if math.isfinite(number):
                        fields.append(prefix + repr(number))
                        continue
                elif kind == BOOLEAN:
                    fields.append(prefix + ("true" if value else "false"))
                    continue
                elif kind == STRING:
                    fields.append(prefix + escape_string_field(value))  # type: ignore[arg-type]
                    continue
                else:
                    fields.append(f"{prefix}{int(value)}i")  # type: ignore[call-overload]
                    continue
            text = self._field_text(measurement, name, value, unit)
            if text is not None:
                fields.append(f"{escape_key(name)}={text}")
                self._learn(key, measurement, name, value)
        if not fields:
            self.counters.invalid_points += 1
            return None
        serial = self._field_text(measurement, "serial", int(metric.serial), "")
        if serial is not None:
            fields.append(f"serial={serial}")
        line = ",".join(parts) + " " + ",".join(fields) + f" {time_ns}"
        return line.encode()

    def _learn(self, key: tuple, measurement: str, name: str, value: object) -> None:
        kind = self._wire_kind(measurement, name, value)
        if kind is None or kind != self.registry.kind(measurement, name):
            return  # converted values keep going through the full rule
        if kind == INTEGER and not isinstance(value, int):
            return  # a float in an integer field needs the integral check
        self._plans[key] = (escape_key(name) + "=", kind)

    def encode_many(self, metrics: Iterable[Metric]) -> list[bytes]:
        out = []
        for m in metrics:
            line = self.encode(m)
            if line is not None:
                out.append(line)
        return out
