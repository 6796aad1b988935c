"""ODB dumps (the payload of BOR/EOR events, or a saved ``.json`` file) and
live ODB trees as one read-only object, :class:`Odb`.

Formats (auto-detected by the first non-blank byte):
- JSON (MIDAS default). ``"name/key"`` metadata entries are dropped from the
  values; their ``type`` is kept (``Odb.type_of``) and used to turn the hex
  strings MIDAS writes for unsigned types (``"0x00400000"``) into ints. A
  locale bug has produced dumps with decimal commas (``2,5000000e+00``): when
  a dump is not valid JSON, commas between two digits *outside strings* are
  repaired to points and parsing is retried (MIDAS's own separators are always
  followed by a blank, so arrays are never merged).
- XML (``<odb><dir name=..><key name=.. type=..>..</key><keyarray ..>``).
- The old ASCII format (``[/Experiment]`` sections) raises
  :class:`UnsupportedFormatError`.

Lookups follow MIDAS: path components are matched case-insensitively
(exact match first), leading/trailing slashes do not matter, and an array
element can be addressed as ``Names[2]``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cygno_online.errors import MidasFormatError, UnsupportedFormatError


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# MIDAS ODB type ids of unsigned/bit types MIDAS writes as hex strings in JSON
_HEX_TYPES = frozenset({1, 4, 6, 11, 18})

# XML type names (old and new spellings) -> converter
_XML_INT = {
    "BYTE", "SBYTE", "CHAR", "WORD", "SHORT", "DWORD", "INT", "BITFIELD", "INT64", "QWORD",
    "UINT64", "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32",
}  # fmt: skip
_XML_FLOAT = {"FLOAT", "DOUBLE", "FLOAT32", "FLOAT64"}

_STRING_OR_DIGITCOMMA = re.compile(r'"(?:[^"\\]|\\.)*"|(?<=\d),(?=\d)', re.S)
_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def _repair_decimal_commas(text: str) -> str:
    """Replace ``digit,digit`` by ``digit.digit`` outside JSON strings."""
    return _STRING_OR_DIGITCOMMA.sub(lambda m: m.group(0) if m.group(0) != "," else ".", text)


def _hex_to_int(value: Any) -> Any:
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_hex_to_int(v) for v in value]
    return value


def _strip_json(node: Any, path: str, types: dict[str, int]) -> Any:
    """Drop ``name/key`` metadata, record types, convert hex unsigned values."""
    if not isinstance(node, dict):
        return node
    meta: dict[str, Any] = {}
    for k, v in node.items():
        if k.endswith("/key") and isinstance(v, dict):
            meta[k[:-4]] = v
    out: dict[str, Any] = {}
    for k, v in node.items():
        # MIDAS key names cannot contain "/", so "x/key" is always metadata
        if k.endswith("/key") and isinstance(v, dict):
            continue
        sub = f"{path}/{k}"
        tid = meta.get(k, {}).get("type")
        if isinstance(tid, int):
            types[sub.lower()] = tid
            if tid in _HEX_TYPES:
                v = _hex_to_int(v)
        out[k] = _strip_json(v, sub, types)
    return out


def _xml_value(text: str | None, type_name: str) -> Any:
    text = text or ""
    t = type_name.upper()
    try:
        if t in _XML_INT:
            return int(text.strip(), 0)
        if t in _XML_FLOAT:
            return float(text.strip().replace(",", "."))
    except ValueError:
        return text
    if t == "BOOL":
        return text.strip().lower() in ("y", "yes", "1", "true")
    return text


def _xml_dir(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        name = child.get("name")
        if name is None:
            continue
        if child.tag == "dir":
            out[name] = _xml_dir(child)
        elif child.tag == "key":
            out[name] = _xml_value(child.text, child.get("type", "STRING"))
        elif child.tag == "keyarray":
            t = child.get("type", "STRING")
            out[name] = [_xml_value(v.text, t) for v in child if v.tag == "value"]
    return out


class Odb:
    """A read-only view of an ODB tree (nested dicts, lists, scalars)."""

    __slots__ = ("_types", "data", "source")

    def __init__(
        self, data: dict[str, Any] | None = None, *, types: dict[str, int] | None = None
    ) -> None:
        self.data: dict[str, Any] = data if data is not None else {}
        #: lower-case absolute path -> MIDAS type id (from JSON metadata)
        self._types = types or {}
        self.source = "<odb>"

    # ----------------------------------------------------------- building

    @classmethod
    def from_dump(cls, data: bytes | bytearray | memoryview | str, *, source: str = "<odb>") -> Odb:
        """Parse a JSON or XML ODB dump (see module doc)."""
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", errors="replace")
        text = text.rstrip("\0 \t\r\n").lstrip("\ufeff \t\r\n")
        if not text:
            raise MidasFormatError("empty ODB dump", source=source)
        first = text[0]
        if first == "{":
            odb = cls._from_json_text(text, source)
        elif first == "<":
            try:
                odb = cls._from_xml_text(text, source)
            except RecursionError as exc:
                raise MidasFormatError("ODB XML dump nested too deeply", source=source) from exc
        elif first == "[" or text.startswith("/"):
            raise UnsupportedFormatError(
                "old ASCII ODB dump format is not supported; configure the logger to "
                "write JSON (the MIDAS default) or XML ODB dumps",
                source=source,
            )
        else:
            raise MidasFormatError(
                f"unrecognised ODB dump (starts with {text[:20]!r})", source=source
            )
        odb.source = source
        return odb

    @classmethod
    def from_json_file(cls, path: str | Path) -> Odb:
        p = Path(path)
        return cls.from_dump(p.read_bytes(), source=str(p))

    @classmethod
    def from_file(cls, path: str | Path) -> Odb:
        """A JSON or XML dump file (auto-detected)."""
        return cls.from_json_file(path)

    @classmethod
    def _from_json_text(cls, text: str, source: str) -> Odb:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as first_error:
            try:
                raw = json.loads(_repair_decimal_commas(text))
            except json.JSONDecodeError:
                raise MidasFormatError(
                    f"ODB JSON dump unreadable: {first_error}", source=source
                ) from first_error
        except RecursionError as exc:
            raise MidasFormatError("ODB JSON dump nested too deeply", source=source) from exc
        if not isinstance(raw, dict):
            raise MidasFormatError("ODB JSON dump is not an object", source=source)
        types: dict[str, int] = {}
        try:
            return cls(_strip_json(raw, "", types), types=types)
        except RecursionError as exc:
            raise MidasFormatError("ODB JSON dump nested too deeply", source=source) from exc

    @classmethod
    def _from_xml_text(cls, text: str, source: str) -> Odb:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise MidasFormatError(f"ODB XML dump unreadable: {exc}", source=source) from exc
        if root.tag != "odb":
            raise MidasFormatError(
                f"ODB XML dump: root element <{root.tag}> is not <odb>", source=source
            )
        return cls(_xml_dir(root))

    # ------------------------------------------------------------ lookups

    @staticmethod
    def _child(node: Any, name: str) -> Any:
        if not isinstance(node, dict):
            return MISSING
        if name in node:
            return node[name]
        low = name.lower()
        for k, v in node.items():
            if k.lower() == low:
                return v
        return MISSING

    def _lookup(self, path: str) -> Any:
        node: Any = self.data
        for part in (p for p in path.split("/") if p):
            index = None
            value = self._child(node, part)
            if value is MISSING:
                m = _INDEX.match(part)
                if m:
                    value = self._child(node, m.group(1))
                    index = int(m.group(2))
            if value is MISSING:
                return MISSING
            if index is not None:
                if not isinstance(value, list) or index >= len(value):
                    return MISSING
                value = value[index]
            node = value
        return node

    def get(self, path: str, default: Any = MISSING) -> Any:
        """The value (dict for a directory) at ``path``; ``default`` if absent,
        KeyError naming the path if absent and no default was given."""
        value = self._lookup(path)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(f"ODB key not found: {path}")
            return default
        return value

    def __getitem__(self, path: str) -> Any:
        return self.get(path)

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not MISSING

    __contains__ = exists

    def type_of(self, path: str) -> int | None:
        """MIDAS type id of a key as recorded in a JSON dump's metadata."""
        norm = "/" + "/".join(p for p in path.split("/") if p)
        return self._types.get(norm.lower())

    def keys(self, path: str = "/") -> list[str]:
        node = self._lookup(path)
        return list(node) if isinstance(node, dict) else []

    def walk(self, path: str = "/") -> Iterator[tuple[str, Any]]:
        """``(absolute path, value)`` of every leaf under ``path``."""
        start = self._lookup(path)
        prefix = "/" + "/".join(p for p in path.split("/") if p)
        stack = [(prefix.rstrip("/"), start)]
        while stack:
            p, node = stack.pop()
            if isinstance(node, dict):
                stack.extend((f"{p}/{k}", v) for k, v in reversed(list(node.items())))
            elif node is not MISSING:
                yield p or "/", node

    def __repr__(self) -> str:
        return f"Odb({self.source}, {len(self.data)} top-level keys)"
