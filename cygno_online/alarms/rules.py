"""Alarm rules: what to watch and when to shout.

A rule selects series by metric ``family`` and a subset of ``tags``, reads one
``field`` and raises when one of its conditions holds::

    - id: lime_pressure            # unique, [A-Za-z0-9_.-]
      name: LIME gas pressure      # shown to shifters (default: id)
      family: environment
      tags: {name: lime_pressure}  # subset match; every matching series is its own alarm
      field: value
      band: [0.95, 1.05]           # raise outside [low, high]
      # above: X / below: X        # value > X / value < X
      # rate_above: X / rate_below: X   # change per minute
      # no_data_s: 600             # no point of a matching series for this long
      # window_s: 300              # with count_above: the value condition must
      # count_above: 5             #   hold at more than 5 points within 300 s
                                   #   (event time), e.g. sparks per 5 minutes
      hysteresis: 0.01             # clear only when back inside by this margin
      delay_s: 60                  # condition must hold this long before raising
      severity: warning            # info | warning | error | critical
      latch: true                  # stays flagged after clearing until acknowledged
      only_when_running: false     # evaluate only while a run is in progress
      message: "pressure {value:.3f} bar outside {low}..{high}"
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cygno_online.params import Params
from cygno_online.publish.state import SEVERITIES

_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")

CONDITION_KEYS = ("above", "below", "band", "rate_above", "rate_below", "no_data_s")


@dataclass(slots=True)
class Rule:
    id: str
    family: str
    field: str
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    above: float | None = None
    below: float | None = None
    band: tuple[float, float] | None = None
    rate_above: float | None = None
    rate_below: float | None = None
    no_data_s: float | None = None
    window_s: float | None = None
    count_above: int | None = None
    hysteresis: float = 0.0
    delay_s: float = 0.0
    severity: str = "warning"
    latch: bool = True
    only_when_running: bool = False
    message: str = ""

    def matches(self, family: str, tags: dict[str, str]) -> bool:
        return family == self.family and all(tags.get(k) == v for k, v in self.tags.items())

    @property
    def has_value_condition(self) -> bool:
        return any(
            v is not None
            for v in (self.above, self.below, self.band, self.rate_above, self.rate_below)
        )

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.below is not None:
            parts.append(f"< {self.below:g}")
        if self.band is not None:
            parts.append(f"outside [{self.band[0]:g}, {self.band[1]:g}]")
        if self.rate_above is not None:
            parts.append(f"rising faster than {self.rate_above:g}/min")
        if self.rate_below is not None:
            parts.append(f"falling faster than {self.rate_below:g}/min")
        if self.no_data_s is not None:
            parts.append(f"no data for {self.no_data_s:g} s")
        text = " or ".join(parts)
        if self.window_s is not None and self.count_above is not None:
            text = f"more than {self.count_above} times in {self.window_s:g} s: {text}"
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
    fld = p.string("field", "value")
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
    rate_above = p.number("rate_above", None)
    rate_below = p.number("rate_below", None)
    no_data_s = p.number("no_data_s", None, minimum=0, exclusive_minimum=True)
    window_s = p.number("window_s", None, minimum=0, exclusive_minimum=True)
    count_above = p.integer("count_above", None, minimum=0)
    if (window_s is None) != (count_above is None):
        p.error("window_s", "window_s and count_above go together", value=window_s)
    hysteresis = p.number("hysteresis", 0.0, minimum=0)
    delay_s = p.number("delay_s", 0.0, minimum=0)
    severity = p.choice("severity", "warning", SEVERITIES)
    latch = p.boolean("latch", True)
    only_running = p.boolean("only_when_running", False)
    message = p.string("message", "", nonempty=False)
    p.check_unknown()
    if not any(p.has(k) and p.data.get(k) is not None for k in CONDITION_KEYS):
        p.error("", "needs a condition", allowed=list(CONDITION_KEYS))
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
        rate_above=rate_above,
        rate_below=rate_below,
        no_data_s=no_data_s,
        window_s=window_s if count_above is not None else None,
        count_above=count_above if window_s is not None else None,
        hysteresis=hysteresis,
        delay_s=delay_s,
        severity=severity,
        latch=latch,
        only_when_running=only_running,
        message=message,
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
    return f"{rule.name}: {rule.describe()}{suffix}"
