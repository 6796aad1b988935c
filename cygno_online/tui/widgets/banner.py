"""The connection banner: invisible while connected, a loud red line with
"DISCONNECTED since HH:MM:SS (Ns)" otherwise."""

from __future__ import annotations

import datetime as dt

from textual.widgets import Static

from cygno_online.tui.keymetrics import fmt_age


def banner_text(since: float | None, now: float, endpoint: str = "") -> str:
    where = f" from {endpoint}" if endpoint else ""
    if since is None:
        return f"DISCONNECTED{where} - waiting for the daemon; greyed values are not live"
    when = dt.datetime.fromtimestamp(since).strftime("%H:%M:%S")
    return (
        f"DISCONNECTED since {when} ({fmt_age(now - since)}){where} - reconnecting; "
        "greyed values are not live"
    )


class Banner(Static):
    DEFAULT_CSS = """
    Banner { display: none; height: 1; background: $error; color: $text; text-style: bold; padding: 0 1; }
    Banner.-visible { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._text = ""

    def show(self, connected: bool, since: float | None, now: float, endpoint: str = "") -> None:
        self.set_class(not connected, "-visible")
        text = "" if connected else banner_text(since, now, endpoint)
        if text != self._text:
            self._text = text
            self.update(text)

    @property
    def text(self) -> str:
        return self._text
