"""Slow-control analyzer (plugin ``slowcontrol``).

Consumes :class:`~cygno_online.decode.items.SlowControl` items whose readings
the decoder already converted to physical units (ODB formulas). Each reading
becomes a field of a metric; field names are sanitised reading names
(lower case, every run of non-alphanumerics -> ``_``), so they are valid,
stable InfluxDB/Python identifiers whatever the ODB labels look like.

Families (all fields carry units):

* ``environment`` - equipment ``environment``: one point per bank, fields by
  reading name, renamed through ``environment_names`` (default: the LIME
  channels of lime.md, ``P0IIn0`` -> ``gas_temperature`` degC, ``P0IIn5`` ->
  ``lime_pressure`` bar, ...; other channels keep their sanitised name,
  ``p1uin7``). An output reading whose name collides with an input gets the
  suffix ``_out``. User-defined equipments land here too, tagged
  ``{"equipment": name}``.
* ``hv`` - equipments ``hv`` and ``cathode``: tags ``{"channel": name}``
  (cathode channels are prefixed ``cathode_`` unless their name already says
  so), fields ``demand`` V, ``measured`` V, ``current`` uA, ``status``,
  ``temperature`` degC; one point per bank (InfluxDB merges fields of equal
  time and tags).
* ``gas`` - equipment ``gas``: fields by name; demand values get ``_demand``;
  ``alarms_active`` counts the measured channels ``gas_alarm_channels``
  (298..305, the PLC's alarm flags) that are > 0.
* ``camera`` - equipment ``camera`` (TCAM): tags ``{"camera": "cam<index>"}``,
  field ``sensor_temperature`` degC, on the camera analyzer's series.
* ``daq`` - equipment ``trigger_module`` (TMOD): tags
  ``{"equipment": "trigger_module"}``, fields ``trigger_rate_<i>`` Hz.

Non-finite values are skipped (InfluxDB rejects NaN) and counted.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cygno_online.analysis.catalogue import CatalogueContext, FieldSpec, SeriesSpec
from cygno_online.analysis.outputs import Metric, Output
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, Flow
from cygno_online.decode.items import Reading, RunInfo, SlowControl
from cygno_online.params import Params

_NON_ALNUM = re.compile(r"[^0-9a-z]+")

#: default units by quantity when the decoder gave none
DEFAULT_UNITS = {
    "demand": "V",
    "measured": "V",
    "current": "uA",
    "temperature": "degC",
    "rate": "Hz",
    "status": "",
}
_HV_FIELDS = ("demand", "measured", "current", "status", "temperature")

#: LIME environment channels with a physics meaning (lime.md): the decoder
#: names readings by their ODB channel name; these become the field names.
LIME_ENVIRONMENT_NAMES = {
    "P0IIn0": "gas_temperature",
    "P0IIn3": "atmospheric_pressure",
    "P0IIn5": "lime_pressure",
    "P1UIn1": "atmospheric_temperature",
    "P1UIn5": "humidity",
    "P3IIn6": "gas_density",
}


def _sanitize_pattern(pattern: str) -> str:
    """:func:`sanitize` of a name pattern, keeping its ``<i>`` placeholders."""
    parts = pattern.split("<i>")
    out = "<i>".join(_NON_ALNUM.sub("_", p.lower()) for p in parts).strip("_")
    return out if not out[:1].isdigit() else "v_" + out


def sanitize(name: str, fallback: str = "value") -> str:
    """A stable identifier from a free-form label: lower case, runs of
    non-alphanumerics -> ``_``, no leading/trailing ``_``, never starting
    with a digit (prefixed ``v_``)."""
    s = _NON_ALNUM.sub("_", str(name).strip().lower()).strip("_")
    if not s:
        s = fallback
    if s[0].isdigit():
        s = "v_" + s
    return s


@dataclass(slots=True)
class _Stats:
    unit: str
    n: int = 0
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    last: float = math.nan

    def add(self, v: float) -> None:
        self.n += 1
        self.total += v
        self.lo = min(self.lo, v)
        self.hi = max(self.hi, v)
        self.last = v

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.total / self.n if self.n else None,
            "min": self.lo if self.n else None,
            "max": self.hi if self.n else None,
            "last": self.last if self.n else None,
            "n": self.n,
            "unit": self.unit,
        }


class SlowControlAnalyzer(Analyzer):
    name = "slowcontrol"
    consumes = (SlowControl,)
    description = "slow control: environment, HV, gas, camera temperature, trigger rates"

    #: run-scoped state, checkpointed so that a run survives a daemon restart
    run_state = ("_stats", "skipped_non_finite")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._stats: dict[str, dict[str, dict[str, _Stats]]] = {}
        self.skipped_non_finite = 0
        self.summary_gas = True
        self.gas_alarm_channels: frozenset[int] = frozenset(range(298, 306))
        self.environment_names = dict(LIME_ENVIRONMENT_NAMES)

    def configure(self, params: Params, env: AnalyzerEnv) -> None:
        # The gas PLC has ~330 values: the run summary may leave them out.
        summary_gas = params.boolean("summary_gas", True)
        # lime.md: /Equipment/GasSystem/Variables/Measured[298..305] > 0 are alarms
        alarm_channels = params.list_of("gas_alarm_channels", list(range(298, 306)), int)
        raw = params.raw("environment_names", None)
        names = dict(LIME_ENVIRONMENT_NAMES)
        if raw is not None:
            if isinstance(raw, dict):
                names = {}
                for k, v in raw.items():
                    if not isinstance(v, str) or sanitize(v, "") != v:
                        params.error(
                            f"environment_names.{k}",
                            "must be a lower-case identifier (a-z, 0-9, _)",
                            value=v,
                        )
                    else:
                        names[str(k)] = v
            else:
                params.error("environment_names", "must be a mapping name -> field", value=raw)
        self.env = env
        self.summary_gas = summary_gas
        self.gas_alarm_channels = frozenset(alarm_channels)
        self.environment_names = names

    def begin_run(self, run: RunInfo) -> Iterable[Output]:
        with self._lock:
            self._stats = {}
            self.skipped_non_finite = 0
        return ()

    # -- helpers ---------------------------------------------------------------
    def _keep(self, r: Reading) -> bool:
        if isinstance(r.value, (int, float)) and math.isfinite(r.value):
            return True
        with self._lock:
            self.skipped_non_finite += 1
        return False

    def _note(self, group: str, series: str, fld: str, value: float, unit: str) -> None:
        with self._lock:
            by_series = self._stats.setdefault(group, {}).setdefault(series, {})
            st = by_series.get(fld)
            if st is None:
                st = by_series[fld] = _Stats(unit)
            st.add(float(value))

    @staticmethod
    def _unit(r: Reading) -> str:
        return r.unit if r.unit else DEFAULT_UNITS.get(r.quantity, "")

    @staticmethod
    def _named(
        readings: list[Reading],
        suffix: str = "",
        seen: set[str] | None = None,
        aliases: dict[str, str] | None = None,
    ) -> list[tuple[str, Reading]]:
        """(field name, reading) with duplicate names disambiguated by channel."""
        out: list[tuple[str, Reading]] = []
        seen = set() if seen is None else seen
        for r in readings:
            alias = aliases.get(r.name) if aliases else None
            fld = alias or sanitize(r.name, f"ch{r.channel}")
            fld += suffix
            if fld in seen:
                fld = f"{fld}_{r.channel}"
            seen.add(fld)
            out.append((fld, r))
        return out

    # -- per item ----------------------------------------------------------------
    def process(self, item: SlowControl, flow: Flow) -> Iterable[Output]:
        eq = item.equipment
        readings = [r for r in item.readings if self._keep(r)]
        if not readings:
            return ()
        if eq in ("hv", "cathode"):
            return self._hv(item, readings)
        if eq == "camera":
            return self._camera(item, readings)
        if eq == "trigger_module":
            return self._trigger(item, readings)
        if eq == "gas":
            return self._flat(item, readings, "gas", {})
        tags = {} if eq == "environment" else {"equipment": sanitize(eq)}
        return self._flat(item, readings, "environment", tags)

    def _metric(
        self, item: SlowControl, family: str, fields: dict, tags: dict, units: dict
    ) -> Metric:
        c = item.ctx
        return Metric(family, c.time_ns, c.run, c.serial, fields, tags, units)

    def _flat(
        self, item: SlowControl, readings: list[Reading], family: str, tags: dict[str, str]
    ) -> list[Output]:
        fields: dict[str, Any] = {}
        units: dict[str, str] = {}
        group = family if not tags else f"{family}:{tags['equipment']}"
        demand = [r for r in readings if r.quantity == "demand"]
        output = [r for r in readings if r.quantity == "output"]
        rest = [r for r in readings if r.quantity not in ("demand", "output")]
        aliases = self.environment_names if family == "environment" and not tags else None
        seen: set[str] = set()
        for subset, suffix in ((rest, ""), (demand, "_demand"), (output, "")):
            if subset is output:
                # "_out" only where an output would shadow an input's name
                names = {sanitize(r.name, f"ch{r.channel}") for r in output}
                suffix = "_out" if names & seen else ""
            for fld, r in self._named(subset, suffix, seen, aliases):
                # An explicit unit from the decoder wins; a demand of the gas
                # system is in the unit of its measured twin.
                unit = r.unit or ("" if r.quantity in ("demand", "measured") else self._unit(r))
                fields[fld] = float(r.value)
                units[fld] = unit
                if family != "gas" or self.summary_gas:
                    self._note(group, "", fld, r.value, unit)
        if family == "gas":
            watched = [
                r for r in rest if r.quantity == "measured" and r.channel in self.gas_alarm_channels
            ]
            if watched:
                active = sum(1 for r in watched if r.value > 0)
                fields["alarms_active"] = active
                units["alarms_active"] = ""
                self._note("gas_alarms", "", "alarms_active", active, "")
        return [self._metric(item, family, fields, dict(tags), units)]

    def _hv(self, item: SlowControl, readings: list[Reading]) -> list[Output]:
        out: list[Output] = []
        for r in readings:
            fld = r.quantity if r.quantity in _HV_FIELDS else sanitize(r.quantity)
            channel = sanitize(r.name, f"ch{r.channel}")
            if item.equipment == "cathode" and not channel.startswith("cathode"):
                channel = f"cathode_{channel}"
            unit = self._unit(r)
            value: Any = int(r.value) if fld == "status" else float(r.value)
            if fld != "status":
                self._note("hv", channel, fld, r.value, unit)
            out.append(self._metric(item, "hv", {fld: value}, {"channel": channel}, {fld: unit}))
        return out

    def _camera(self, item: SlowControl, readings: list[Reading]) -> list[Output]:
        out: list[Output] = []
        for r in readings:
            # the camera analyzer tags its series with the item key, "cam<N>"
            cam = f"cam{r.channel}"
            unit = r.unit or "degC"
            self._note("camera", cam, "sensor_temperature", r.value, unit)
            out.append(
                self._metric(
                    item,
                    "camera",
                    {"sensor_temperature": float(r.value)},
                    {"camera": cam},
                    {"sensor_temperature": unit},
                )
            )
        return out

    def _trigger(self, item: SlowControl, readings: list[Reading]) -> list[Output]:
        fields: dict[str, Any] = {}
        units: dict[str, str] = {}
        for r in readings:
            fld = f"trigger_rate_{r.channel}"
            unit = r.unit or "Hz"
            fields[fld] = float(r.value)
            units[fld] = unit
            self._note("trigger_module", "", fld, r.value, unit)
        return [
            self._metric(item, "daq", fields, {"equipment": "trigger_module"}, units),
        ]

    def catalogue(self, ctx: CatalogueContext) -> list[SeriesSpec]:
        """From the bank map: every slow-control rule's readings, named as
        :meth:`process` names them."""
        src = f"analyzer {self.instance_name}"
        decls = ctx.decoder.declared_readings() if ctx.decoder is not None else []
        flat: dict[tuple[str, str], dict[str, FieldSpec]] = {}
        hv: dict[str, FieldSpec] = {}
        cams: dict[str, FieldSpec] = {}
        tmod: dict[str, FieldSpec] = {}

        def unit_of(d: Any, name: str) -> str:
            u = d.units.get(name, d.unit)
            if u or d.quantity in ("demand", "measured"):
                return u
            return DEFAULT_UNITS.get(d.quantity, "")

        for d in decls:
            eq = d.equipment
            if eq in ("hv", "cathode"):
                fld = d.quantity if d.quantity in _HV_FIELDS else sanitize(d.quantity)
                unit = d.unit or DEFAULT_UNITS.get(d.quantity, "")
                hv[fld] = FieldSpec(fld, "int" if fld == "status" else "float", unit)
                continue
            if eq == "camera":
                cams["sensor_temperature"] = FieldSpec(
                    "sensor_temperature", "float", d.unit or "degC", "camera sensor (TCAM)"
                )
                continue
            if eq == "trigger_module":
                tmod["trigger_rate_<i>"] = FieldSpec(
                    "trigger_rate_<i>", "float", d.unit or "Hz", "TMOD trigger rates"
                )
                continue
            family = "gas" if eq == "gas" else "environment"
            tag = "" if eq in ("gas", "environment") else "equipment"
            suffix = "_demand" if d.quantity == "demand" else ""
            aliases = self.environment_names if eq == "environment" else {}
            specs = flat.setdefault((family, tag), {})
            for name in d.names:
                alias = aliases.get(name)
                fld = (alias or sanitize(name)) + suffix
                aka = (sanitize(name),) if alias else ()
                desc = f"{name} (ODB channel)" if alias else ""
                specs.setdefault(fld, FieldSpec(fld, "float", unit_of(d, name), desc, aka))
            if not d.names:
                fld = _sanitize_pattern(d.pattern) + suffix
                desc = "or the ODB's channel names" if d.odb_names else ""
                specs.setdefault(fld, FieldSpec(fld, "float", d.unit, desc))
            if eq == "gas" and d.quantity == "measured":
                specs["alarms_active"] = FieldSpec(
                    "alarms_active",
                    "int",
                    "",
                    f"measured channels {min(self.gas_alarm_channels, default=0)}.."
                    f"{max(self.gas_alarm_channels, default=0)} > 0 (PLC alarm flags)",
                )
        out: list[SeriesSpec] = []
        for (family, tag), specs in flat.items():
            out.append(SeriesSpec(family, tuple(specs.values()), (tag,) if tag else (), src))
        if hv:
            out.append(SeriesSpec("hv", tuple(hv.values()), ("channel",), src))
        if cams:
            out.append(SeriesSpec("camera", tuple(cams.values()), ("camera",), src))
        if tmod:
            out.append(SeriesSpec("daq", tuple(tmod.values()), ("equipment",), src))
        return out

    # -- end of run ------------------------------------------------------------------
    def end_run(self, run: RunInfo) -> dict[str, Any]:
        with self._lock:
            stats = {g: {s: dict(f) for s, f in by.items()} for g, by in self._stats.items()}
            skipped = self.skipped_non_finite
        doc: dict[str, Any] = {}
        for group, by_series in sorted(stats.items()):
            if group in ("hv", "camera"):
                doc[group] = {
                    series: {fld: st.as_dict() for fld, st in sorted(fields.items())}
                    for series, fields in sorted(by_series.items())
                }
            else:
                fields = by_series.get("", {})
                doc[group] = {fld: st.as_dict() for fld, st in sorted(fields.items())}
        doc["skipped_non_finite"] = skipped
        return doc
