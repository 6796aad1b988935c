"""The metric catalogue: what can be emitted, declared by whoever emits it.

Every producer of :class:`~cygno_online.analysis.outputs.Metric` points - each
analyzer plugin (:meth:`Analyzer.catalogue`), the daemon's health report, the
InfluxDB sink's own health and the alarm engine - declares the series it can
emit: family (measurement), tag keys, fields with their type and unit. The
catalogue of a configuration is the union of the declarations of its
configured analyzers plus the daemon's, so

* ``check-config`` (and the daemon at start and on reload) rejects an alarm
  rule that watches a family, field or tag nobody emits, naming the closest
  existing names;
* ``cygno-online metrics [--json]`` prints it;
* ``docs/influx-schema.md`` carries the generated tables (a test keeps them
  equal), and the Grafana dashboard tests check their queries against it;
* a test runs every shipped analyzer on simulated data and checks every
  emitted point against the declarations, so the catalogue cannot drift.

Field names are exact, or patterns with ``<placeholder>`` parts
(``box<k>_raw_mean``, ``drops_<reason>``) for names that depend on data or
configuration; a placeholder matches one or more of ``[A-Za-z0-9_]``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: field types, as the sink writes them
FIELD_TYPES = ("float", "int", "bool", "string")

_PLACEHOLDER = re.compile(r"<[^<>]+>")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str = "float"
    unit: str = ""
    description: str = ""
    #: other names of the same quantity (ODB channel names, lower-cased), so
    #: a rule naming ``p0iin5`` is told the field is ``lime_pressure``
    aka: tuple[str, ...] = ()

    @property
    def is_pattern(self) -> bool:
        return "<" in self.name

    def matches(self, name: str) -> bool:
        if not self.is_pattern:
            return name == self.name
        parts = _PLACEHOLDER.split(self.name)
        rx = "[A-Za-z0-9_]+".join(re.escape(p) for p in parts)
        return re.fullmatch(rx, name) is not None

    def type_ok(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if self.type == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.type == "float":
            return isinstance(value, float)
        return isinstance(value, str)


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One kind of series: a family with a set of tag keys."""

    family: str
    fields: tuple[FieldSpec, ...]
    #: tag keys every point of this series carries
    tags: tuple[str, ...] = ()
    #: who emits it: ``analyzer camera``, ``daemon``, ``sink influx``, ``alarm engine``
    source: str = ""
    description: str = ""

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if not f.is_pattern and f.name == name:
                return f
        for f in self.fields:
            if f.is_pattern and f.matches(name):
                return f
        return None


def fields_from_units(
    units: dict[str, str],
    types: dict[str, str] | None = None,
    default: str = "float",
    descriptions: dict[str, str] | None = None,
) -> tuple[FieldSpec, ...]:
    """FieldSpecs from an analyzer's ``{field: unit}`` table."""
    types = types or {}
    descriptions = descriptions or {}
    return tuple(
        FieldSpec(name, types.get(name, default), unit, descriptions.get(name, ""))
        for name, unit in units.items()
    )


@dataclass(slots=True)
class CatalogueContext:
    """What a declaration may depend on: the bank map (slow-control reading
    names) and the names of the configured analyzers."""

    decoder: Any = None
    analyzers: tuple[str, ...] = ()


@dataclass(slots=True)
class Catalogue:
    series: list[SeriesSpec] = field(default_factory=list)
    #: configured analyzers that declare nothing (their metrics cannot be watched)
    undeclared: tuple[str, ...] = ()

    # -- queries ---------------------------------------------------------------
    def families(self) -> list[str]:
        return sorted({s.family for s in self.series})

    def of_family(self, family: str) -> list[SeriesSpec]:
        return [s for s in self.series if s.family == family]

    def tag_keys(self, family: str) -> set[str]:
        return {t for s in self.of_family(family) for t in s.tags}

    def field_names(self, family: str) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.of_family(family):
            for f in s.fields:
                seen.setdefault(f.name)
        return list(seen)

    def find(self, family: str, name: str, tags: Iterable[str] | None = None) -> FieldSpec | None:
        """The declaration of ``family.name`` (in a series having all ``tags``)."""
        want = set(tags or ())
        for s in self.of_family(family):
            if want <= set(s.tags):
                f = s.field(name)
                if f is not None:
                    return f
        return None

    def series_for(self, family: str, tag_keys: Iterable[str]) -> SeriesSpec | None:
        """The declaration of a series with exactly these tag keys."""
        keys = set(tag_keys)
        for s in self.of_family(family):
            if set(s.tags) == keys:
                return s
        return None

    def check_point(self, family: str, tags: dict[str, str], fields: dict[str, Any]) -> list[str]:
        """Problems of one emitted point against the declarations (empty = ok)."""
        spec = self.series_for(family, tags)
        if spec is None:
            known = [sorted(s.tags) for s in self.of_family(family)]
            return [f"{family} with tags {sorted(tags)} is not declared (declared: {known})"]
        out = []
        for name, value in fields.items():
            f = spec.field(name)
            if f is None:
                out.append(f"{family}{sorted(tags)}: field {name!r} is not declared")
            elif not f.type_ok(value):
                out.append(
                    f"{family}.{name}: declared {f.type}, emitted {type(value).__name__} {value!r}"
                )
        return out

    # -- rule validation ---------------------------------------------------------
    def problems(self, family: str, fld: str | None, tags: Iterable[str]) -> list[tuple[str, str]]:
        """(key, reason) for a rule's family/field/tags that nobody emits;
        reasons name the closest existing names."""
        out: list[tuple[str, str]] = []
        fams = self.families()
        if family not in fams:
            hint = _closest(family, fams)
            if self.undeclared:
                hint += (
                    f" (analyzer(s) {', '.join(self.undeclared)} declare no metrics:"
                    " give them a catalogue() method)"
                )
            out.append(("family", f"unknown family {family!r}{hint}"))
            return out
        tags = list(tags)
        keys = self.tag_keys(family)
        bad_tags = [t for t in tags if t not in keys]
        for t in bad_tags:
            out.append(
                (
                    "tags",
                    f"{family} has no tag {t!r}{_closest(t, sorted(keys))}"
                    f" (tags of {family}: {', '.join(sorted(keys)) or 'none'})",
                )
            )
        if fld is None or bad_tags:
            return out
        if self.find(family, fld, tags) is not None:
            return out
        any_series = self.find(family, fld)
        if any_series is not None:
            with_tags = [sorted(s.tags) for s in self.of_family(family) if s.field(fld) is not None]
            out.append(
                (
                    "field",
                    f"{family}.{fld} exists only on series with tags {with_tags},"
                    f" not with {sorted(tags)}",
                )
            )
            return out
        names = self.field_names(family)
        hint = ""
        for s in self.of_family(family):
            for f in s.fields:
                if fld.lower() in f.aka:
                    hint = f" ({fld} is emitted as {f.name!r})"
        out.append(("field", f"{family} has no field {fld!r}{hint or _closest(fld, names)}"))
        return out

    # -- output ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "families": {
                fam: [
                    {
                        "tags": list(s.tags),
                        "source": s.source,
                        "description": s.description,
                        "fields": [
                            {
                                "name": f.name,
                                "type": f.type,
                                "unit": f.unit,
                                "description": f.description,
                            }
                            for f in s.fields
                        ],
                    }
                    for s in self.of_family(fam)
                ]
                for fam in self.families()
            }
        }

    def markdown(self) -> str:
        lines: list[str] = []
        for fam in self.families():
            lines.append(f"#### {fam}")
            lines.append("")
            for s in self.of_family(fam):
                tags = ", ".join(f"`{t}`" for t in s.tags) or "none"
                head = f"tags: {tags}; from {s.source}"
                if s.description:
                    head += f": {s.description}"
                lines.append(head)
                lines.append("")
                lines.append("| field | type | unit | meaning |")
                lines.append("|---|---|---|---|")
                for f in s.fields:
                    desc = f.description.replace("|", "\\|")
                    lines.append(f"| `{f.name}` | {f.type} | {f.unit} | {desc} |")
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def text(self) -> str:
        lines = []
        for fam in self.families():
            for s in self.of_family(fam):
                tags = ",".join(s.tags)
                lines.append(f"{fam}{{{tags}}}  ({s.source})")
                for f in s.fields:
                    unit = f" [{f.unit}]" if f.unit else ""
                    desc = f"  {f.description}" if f.description else ""
                    lines.append(f"    {f.name:<28} {f.type:<6}{unit}{desc}")
        return "\n".join(lines)


def _closest(name: str, names: list[str]) -> str:
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    if not near:
        low = name.lower()
        near = [n for n in names if low in n.lower() or n.lower() in low][:3]
    return f"; closest: {', '.join(near)}" if near else ""


def build_catalogue(analyzers: Iterable[Any], decoder: Any = None) -> Catalogue:
    """The catalogue of a configured chain: every analyzer's declaration plus
    the daemon's, the sink's and the alarm engine's own series."""
    from cygno_online.alarms.engine import ALARM_SERIES
    from cygno_online.daemon.health import monitor_series
    from cygno_online.sinks.influx import SINK_SERIES

    analyzers = list(analyzers)
    ctx = CatalogueContext(decoder, tuple(a.instance_name for a in analyzers))
    out: list[SeriesSpec] = []
    undeclared = []
    for a in analyzers:
        declared = list(a.catalogue(ctx))
        if not declared:
            undeclared.append(a.instance_name)
        out.extend(declared)
    out.append(monitor_series([a.instance_name for a in analyzers]))
    out.append(SINK_SERIES)
    out.append(ALARM_SERIES)
    # end-of-run record and reference checks (issue 13): written by the daemon
    from cygno_online.quality.monitor import quality_series
    from cygno_online.sinks.registry import run_summary_series

    out.append(run_summary_series())
    out.append(quality_series())
    return Catalogue(_merge(out), tuple(undeclared))


def _merge(series: list[SeriesSpec]) -> list[SeriesSpec]:
    """Series of one family with the same tag keys from several producers
    become one (the camera series gets slow control's sensor temperature)."""
    merged: dict[tuple[str, tuple[str, ...]], SeriesSpec] = {}
    for s in series:
        key = (s.family, tuple(sorted(s.tags)))
        prev = merged.get(key)
        if prev is None:
            merged[key] = s
            continue
        names = {f.name for f in prev.fields}
        fields = prev.fields + tuple(f for f in s.fields if f.name not in names)
        sources = prev.source if s.source in prev.source else f"{prev.source}, {s.source}"
        merged[key] = SeriesSpec(prev.family, fields, prev.tags, sources, prev.description)
    return list(merged.values())


def catalogue_of_chain(chain: Any) -> Catalogue:
    return build_catalogue(chain.analyzers, getattr(chain, "decoder", None))
