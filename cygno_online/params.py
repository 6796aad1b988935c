"""Typed, path-aware reading of configuration mappings.

Every component (daemon, analyzers, sinks) reads its own section through
:class:`Params`. Errors name the full key path, the bad value and what is
allowed, and they are *collected*: one validation pass reports everything that
is wrong, and unknown keys (typos) are errors too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cygno_online.errors import ConfigError, ConfigErrors

_MISSING = object()


class Params:
    """Read access to one mapping of a configuration tree.

    >>> p = Params({"nsigma": 1.3}, "analyzers.camera")
    >>> p.number("nsigma", 0.6, minimum=0)
    1.3
    >>> p.finish()
    """

    def __init__(
        self,
        data: Mapping[str, Any] | None,
        path: str = "",
        errors: list[ConfigError] | None = None,
        source: str | None = None,
    ) -> None:
        self.path = path
        self.source = source
        self.errors: list[ConfigError] = [] if errors is None else errors
        self._seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self._error("", "must be a mapping", value=data)
            data = {}
        self.data: Mapping[str, Any] = data

    # -- helpers -----------------------------------------------------------
    def key_path(self, key: str) -> str:
        if not key:
            return self.path or "<root>"
        return f"{self.path}.{key}" if self.path else key

    def _error(self, key: str, message: str, *, value: Any = None, allowed: Any = None) -> None:
        self.errors.append(
            ConfigError(
                self.key_path(key), message, value=value, allowed=allowed, source=self.source
            )
        )

    def error(self, key: str, message: str, *, value: Any = None, allowed: Any = None) -> None:
        """Record a component-specific error on ``key`` (cross-field checks)."""
        self._error(key, message, value=value, allowed=allowed)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as written, marked as known (for free-form sub-trees)."""
        self._seen.add(key)
        return self.data.get(key, default)

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self._error(key, "is required")
            return default
        return value

    # -- typed getters -------------------------------------------------------
    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        exclusive_minimum: bool = False,
    ) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._error(
                key,
                f"must be {kind}",
                value=value,
                allowed=_range_text(minimum, maximum, exclusive_minimum),
            )
            return default
        if integer and not float(value).is_integer():
            self._error(
                key,
                "must be an integer",
                value=value,
                allowed=_range_text(minimum, maximum, exclusive_minimum),
            )
            return default
        if isinstance(value, float) and not math.isfinite(value):
            self._error(key, "must be finite", value=value)
            return default
        low_bad = minimum is not None and (
            value <= minimum if exclusive_minimum else value < minimum
        )
        if low_bad or (maximum is not None and value > maximum):
            self._error(
                key,
                "is out of range",
                value=value,
                allowed=_range_text(minimum, maximum, exclusive_minimum),
            )
            return default
        return int(value) if integer else value

    def integer(self, key: str, default: Any = _MISSING, **kw: Any) -> Any:
        return self.number(key, default, integer=True, **kw)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, bool):
            self._error(key, "must be true or false", value=value, allowed=[True, False])
            return default
        return value

    def string(self, key: str, default: Any = _MISSING, *, nonempty: bool = True) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, str) or (nonempty and not value):
            self._error(
                key, "must be a non-empty string" if nonempty else "must be a string", value=value
            )
            return default
        return value

    def choice(self, key: str, default: Any, choices: Iterable[Any]) -> Any:
        choices = list(choices)
        value = self._get(key, default)
        if value is default:
            return value
        if value not in choices:
            self._error(key, "is not an allowed value", value=value, allowed=choices)
            return default
        return value

    def list_of(
        self,
        key: str,
        default: Any = _MISSING,
        item: type | tuple[type, ...] = object,
        *,
        length: int | None = None,
        nonempty: bool = False,
    ) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            self._error(key, "must be a list", value=value)
            return default
        for i, v in enumerate(value):
            if not isinstance(v, item) or (item in (int, float) and isinstance(v, bool)):
                names = (
                    item.__name__ if isinstance(item, type) else "/".join(t.__name__ for t in item)
                )
                self._error(f"{key}[{i}]", f"must be of type {names}", value=v)
                return default
        if length is not None and len(value) != length:
            self._error(key, f"must have exactly {length} elements", value=value)
            return default
        if nonempty and not value:
            self._error(key, "must not be empty", value=value)
            return default
        return list(value)

    def section(self, key: str, *, required: bool = False) -> Params:
        """A nested mapping, sharing this reader's error list."""
        self._seen.add(key)
        value = self.data.get(key)
        if value is None and required:
            self._error(key, "is required")
        return Params(value, self.key_path(key), self.errors, self.source)

    # -- completion ----------------------------------------------------------
    def unknown_keys(self) -> list[str]:
        return [k for k in self.data if k not in self._seen]

    def check_unknown(self) -> None:
        """Unknown keys are errors: a typo must not silently fall back to a default."""
        allowed = sorted(self._seen)
        for k in self.unknown_keys():
            self._error(str(k), "is not a known key", allowed=allowed or None)

    def finish(self) -> None:
        """Flag unknown keys of this mapping and raise everything collected."""
        self.check_unknown()
        raise_if_errors(self.errors)


def raise_if_errors(errors: list[ConfigError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(list(errors))


def _range_text(
    minimum: float | None, maximum: float | None, exclusive_minimum: bool = False
) -> str | None:
    if minimum is None and maximum is None:
        return None
    if maximum is None:
        return f"{'>' if exclusive_minimum else '>='} {minimum}"
    if minimum is None:
        return f"<= {maximum}"
    return f"{minimum} {'<' if exclusive_minimum else '<='} x <= {maximum}"
