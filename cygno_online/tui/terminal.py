"""What the shifter's terminal can show: colours, characters, mouse.

The TUI runs in truecolour terminals, in tmux, over SSH, in 16-colour
``xterm`` sessions and on ``linux``/``vt100`` consoles. One
:class:`TerminalMode` decided at start-up (command-line flags first, then
``NO_COLOR`` and ``TERM``) tells every widget what it may draw:

* ``palette``: ``truecolor``, ``256``, ``16`` or ``mono``. The app forces the
  console's colour system to it, so ``--palette 256`` works whatever TERM says
  (Rich would otherwise downgrade to the 16 colours TERM=xterm announces).
* ``ascii``: 7-bit characters only. A line filter replaces every other
  character (box lines, blocks, braille, bullets) by an ASCII look-alike of
  the same width, so no widget can leak one; the heatmap and the sparklines
  use ASCII ramps of their own.
* ``mouse``: off by default, so the terminal's own selection (copy and paste
  of run numbers and alarm texts) works.
* ``low_bandwidth``: slower image refresh and no image colour for slow links.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter, monochrome_style

PALETTES = ("truecolor", "256", "16", "mono")
#: TERM values of consoles that cannot show box drawing, blocks or braille
ASCII_TERMS = ("vt100", "vt102", "vt220", "vt52", "dumb", "ansi")
#: TERM values whose colours are the 16 ANSI ones
SIXTEEN_TERMS = ("linux", "xterm", "vt220", "ansi", "screen", "cons25")
#: TERM values without colour
MONO_TERMS = ("vt100", "vt102", "vt52", "dumb")


@dataclass(frozen=True, slots=True)
class TerminalMode:
    palette: str = "truecolor"
    ascii: bool = False
    mouse: bool = False
    low_bandwidth: bool = False

    @property
    def mono(self) -> bool:
        return self.palette == "mono"


def resolve_mode(
    palette: str = "auto",
    *,
    ascii: bool | None = None,
    mouse: bool = False,
    low_bandwidth: bool = False,
    environ: Mapping[str, str] | None = None,
    detected: str | None = None,
) -> TerminalMode:
    """The mode for the flags given; ``auto`` / ``None`` look at the
    environment (``NO_COLOR``, ``TERM``, ``COLORTERM``) and at ``detected``
    (Rich's guess: ``truecolor``, ``256``, ``standard``...)."""
    env = os.environ if environ is None else environ
    term = (env.get("TERM") or "").lower()
    base = term.split("-", 1)[0]
    if palette not in ("auto", *PALETTES):
        raise ValueError(f"palette must be one of auto, {', '.join(PALETTES)}: {palette!r}")
    if palette == "auto":
        if env.get("NO_COLOR") is not None or base in MONO_TERMS:
            palette = "mono"
        elif (env.get("COLORTERM") or "").lower() in ("truecolor", "24bit"):
            palette = "truecolor"
        elif "256color" in term:
            palette = "256"
        elif base in SIXTEEN_TERMS and term in SIXTEEN_TERMS:
            palette = "16"
        elif detected in ("truecolor", "256"):
            palette = detected
        elif detected in ("standard", "windows"):
            palette = "16"
        else:
            palette = "256"
    if ascii is None:
        ascii = base in ASCII_TERMS or term == "linux"
    return TerminalMode(palette, bool(ascii), bool(mouse), bool(low_bandwidth))


# -- ASCII ------------------------------------------------------------------------------
#: single-cell replacements, by character (other non-ASCII characters: '?')
_ASCII_MAP = {
    "±": "~",
    "°": "o",
    "µ": "u",
    "σ": "s",  # noqa: RUF001
    "μ": "u",
    "·": ".",
    "∘": "o",
    "•": "*",
    "●": "*",
    "○": "o",
    "◆": "*",
    "✓": "v",
    "✔": "v",
    "✗": "x",
    "✘": "x",
    "…": ".",
    "→": ">",
    "←": "<",
    "↑": "^",
    "↓": "v",
    "▲": "^",
    "▼": "v",
    "▶": ">",
    "◀": "<",
    "▸": ">",
    "◂": "<",
    "▴": "^",
    "▾": "v",
    "–": "-",  # noqa: RUF001
    "—": "-",
    "×": "x",  # noqa: RUF001
    "≤": "<",
    "≥": ">",
    "▏": "|",
    "▕": "|",
    "▎": "|",
    "▍": "|",
    "▌": "|",
    "▐": "|",
    "▁": "_",
    "▂": "_",
    "▃": "=",
    "▄": "=",
    "▅": "#",
    "▆": "#",
    "▇": "#",
    "█": "#",
    "▀": '"',
    "░": ".",
    "▒": ":",
    "▓": "#",
}


@lru_cache(maxsize=4096)
def ascii_char(ch: str) -> str:
    """An ASCII stand-in for one character, as many cells wide."""
    if ch < "\x80":
        return ch
    if ch in _ASCII_MAP:
        return _ASCII_MAP[ch]
    code = ord(ch)
    width = cell_len(ch)
    if 0x2500 <= code <= 0x257F:  # box drawing
        name_horizontal = ch in "─━┄┅┈┉╌╍═╴╶╸╺╼╾"
        name_vertical = ch in "│┃┆┇┊┋╎╏║╵╷╹╻╽╿"
        out = "-" if name_horizontal else "|" if name_vertical else "+"
    elif 0x2800 <= code <= 0x28FF:  # braille
        out = "." if code != 0x2800 else " "
    elif 0x2580 <= code <= 0x259F:  # block elements
        out = "#"
    else:
        out = "?"
    return out * max(width, 1) if width else ""


@lru_cache(maxsize=8192)
def to_ascii(text: str) -> str:
    if text.isascii():
        return text
    return "".join(ascii_char(c) for c in text)


class AsciiFilter(LineFilter):
    """Every character on the screen as 7-bit ASCII (``--ascii``)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [
            seg if control or text.isascii() else Segment(to_ascii(text), style, control)
            for seg in segments
            for text, style, control in (seg,)
        ]


class SafeMonochrome(LineFilter):
    """Textual's monochrome filter without its crash on unstyled segments
    (``NO_COLOR=1`` ended the Camera tab: a segment with style None)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        empty = Style()
        return [
            Segment(text, monochrome_style(style or empty), None)
            for text, style, _control in segments
        ]
