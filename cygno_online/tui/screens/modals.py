"""Help screen and the acknowledgement confirmation."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (section, key, what) - the help screen and the README list these
KEYS: tuple[tuple[str, str, str], ...] = (
    (
        "everywhere",
        "1..8",
        "switch tab: Overview, Camera, Clusters, PMT, Slow control, Alarms, Runs, Log",
    ),
    ("everywhere", "tab", "move focus (shift+tab back)"),
    ("everywhere", "?", "this help"),
    ("everywhere", "ctrl+p", "command palette (switch tab, acknowledge, pause camera...)"),
    ("everywhere", "q", "quit"),
    ("Camera", "p", "pause / resume frame updates"),
    ("Camera", "r", "automatic colour range"),
    ("Camera", "+ / -", "raise / lower the range maximum (manual range)"),
    ("Camera", "] / [", "raise / lower the range minimum (manual range)"),
    ("Camera", "z / x", "zoom in / out"),
    ("Camera", "arrows", "pan when zoomed"),
    ("Camera", "0", "reset zoom"),
    ("Camera", "b", "show / hide cluster boxes"),
    ("Camera, Clusters", "c", "next camera"),
    ("Clusters", "i", "55Fe spectrum (with live peak fit) / all clusters"),
    ("Clusters", "l", "linear / log counts"),
    ("PMT", "n", "next digitizer board"),
    ("PMT", "v", "latest / average waveforms"),
    ("PMT", "h", "next channel's amplitude spectrum"),
    ("Slow control", "s", "cycle sort (equipment, value, age, alarm)"),
    ("Slow control", "w", "show / hide raw channels (unconverted 4-20 mA inputs)"),
    ("Slow control", "/", "filter by name (Enter keeps it, Esc clears it)"),
    ("Alarms", "a", "acknowledge the selected alarm (asks y/n)"),
    ("Alarms", "e", "shelve the selected alarm: 1 = 15 min, 2 = 1 h, 3 = 8 h, n = cancel"),
    ("Alarms", "u", "unshelve the selected alarm (asks y/n)"),
    ("Alarms", "↑↓", "select: the detail pane shows it in full (guidance, contact...)"),
    ("Runs", "enter", "the selected run's full summary, compared with the previous run"),
    ("tables, log", "↑↓ PgUp PgDn", "move / scroll"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 96%; max-width: 100; height: 92%; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "close", "close"),
    ]

    def compose(self) -> ComposeResult:
        t = Table(box=None, padding=(0, 1), show_header=False)
        t.add_column(style="dim", no_wrap=True, max_width=16)
        t.add_column(style="bold cyan", no_wrap=True, max_width=12)
        t.add_column()
        last = None
        for section, key, what in KEYS:
            t.add_row(section if section != last else "", key, what)
            last = section
        head = Text("Keys - Esc or ? closes\n", style="bold")
        notes = Text(
            "\nGrey values are stale (older than 3 of their usual periods, at least 10 s; "
            "60 s when the period is unknown) or not live (disconnected).",
            style="dim",
        )
        with VerticalScroll(id="help-body"):
            yield Static(head)
            yield Static(t)
            yield Static(notes)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Static { width: 60; max-width: 95%; height: auto; border: thick $warning; background: $surface; padding: 1 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(
                (self.question, "bold"),
                "\n\n",
                ("y", "bold green"),
                " yes    ",
                ("n", "bold red"),
                " no",
            )
        )

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
