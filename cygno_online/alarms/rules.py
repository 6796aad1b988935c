"""Alarm rules: what to watch, when to shout, and what to do about it.

A rule selects series by metric ``family`` and a subset of ``tags``, reads one
``field`` and raises when its condition holds. Every matching series (tag
set) is its own alarm instance, shown with its tags::

    - id: lime_pressure            # unique, [A-Za-z0-9_.-]
      name: LIME gas pressure      # shown to shifters (default: id)
      family: environment
      tags: {}                     # subset match on the series' tags
      field: lime_pressure         # required for value conditions (no default)
      # -- the condition (one kind per rule) --
      band: [0.88, 0.94]           # raise outside [low, high]
      # above: X / below: X        # value > X / value < X
      # equals: V / not_equals: V  # a number, a string or a list of them (any of)
      # rate_above: X / rate_below: X   # change per minute (rising / falling)
      # increase_above: N          # a counter grew by more than N within window_s
      # window_s + count_above: N  # the condition held at more than N points
      #                            #   within window_s (event time): sparks per 5 min
      # no_data_s: 600             # no point of any matching series for this long
      #                            #   (field optional: any field of the family counts)
      # -- against flapping --
      hysteresis: 0.002            # deadband: clear only when back inside by this margin
      delay_s: 120                 # the condition must hold this long before raising
      clear_delay_s: 0             # ... and be false this long before clearing
      notify_interval_s: 300       # at most one log line/MIDAS message per instance
                                   #   per interval (state changes are always published)
      # -- what the operator sees --
      severity: error              # info | warning | error | critical
      latch: true                  # cleared but unacknowledged stays flagged (ISA-18.2)
      only_when_running: false     # evaluate only while a run is in progress
      enabled: true                # false: the alarm exists but is disabled
      message: "LIME pressure {value:.3f} bar outside {low}..{high} bar"
      guidance: "check the gas system panel; ..."   # what to do
      contact: "gas system expert"                   # whom to call

The field, family and tag keys are checked against the metric catalogue of
the configured analyzers (``check-config``; the daemon refuses a rule that
watches something nobody emits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cygno_online.params import Params
from cygno_online.publish.state import SEVERITIES

_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")

VALUE_CONDITIONS = (
    "above",
    "below",
    "band",
    "equals",
    "not_equals",
    "rate_above",
    "rate_below",
    "increase_above",
)
CONDITION_KEYS = (*VALUE_CONDITIONS, "no_data_s")


@dataclass(slots=True)
class Rule:
    id: str
    family: str
    field: str | None
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    above: float | None = None
    below: float | None = None
    band: tuple[float, float] | None = None
    equals: Any = None
    not_equals: Any = None
    rate_above: float | None = None
    rate_below: float | None = None
    increase_above: float | None = None
    no_data_s: float | None = None
    window_s: float | None = None
    count_above: int | None = None
    hysteresis: float = 0.0
    delay_s: float = 0.0
    clear_delay_s: float = 0.0
    notify_interval_s: float = 300.0
    severity: str = "warning"
    latch: bool = True
    only_when_running: bool = False
    enabled: bool = True
    message: str = ""
    guidance: str = ""
    contact: str = ""

    def matches(self, family: str, tags: dict[str, str]) -> bool:
        return family == self.family and all(tags.get(k) == v for k, v in self.tags.items())

    @property
    def has_value_condition(self) -> bool:
        return any(getattr(self, k) is not None for k in VALUE_CONDITIONS)

    @property
    def per_series(self) -> bool:
        """Value rules have one instance per series; no-data rules one per rule."""
        return self.no_data_s is None

    def describe(self) -> str:
        """The limit, as shown to operators."""
        parts = []
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.below is not None:
            parts.append(f"< {self.below:g}")
        if self.band is not None:
            parts.append(f"outside [{self.band[0]:g}, {self.band[1]:g}]")
        if self.equals is not None:
            eq = self.equals
            parts.append(f"in {eq}" if isinstance(eq, list) else f"== {eq}")
        if self.not_equals is not None:
            ne = self.not_equals
            parts.append(f"not in {ne}" if isinstance(ne, list) else f"!= {ne}")
        if self.rate_above is not None:
            parts.append(f"rising faster than {self.rate_above:g}/min")
        if self.rate_below is not None:
            parts.append(f"falling faster than {self.rate_below:g}/min")
        if self.increase_above is not None:
            parts.append(f"grew by more than {self.increase_above:g} in {self.window_s:g} s")
        if self.no_data_s is not None:
            parts.append(f"no data for {self.no_data_s:g} s")
        text = " or ".join(parts)
        if self.count_above is not None and self.window_s is not None:
            text = f"more than {self.count_above} times in {self.window_s:g} s: {text}"
        if self.delay_s:
            text += f" for {self.delay_s:g} s"
        return text


def parse_rule(p: Params, seen_ids: set[str]) -> Rule | None:
    rid = p.string("id", None)
    if rid is None:
        p.error("id", "is required")
    elif not _ID.match(rid):
        p.error("id", "may contain only letters, digits, '_', '.', '-'", value=rid)
    elif rid in seen_ids:
        p.error("id", "is used by another rule", value=rid)
    family = p.string("family")
    fld = p.string("field", None)
    name = p.string("name", rid or "")
    tags = p.raw("tags", {}) or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
        p.error("tags", "must be a mapping of tag name to value", value=tags)
        tags = {}
    tags = {k: str(v) for k, v in tags.items()}
    above = p.number("above", None)
    below = p.number("below", None)
    band = p.list_of("band", None, (int, float), length=2)
    if band is not None and band[0] >= band[1]:
        p.error("band", "must be [low, high] with low < high", value=band)
        band = None
    equals = p.raw("equals", None)
    not_equals = p.raw("not_equals", None)
    for key, v in (("equals", equals), ("not_equals", not_equals)):
        items = v if isinstance(v, list) else [v]
        if v is not None and (
            not items
            or any(isinstance(x, bool) or not isinstance(x, (int, float, str)) for x in items)
        ):
            p.error(key, "must be a number, a string or a list of them", value=v)
    rate_above = p.number("rate_above", None)
    rate_below = p.number("rate_below", None)
    increase_above = p.number("increase_above", None, minimum=0)
    no_data_s = p.number("no_data_s", None, minimum=0, exclusive_minimum=True)
    window_s = p.number("window_s", None, minimum=0, exclusive_minimum=True)
    count_above = p.integer("count_above", None, minimum=0)
    if count_above is not None and window_s is None:
        p.error("count_above", "needs window_s", value=count_above)
    if increase_above is not None and window_s is None:
        p.error("increase_above", "needs window_s", value=increase_above)
    if window_s is not None and count_above is None and increase_above is None:
        p.error("window_s", "goes with count_above or increase_above", value=window_s)
    hysteresis = p.number("hysteresis", 0.0, minimum=0)
    delay_s = p.number("delay_s", 0.0, minimum=0)
    clear_delay_s = p.number("clear_delay_s", 0.0, minimum=0)
    notify_interval_s = p.number("notify_interval_s", 300.0, minimum=0)
    severity = p.choice("severity", "warning", SEVERITIES)
    latch = p.boolean("latch", True)
    only_running = p.boolean("only_when_running", False)
    enabled = p.boolean("enabled", True)
    message = p.string("message", "", nonempty=False)
    guidance = p.string("guidance", "", nonempty=False)
    contact = p.string("contact", "", nonempty=False)
    p.check_unknown()
    given = [k for k in CONDITION_KEYS if p.has(k) and p.data.get(k) is not None]
    if not given:
        p.error("", "needs a condition", allowed=list(CONDITION_KEYS))
    if no_data_s is not None and len(given) > 1:
        p.error(
            "no_data_s",
            "cannot be combined with a value condition (write two rules)",
            value=given,
        )
    if fld is None and any(k != "no_data_s" for k in given):
        p.error("field", "is required for a value condition (there is no default field)")
    if rid is None or family is None:
        return None
    seen_ids.add(rid)
    return Rule(
        id=rid,
        family=family,
        field=fld,
        name=name or rid,
        tags=tags,
        above=above,
        below=below,
        band=tuple(band) if band is not None else None,
        equals=equals,
        not_equals=not_equals,
        rate_above=rate_above,
        rate_below=rate_below,
        increase_above=increase_above,
        no_data_s=no_data_s,
        window_s=window_s,
        count_above=count_above if window_s is not None else None,
        hysteresis=hysteresis,
        delay_s=delay_s,
        clear_delay_s=clear_delay_s,
        notify_interval_s=notify_interval_s,
        severity=severity,
        latch=latch,
        only_when_running=only_running,
        enabled=enabled,
        message=message,
        guidance=guidance,
        contact=contact,
    )


def parse_rules(p: Params) -> list[Rule]:
    """The ``rules`` list of the ``alarms`` section (errors collected in ``p``)."""
    entries = p.raw("rules", []) or []
    if not isinstance(entries, list):
        p.error("rules", "must be a list of rules", value=entries)
        return []
    seen: set[str] = set()
    rules = []
    for i, entry in enumerate(entries):
        sub = Params(entry, p.key_path(f"rules[{i}]"), p.errors, p.source)
        rule = parse_rule(sub, seen)
        if rule is not None:
            rules.append(rule)
    return rules


def check_rules(rules: list[Rule], catalogue: Any, p: Params) -> None:
    """Every rule's family, field and tag keys must exist in the metric
    catalogue; errors name the rule and the closest existing names."""
    for i, rule in enumerate(rules):
        for key, reason in catalogue.problems(rule.family, rule.field, rule.tags):
            p.error(f"rules[{i}].{key}", f"rule {rule.id!r}: {reason}")


def format_message(rule: Rule, value: Any, tags: dict[str, str]) -> str:
    low, high = rule.band if rule.band else (None, None)
    text = rule.message
    if text:
        try:
            return text.format(
                value=value,
                low=low,
                high=high,
                above=rule.above,
                below=rule.below,
                name=rule.name,
                **{f"tag_{k}": v for k, v in tags.items()},
            )
        except (KeyError, ValueError, IndexError, TypeError):
            pass  # a bad format string must not hide the alarm: fall back below
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    suffix = "" if value is None else f" (value {shown})"
    where = "".join(f" {k}={v}" for k, v in sorted(tags.items()) if k not in rule.tags)
    return f"{rule.name}{where}: {rule.describe()}{suffix}"
