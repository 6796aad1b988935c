"""Slow-control banks -> :class:`SlowControl` items in physical units.

One :class:`SlowControlDecoder` serves every slow-control rule of the bank
map (environment INPT, HV/cathode/gas DMND/MSRD/CRNT/STAT/TPTR, camera TCAM,
trigger-module TMOD, or any other experiment's array bank). Per run it
resolves, for the bank length seen:

* channel names: the rule's ``names`` > the ODB (``names_odb`` or
  ``/Equipment/<odb_equipment>/Settings/Names <odb_variable>`` then
  ``.../Settings/Names``) > the built-in table's names > ``name_format``.
  Channels beyond the list get ``name_format`` names and one warning per run;
* conversions: the rule's ``formulas`` > ODB history formulas
  (``/History/Display/*/*/{Variables,Formula,Label}``) > built-in defaults
  (lime.md) > none (the raw value);
* units: the rule's ``units`` > the unit in the ODB label's ``[...]`` when
  the ODB formula is used > the built-in unit > the raw unit of the bank.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cygno_online.decode.common import (
    TID_DOUBLE,
    TID_FLOAT,
    TID_INT8,
    TID_INT16,
    TID_INT32,
    TID_UINT8,
    TID_UINT16,
    TID_UINT32,
    BankError,
    bank_array,
)
from cygno_online.decode.formula import Formula, FormulaError, normalise
from cygno_online.decode.items import EventContext, Reading, SlowControl

log = logging.getLogger(__name__)

NUMERIC_TYPES = (
    TID_FLOAT,
    TID_DOUBLE,
    TID_UINT8,
    TID_INT8,
    TID_UINT16,
    TID_INT16,
    TID_UINT32,
    TID_INT32,
)

#: LIME Environment INPT default names (ODB /Equipment/Environment/Settings/Names Input)
LIME_ENVIRONMENT_NAMES = (
    [f"P0IIn{i}" for i in range(8)]
    + [f"P1UIn{i}" for i in range(8)]
    + [f"P3IIn{i}" for i in range(8)]
)

#: lime.md conversions: name -> (formula, unit)
LIME_ENVIRONMENT_FORMULAS: dict[str, tuple[str, str]] = {
    "P0IIn0": ("(x-4)/16*200-50", "degC"),  # gas temperature
    "P0IIn5": ("(x-4)/16*1.6*1.005454", "bar"),  # LIME pressure
    "P0IIn3": ("(x-4)/16*1.6*1.007618", "bar"),  # atmospheric pressure
    "P1UIn1": ("-22.7*x+82.3", "degC"),  # atmospheric temperature
    "P1UIn5": ("0.0375*x*1000-37.7", "%"),  # humidity
    "P3IIn6": ("(x-4)*10/16", "g/l"),  # gas density
}


def _lime_raw_unit(name: str) -> str:
    # P0I*/P3I* are 4-20 mA current loops, P1U* voltage inputs
    if name.startswith(("P0I", "P3I")):
        return "mA"
    if name.startswith("P1U"):
        return "V"
    return ""


@dataclass(frozen=True, slots=True)
class Builtin:
    """A built-in conversion table for one kind of bank."""

    names: tuple[str, ...]
    formulas: dict[str, tuple[str, str]]
    raw_unit: Callable[[str], str]


BUILTINS: dict[str, Builtin] = {
    "lime_environment": Builtin(
        tuple(LIME_ENVIRONMENT_NAMES), LIME_ENVIRONMENT_FORMULAS, _lime_raw_unit
    ),
}

_UNIT_ALIASES = {
    "deg": "degC",
    "degc": "degC",
    "deg c": "degC",
    "ºc": "degC",
    "°c": "degC",
    "c": "degC",
}
_LABEL_UNIT = re.compile(r"\[([^\[\]]*)\]+\s*$")


def unit_from_label(label: str) -> str:
    """``"Gas Temperature [ºC]"`` -> ``"degC"``; ``"RH [%]"`` -> ``"%"``."""
    m = _LABEL_UNIT.search(label or "")
    if not m:
        return ""
    unit = m.group(1).strip()
    return _UNIT_ALIASES.get(unit.lower(), unit)


@dataclass(slots=True)
class OdbFormula:
    formula: Formula
    label: str
    panel: str


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def odb_history_formulas(
    odb: Any, warn: Callable[[str], None] | None = None
) -> dict[str, list[OdbFormula]]:
    """History-panel conversions of the ODB, by lower-cased history tag
    (``"environment:p0iin0"``, ``"hv:vgem1 current"``). Panels without a
    formula but with a non-trivial ``Factor``/``Offset`` give ``x*f+o``.
    Formulas outside the safe language are skipped with a warning."""
    out: dict[str, list[OdbFormula]] = {}
    if odb is None:
        return out
    try:
        display = odb.get("/History/Display", None)
    except Exception:
        display = None
    if not isinstance(display, Mapping):
        return out
    for group, panels in display.items():
        if "/" in str(group) or not isinstance(panels, Mapping):
            continue
        for panel, spec in panels.items():
            if "/" in str(panel) or not isinstance(spec, Mapping):
                continue
            lower = {str(k).lower(): v for k, v in spec.items()}
            variables = _as_list(lower.get("variables"))
            formulas = _as_list(lower.get("formula"))
            labels = _as_list(lower.get("label"))
            factors = _as_list(lower.get("factor"))
            offsets = _as_list(lower.get("offset"))
            for i, var in enumerate(variables):
                if not isinstance(var, str) or not var:
                    continue
                text = formulas[i] if i < len(formulas) and isinstance(formulas[i], str) else ""
                if not text.strip():
                    f = factors[i] if i < len(factors) else 1
                    o = offsets[i] if i < len(offsets) else 0
                    try:
                        f, o = float(f), float(o)
                    except (TypeError, ValueError):
                        continue
                    if f == 1 and o == 0:
                        continue
                    text = f"x*{f!r}+{o!r}"
                label = labels[i] if i < len(labels) and isinstance(labels[i], str) else ""
                try:
                    formula = Formula(text)
                except FormulaError as exc:
                    if warn:
                        warn(f"ODB /History/Display/{group}/{panel}: {var}: {exc}")
                    continue
                out.setdefault(var.strip().lower(), []).append(
                    OdbFormula(formula, label, f"{group}/{panel}")
                )
    return out


@dataclass(slots=True)
class SlowControlSpec:
    """A slow-control rule's options (validated by the bank map)."""

    equipment: str
    quantity: str
    #: unit of the values as read (before any conversion)
    unit: str = ""
    #: ODB equipment name (``/Equipment/<odb_equipment>``); "" = no ODB lookups
    odb_equipment: str = ""
    #: ODB variable this bank holds ("Input", "Measured", "Demand"...): used
    #: for the ``Names <var>`` key and for history tags
    odb_variable: str = ""
    names: list[str] | None = None
    names_odb: str | None = None
    name_format: str = "{bank}[{i}]"
    length: int | None = None
    formulas: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    builtin: str | None = None
    odb_formulas: bool = True


@dataclass(slots=True)
class _Channel:
    name: str
    convert: Formula | None
    unit: str


class SlowControlDecoder:
    def __init__(self, spec: SlowControlSpec, warn: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.builtin = BUILTINS[spec.builtin] if spec.builtin else None
        # formulas from configuration are compiled at configuration time
        self.config_formulas = {k: Formula(v) for k, v in spec.formulas.items()}
        self._warn = warn or (lambda msg: log.warning("%s", msg))
        self._odb: Any = None
        self._history: dict[str, list[OdbFormula]] = {}
        self._channels: dict[tuple[str, int], list[_Channel]] = {}

    def begin_run(self, odb: Any, history: dict[str, list[OdbFormula]]) -> None:
        self._odb = odb
        self._history = history if self.spec.odb_formulas else {}
        self._channels.clear()

    # -- per-run resolution -------------------------------------------------
    def _odb_names(self) -> list[str] | None:
        spec = self.spec
        if self._odb is None:
            return None
        paths = []
        if spec.names_odb:
            paths.append(spec.names_odb)
        elif spec.odb_equipment:
            base = f"/Equipment/{spec.odb_equipment}/Settings/Names"
            if spec.odb_variable:
                paths.append(f"{base} {spec.odb_variable}")
            paths.append(base)
        for path in paths:
            try:
                value = self._odb.get(path, None)
            except Exception:
                value = None
            if isinstance(value, str):
                return [value]
            if isinstance(value, (list, tuple)) and value:
                return [str(v) for v in value]
        return None

    def _odb_formula(self, name: str, index: int, builtin_text: str | None) -> OdbFormula | None:
        spec = self.spec
        if not self._history or not spec.odb_equipment:
            return None
        eq = spec.odb_equipment.lower()
        tags = [f"{eq}:{name.lower()}"]
        if spec.odb_variable:
            var = spec.odb_variable.lower()
            tags += [f"{eq}:{name.lower()} {var}", f"{eq}:{var}[{index}]"]
        found: list[OdbFormula] = []
        for tag in tags:
            found.extend(self._history.get(tag, ()))
        if not found:
            return None
        distinct = {normalise(f.formula.text) for f in found}
        if len(distinct) == 1:
            return found[0]
        # Panels disagree (the LIME ODB converts P1UIn1 both as temperature
        # and, in a mislabelled panel, as humidity): prefer the one matching
        # the built-in conversion, else the first panel.
        chosen = found[0]
        if builtin_text is not None:
            for f in found:
                if normalise(f.formula.text) == normalise(builtin_text):
                    chosen = f
                    break
        self._warn(
            f"{spec.odb_equipment} {name}: ODB history panels give different formulas "
            f"({', '.join(sorted(distinct))}); using {chosen.formula.text!r} "
            f"from {chosen.panel}"
        )
        return chosen

    def _resolve(self, bank: str, n: int) -> list[_Channel]:
        spec = self.spec
        names = spec.names or self._odb_names()
        if names is None and self.builtin is not None:
            names = list(self.builtin.names)
        names = list(names or [])
        if names and len(names) != n:
            self._warn(
                f"bank {bank}: {n} values but {len(names)} channel names; "
                f"{'extra names ignored' if len(names) > n else 'missing ones named by index'}"
            )
        channels = []
        for i in range(n):
            name = names[i] if i < len(names) else spec.name_format.format(i=i, bank=bank)
            builtin = self.builtin.formulas.get(name) if self.builtin else None
            raw_unit = self.builtin.raw_unit(name) if self.builtin else ""
            raw_unit = raw_unit or spec.unit
            convert: Formula | None = None
            unit = raw_unit
            if name in self.config_formulas:
                convert = self.config_formulas[name]
                unit = ""
            else:
                odb = self._odb_formula(name, i, builtin[0] if builtin else None)
                if odb is not None:
                    convert = odb.formula
                    unit = unit_from_label(odb.label)
                    if (
                        not unit
                        and builtin
                        and normalise(builtin[0]) == normalise(odb.formula.text)
                    ):
                        unit = builtin[1]
                elif builtin is not None:
                    convert = Formula(builtin[0])
                    unit = builtin[1]
            unit = spec.units.get(name, unit)
            if convert is not None and normalise(convert.text) == "x":
                convert = None
            channels.append(_Channel(name, convert, unit))
        return channels

    # -- per event ------------------------------------------------------------
    def decode(self, bank: Any, ctx: EventContext) -> SlowControl:
        values = bank_array(bank, NUMERIC_TYPES)
        n = int(values.size)
        spec = self.spec
        if spec.length is not None and n != spec.length:
            raise BankError("length", f"expected {spec.length} values, got {n}", bank.name)
        key = (bank.name, n)
        channels = self._channels.get(key)
        if channels is None:
            channels = self._channels[key] = self._resolve(bank.name, n)
        readings = []
        for i, (ch, raw) in enumerate(zip(channels, values.tolist(), strict=True)):
            raw_f = float(raw)
            value = ch.convert(raw_f) if ch.convert is not None else raw_f
            readings.append(Reading(ch.name, spec.quantity, value, ch.unit, raw_f, i))
        return SlowControl(ctx=ctx, equipment=spec.equipment, bank=bank.name, readings=readings)
