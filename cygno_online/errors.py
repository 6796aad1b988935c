"""Typed errors shared by every layer.

Each error carries *where* it happened (file, byte offset, event serial, bank,
configuration key path) so that an operator reading one log line knows what to
look at, and so that counters can be keyed by ``kind``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class CygnoError(Exception):
    """Base class of every error the project raises on purpose."""

    #: short machine-readable category used as a counter key
    kind: str = "error"


class MidasFormatError(CygnoError):
    """Bytes that are not a valid MIDAS event (or file).

    ``source`` is a file name or ``"<bytes>"``/``"<stdin>"``; ``offset`` is the
    byte offset of the offending event in the (decompressed) stream.
    """

    kind = "format"

    def __init__(
        self,
        message: str,
        *,
        source: str = "<bytes>",
        offset: int | None = None,
        serial: int | None = None,
        event_id: int | None = None,
        bank: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.offset = offset
        self.serial = serial
        self.event_id = event_id
        self.bank = bank
        super().__init__(self._format())

    def _format(self) -> str:
        where = [self.source]
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if self.event_id is not None:
            where.append(f"event id {self.event_id}")
        if self.serial is not None:
            where.append(f"serial {self.serial}")
        if self.bank is not None:
            where.append(f"bank {self.bank}")
        return f"{', '.join(where)}: {self.reason}"


class TruncatedEventError(MidasFormatError):
    """The stream ended inside an event (a file still being written)."""

    kind = "truncated"


class IntegrityError(MidasFormatError):
    """A compressed stream whose own check failed (gzip CRC-32 or length) or
    that cannot be decompressed further: what came before was kept."""

    kind = "integrity"


class EmptyFileError(MidasFormatError):
    """A file (or stream) without a single byte of MIDAS data."""

    kind = "empty"


class UnsupportedFormatError(MidasFormatError):
    """Valid MIDAS data in a variant this project does not read (big-endian
    files, the old ASCII ODB dump)."""

    kind = "unsupported"


class DecodeError(CygnoError):
    """A bank that is valid MIDAS but does not match its expected layout
    (camera shape, digitizer header, slow-control length...)."""

    kind = "decode"

    def __init__(
        self,
        message: str,
        *,
        bank: str,
        event_id: int | None = None,
        serial: int | None = None,
        run: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = message
        self.bank = bank
        self.event_id = event_id
        self.serial = serial
        self.run = run
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.run is not None:
            where.append(f"run {self.run}")
        if self.event_id is not None:
            where.append(f"event id {self.event_id}")
        if self.serial is not None:
            where.append(f"serial {self.serial}")
        where.append(f"bank {self.bank}")
        return f"{', '.join(where)}: {self.reason}"


class ConfigError(CygnoError):
    """A configuration value that is missing, of the wrong type or out of range.

    ``path`` is the dotted key path (``analyzers.camera.nsigma``).
    """

    kind = "config"

    def __init__(
        self,
        path: str,
        message: str,
        *,
        value: Any = None,
        allowed: str | Iterable[Any] | None = None,
        source: str | None = None,
    ) -> None:
        self.path = path
        self.reason = message
        self.value = value
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(repr(a) for a in allowed)
        self.allowed = allowed
        self.source = source
        text = f"{path}: {message}"
        if value is not None:
            text += f" (got {value!r})"
        if allowed:
            text += f"; allowed: {allowed}"
        if source:
            text = f"{source}: {text}"
        super().__init__(text)


class ConfigErrors(CygnoError):
    """Several configuration errors found in one validation pass: operators
    fix all of them at once instead of one per restart."""

    kind = "config"

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))
